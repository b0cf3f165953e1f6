"""Password strength: a minimum length plus zxcvbn's estimate of how many guesses a password takes.

NIST SP 800-63B asks for a length minimum and a check against common and guessable passwords rather than
composition rules; zxcvbn does that check offline (common passwords, names, dictionary words, keyboard walks,
dates, l33t) and explains itself in words a user can act on.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


MIN_LENGTH = 8
MIN_SCORE = 3          # zxcvbn 0-4; 3 = "safely unguessable", about 10^10 guesses: a key file can be attacked offline
LABELS = ("very weak", "weak", "fair", "strong", "very strong")
_MAX_CHECKED = 72      # zxcvbn refuses longer input (ValueError); a longer password is long enough already


@dataclass(frozen=True)
class Strength:
    score: int                       # 0-4
    label: str
    acceptable: bool
    problem: str = ""                # why it is not acceptable, in words
    hints: list[str] = field(default_factory=list)


def strength(password: str, context: tuple[str, ...] = (), min_score: int = MIN_SCORE) -> Strength:
    """How strong `password` is for an account; `context` holds words that must not make it (user name, display
    name, site), each also split into its words ("j.smith" and "Jo Smith" give jo, smith, j.smith)."""
    password = password or ""
    if not password:
        return Strength(0, "", False, f"at least {MIN_LENGTH} characters")
    from zxcvbn import zxcvbn   # 25 ms of word lists: only when a password is typed, not at every start
    words = sorted({w for c in context if c for w in [c.lower(), re.sub(r"[^a-z0-9]+", "", c.lower()),
                                                      *re.split(r"[^a-z0-9]+", c.lower())] if len(w) > 1}
                   | {"wardlens", "hospital", "nurse", "doctor", "clinician", "admin"})
    result = zxcvbn(password[:_MAX_CHECKED], user_inputs=words)
    score = int(result["score"])
    feedback = result.get("feedback") or {}
    hints = [h for h in [feedback.get("warning") or ""] + list(feedback.get("suggestions") or []) if h]
    if len(password) < MIN_LENGTH:
        return Strength(min(score, 1), LABELS[min(score, 1)], False, f"at least {MIN_LENGTH} characters", hints)
    if score < min_score:
        why = (feedback.get("warning") or "too easy to guess").rstrip(".")
        return Strength(score, LABELS[score], False, f"{why}: add another uncommon word or two", hints)
    return Strength(score, LABELS[score], True, "", hints)

