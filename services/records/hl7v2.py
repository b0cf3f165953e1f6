"""HL7 v2 ADT in (the interoperability issue, step 1b, not yet applied to the store): messages read into admit,
transfer, discharge, register, pre-admit, update, cancel and merge events with the patient and visit they are about.

Parsed with python-hl7 (BSD), which splits segments, fields, repetitions, components and subcomponents by the
message's own encoding characters. Around it: a file may hold one or many messages, segments end with CR, LF or CRLF,
a UTF-8 byte-order mark may lead, versions 2.3 to 2.8 differ in optional fields only. Messages are told apart by their
whole content, never by the control id alone (many real messages share MSG00001). Events are ordered by when they
happened (EVN-6, else EVN-2, else MSH-7), which is the order the census applies them in."""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import hl7

from services.core.files import read_input

ADT_EVENTS = {"A01": "admit", "A04": "register", "A05": "pre-admit", "A06": "to inpatient", "A07": "to outpatient",
              "A02": "transfer", "A03": "discharge", "A08": "update", "A31": "update", "A11": "cancel admit",
              "A12": "cancel transfer", "A13": "cancel discharge", "A40": "merge"}
CLASSES = {"I": "inpatient", "E": "emergency", "O": "ambulatory", "P": "pre-admit", "R": "ambulatory",
           "B": "ambulatory", "N": "other", "U": "other"}
_SEGMENT_END = re.compile(r"\r\n|\n|\r")


@dataclass(frozen=True)
class Hl7Event:
    file: str
    message: int                  # 1-based position in the file
    digest: str                   # sha256 of the normalised message: the same content is the same message
    control_id: str
    version: str
    trigger: str                  # A01 …
    event: str                    # admit, transfer, … (ADT_EVENTS)
    when: str                     # EVN-6, else EVN-2, else MSH-7 (HL7 TS, e.g. 20210115160010+0215)
    patient_ids: tuple[tuple[str, str, str], ...]   # (value, assigning authority, type) from PID-3
    family: str = ""
    given: str = ""
    birth_date: str = ""          # YYYYMMDD as sent
    sex: str = ""
    deceased: bool = False
    visit: str = ""               # PV1-19 visit number, else PID-18 patient account number
    cls: str = ""                 # inpatient, emergency, ambulatory, pre-admit, other (PV1-2)
    ward: str = ""                # PV1-3 point of care
    room: str = ""
    bed: str = ""
    admit_time: str = ""          # PV1-44
    discharge_time: str = ""      # PV1-45
    disposition: str = ""         # PV1-36
    prior_ids: tuple[tuple[str, str, str], ...] = ()   # MRG-1: the identifiers an A40 merges away


@dataclass
class Hl7Batch:
    events: list[Hl7Event] = field(default_factory=list)
    duplicates: int = 0                                    # the same content seen again
    other_types: Counter = field(default_factory=Counter)  # ORU^R01, SIU^S12 …: not ADT, counted and skipped
    problems: list[tuple[str, str, str]] = field(default_factory=list)   # (file, message n, reason)

    def ordered(self) -> list[Hl7Event]:
        """Events in the order they happened (stable for equal times: the order they came in)."""
        return sorted(self.events, key=lambda e: _sortable(e.when))


class NotHl7(ValueError):
    """The file holds no HL7 v2 message; the message says what it looks like."""


def _sortable(ts: str) -> str:
    return (re.sub(r"[^0-9]", "", ts.split("+")[0].split("-")[0]) + "0" * 14)[:14]


def _messages(text: str) -> list[str]:
    """The file's messages, each with CR segment ends (HL7's own), blank lines and a BOM dropped."""
    text = text.lstrip("\ufeff")
    segments = [s for s in _SEGMENT_END.split(text) if s.strip()]
    out: list[list[str]] = []
    for seg in segments:
        if seg.startswith("MSH"):
            out.append([seg])
        elif out:
            out[-1].append(seg)
    return ["\r".join(m) for m in out]


def _field(msg: hl7.Message, seg: str, n: int, comp: int = 1, rep: int = 1, sub: int = 1, occ: int = 1) -> str:
    """SEG-n.comp (repetition `rep`, subcomponent `sub`, of the segment's `occ`-th occurrence) as text, "" where the
    message does not have it."""
    try:
        return str(msg.extract_field(seg, occ, n, rep, comp, sub)).strip()
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return ""


