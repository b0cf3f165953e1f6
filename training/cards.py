"""Shared evaluation helpers for the pipelines: patient-grouped bootstrap intervals and model cards.

Every number that lands in a card comes from these functions run on held-out data; nothing is typed in.
"""
from __future__ import annotations

import datetime as _dt
import json
import platform
from pathlib import Path
from typing import Any


from services.inference.model_cards import MetricFn, bootstrap_ci, card_markdown, group_bootstrap_indices  # noqa: F401


def provenance() -> dict[str, Any]:
    return {
        "trained_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_card(directory: Path, card: dict[str, Any]) -> None:
    """Write card.json and its readable page card.md from the same dictionary, then sign the bundle: the card is the
    last file every pipeline writes, so the manifest covers the finished folder (services.inference.manifest)."""
    from services.inference.manifest import write_manifest
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "card.json").write_text(json.dumps(card, indent=2, default=float) + "\n", encoding="utf-8")
    (directory / "card.md").write_text(card_markdown(card, directory.name), encoding="utf-8")
    write_manifest(directory)
