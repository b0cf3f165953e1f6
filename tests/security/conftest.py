"""Attacks played as an insider would: their own password, the files in hand, Python and a shell."""
from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict | None = None, timeout: int = 180, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """main.py as a separate process, with only the credentials given here."""
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    for k in ("WARDLENS_USER", "WARDLENS_PASSWORD", "WARDLENS_RECOVERY_KEY"):
        if env is None or k not in env:
            e.pop(k, None)
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, env=e,
                          timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd)


def as_user(user: str, password: str) -> dict:
    return {"WARDLENS_USER": user, "WARDLENS_PASSWORD": password}


@pytest.fixture
def uci_rows(tmp_path) -> Path:
    """A small CSV in the UCI encounter schema (header + 4 encounters from the committed demo sample)."""
    with gzip.open(ROOT / "resources" / "demo" / "uci_sample.csv.gz", "rt", encoding="utf-8") as f:
        text = "".join(next(f) for _ in range(5))
    src = tmp_path / "in.csv"
    src.write_text(text, encoding="utf-8")
    return src