def _ids(msg: hl7.Message, seg: str, n: int, occ: int = 1) -> tuple[tuple[str, str, str], ...]:
    out = []
    for r in range(1, 11):   # repetitions (MRN~national number~…); python-hl7 raises past the last one
        try:
            msg.extract_field(seg, occ, n, r, 1)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            break
        value = _field(msg, seg, n, 1, r, occ=occ)
        if value:
            out.append((value, _field(msg, seg, n, 4, r, occ=occ), _field(msg, seg, n, 5, r, occ=occ)))
    return tuple(out)


def _occurrences(msg: hl7.Message, seg: str) -> int:
    return sum(1 for s in msg if str(s[0]) == seg)


def read_hl7(paths: Iterable[Path | str]) -> Hl7Batch:
    """Every message in the files: ADT events kept, other message types counted, bad messages with a reason."""
    batch, seen = Hl7Batch(), set()
    files = [f for p in map(Path, paths) for f in (sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p])]
    for path in files:
        text = read_input(path).decode("utf-8-sig", errors="replace")   # bounded; a .hl7.gz as format detection reads it
        messages = _messages(text)
        if not messages:
            if len(files) == 1:
                raise NotHl7(f"{path.name} holds no HL7 v2 message (no MSH segment)")
            continue
        for n, raw in enumerate(messages, 1):
            digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()
            if digest in seen:
                batch.duplicates += 1
                continue
            seen.add(digest)
            try:
                msg = hl7.parse(raw)
            except Exception as exc:   # the library's own errors: a message it cannot split
                batch.problems.append((path.name, f"message {n}", f"not parseable ({type(exc).__name__})"))
                continue
            kind, trigger = _field(msg, "MSH", 9, 1), _field(msg, "MSH", 9, 2) or _field(msg, "EVN", 1)
            if kind != "ADT":
                batch.other_types[f"{kind}^{trigger}" if trigger else kind or "unknown"] += 1
                continue
            if trigger not in ADT_EVENTS:
                batch.other_types[f"ADT^{trigger}"] += 1
                continue
            # An A40 (ADT_A39 structure) repeats {PID, MRG} once per merge: one event for each pair, told apart
            # by their place in the message; every other event is about one patient.
            groups = range(1, (_occurrences(msg, "PID") if trigger == "A40" else 1) + 1)
            for g in groups:
                ids = _ids(msg, "PID", 3, g)
                if not ids:
                    batch.problems.append((path.name, f"message {n}", f"ADT^{trigger} without a patient identifier "
                                                                      "(PID-3)"))
                    continue
                pv1 = 1 if trigger != "A40" else g
                batch.events.append(Hl7Event(
                    path.name, n, digest if g == 1 else f"{digest}#{g}", _field(msg, "MSH", 10),
                    _field(msg, "MSH", 12), trigger, ADT_EVENTS[trigger],
                    _field(msg, "EVN", 6) or _field(msg, "EVN", 2) or _field(msg, "MSH", 7), ids,
                    _field(msg, "PID", 5, 1, occ=g), _field(msg, "PID", 5, 2, occ=g), _field(msg, "PID", 7, occ=g)[:8],
                    {"F": "Female", "M": "Male"}.get(_field(msg, "PID", 8, occ=g).upper(), "Unknown/Invalid"),
                    _field(msg, "PID", 30, occ=g).upper() == "Y",
                    _field(msg, "PV1", 19, occ=pv1) or _field(msg, "PID", 18, occ=g),
                    CLASSES.get(_field(msg, "PV1", 2, occ=pv1).upper(), ""), _field(msg, "PV1", 3, 1, occ=pv1),
                    _field(msg, "PV1", 3, 2, occ=pv1), _field(msg, "PV1", 3, 3, occ=pv1), _field(msg, "PV1", 44, occ=pv1),
                    _field(msg, "PV1", 45, occ=pv1), _field(msg, "PV1", 36, occ=pv1),
                    _ids(msg, "MRG", 1, g) if trigger == "A40" else ()))
    return batch
