"""Every file the product writes for a user (reports, CSVs) goes through here, so that no output can destroy data.

Rules, in one place:
- an output never replaces a store, its `-wal`/`-shm`/`-journal`, its `.keys`, a backup or a half-written copy,
  nor any existing file that is not of the output's own kind (a PDF over a PDF, a CSV over a text file);
- the bytes go to a temporary file created exclusively (O_EXCL, O_NOFOLLOW: a planted link or file at that name
  is never followed or reused) with mode 0600, then fsync'd and renamed over the target: never half a file;
- every CSV cell is neutralised against spreadsheet formula injection, Unicode look-alike prefixes included.
"""
from __future__ import annotations

import csv
import os
import secrets
import unicodedata
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator, Literal

from services.core.errors import WardLensError

Kind = Literal["pdf", "csv", "png", "json"]
MAGIC = {"pdf": b"%PDF-", "png": b"\x89PNG\r\n\x1a\n"}

# Names that belong to a store or to its copies; an output must never take one.
PROTECTED_SUFFIXES = (".keys", "-wal", "-shm", "-journal", ".partial", ".restoring", ".db", ".sqlite",
                      ".backups.json", ".tmp")
SQLITE_HEADER = b"SQLite format 3\x00"
FILE_MODE = 0o600

# OWASP CSV injection: a cell whose first non-blank character is one of these is evaluated by Excel or
# LibreOffice. Look-alikes (full-width, small forms, the minus sign) are folded to ASCII by some locales and
# spreadsheet imports, so they are caught by NFKC plus the few that NFKC keeps distinct.
_FORMULA_ASCII = frozenset("=+-@\t\r\n")
_FORMULA_EXTRA = frozenset("\u2212\u2796\u2795\u2797\uff5c")  # minus sign, heavy minus/plus/division, fullwidth bar


class OutputRefused(WardLensError):
    """The chosen output file would destroy data or is not a file of the output's kind."""


def _starts_formula(text: str) -> bool:
    stripped = text.lstrip(" \u00a0\u3000")  # spreadsheets skip leading spaces before evaluating
    if not stripped:
        return False
    first = stripped[0]
    if first in _FORMULA_ASCII or first in _FORMULA_EXTRA:
        return True
    folded = unicodedata.normalize("NFKC", first)[:1]
    return folded in _FORMULA_ASCII


def escape_cell(value: Any) -> str:
    """One cell as text, with a leading quote where a spreadsheet would read a formula.

    Real numbers (int/float) are left alone: -5 is a value, not a formula. Text is checked at its first
    non-blank character; numbers that arrive as text ("-0.5") keep their meaning through the quote prefix,
    which spreadsheets show as the text -0.5.
    """
    if value is None:
        return ""
    if isinstance(value, (bool, int, float)):
        return str(value)
    text = str(value)
    return "'" + text if _starts_formula(text) else text


class SafeCsvWriter:
    """csv.writer whose every cell passes through escape_cell; also takes dict rows by field name."""

    def __init__(self, stream: IO[str], fieldnames: list[str] | tuple[str, ...] | None = None) -> None:
        self._w = csv.writer(stream, lineterminator="\r\n")
        self.fieldnames = list(fieldnames) if fieldnames else None

    def writeheader(self) -> None:
        assert self.fieldnames is not None
        self.writerow(self.fieldnames)

    def writerow(self, row: Any) -> None:
        if isinstance(row, dict):
            assert self.fieldnames is not None
            unknown = set(row) - set(self.fieldnames)
            if unknown:
                raise ValueError(f"fields not in the header: {sorted(unknown)}")
            row = [row.get(k, "") for k in self.fieldnames]
        self._w.writerow([escape_cell(v) for v in row])


# ------------------------------------------------------------------------------ checking a target
def _looks_like_kind(path: Path, kind: Kind) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(8192)
    except OSError:
        return False
    if kind in MAGIC:
        return head.startswith(MAGIC[kind])
    if kind == "json":   # only a saved column mapping is replaced by one, never a key file or settings
        return path.suffix.lower() == ".json" and b'"wardlens_mapping"' in head
    if path.suffix.lower() not in (".csv", ".tsv", ".txt"):
        return False  # a CSV replaces a CSV, never a script, a settings or anchors file
    if b"\x00" in head or head.startswith(SQLITE_HEADER):
        return False  # a store, an encrypted file, an image: not text
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return not (text.startswith(b"{") and b"wardlens" in text)  # a key file or an index, JSON text


def check_output(path: Path | str, kind: Kind, inputs: tuple[Path | str, ...] = ()) -> Path:
    """Refuse, before any work is done, an output that would destroy data or fail late. Returns the path."""
    out = Path(path)
    name = out.name.lower()
    if not name:
        raise OutputRefused(f"{out} is not a file name.")
    if name.endswith(PROTECTED_SUFFIXES) or ".before-" in name:
        raise OutputRefused(f"{out.name} is the name of a store, a key file or a backup; WardLens never writes a "
                            f"{kind.upper()} there. Choose a name ending in .{kind}.")
    if Path(str(out) + ".keys").exists() or Path(str(out) + "-wal").exists():
        raise OutputRefused(f"{out} is a WardLens store; choose another name.")
    for src in inputs:
        src = Path(src)
        if out.resolve() == src.resolve() or (out.exists() and src.exists() and out.samefile(src)):
            raise OutputRefused(f"{out} is the input file; it would be overwritten. Choose another name.")
    if out.is_dir():
        raise OutputRefused(f"{out} is a folder; give a file name in it.")
    if out.exists() or out.is_symlink():
        if not out.is_file() or not _looks_like_kind(out, kind):
            raise OutputRefused(f"{out} exists and is not a {kind.upper()} file; WardLens will not write over it. "
                                "Choose another name.")
    parent = out.absolute().parent
    if not parent.is_dir():
        raise OutputRefused(f"the folder {parent} does not exist; create it first or choose another file.")
    if not os.access(parent, os.W_OK):
        raise OutputRefused(f"cannot write to the folder {parent}: permission denied.")
    return out


def exclusive_temp(folder: Path, stem: str) -> tuple[int, Path]:
    """A new temporary file in `folder`, created exclusively, never through a link, readable by its owner only."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(16):
        tmp = folder / f".{stem}.{secrets.token_hex(6)}.part"
        try:
            return os.open(tmp, flags, FILE_MODE), tmp
        except FileExistsError:
            continue
    raise OutputRefused(f"could not create a temporary file in {folder}.")


@contextmanager
def output_file(path: Path | str, kind: Kind, inputs: tuple[Path | str, ...] = (), text: bool = True,
                bom: bool = False) -> Iterator[IO[Any]]:
    """Open an output for writing; on success the file appears whole under its name (0600), else not at all."""
    out = check_output(path, kind, inputs)
    fd, tmp = exclusive_temp(out.absolute().parent, out.name)
    try:
        mode = "w" if text else "wb"
        with os.fdopen(fd, mode, **({"encoding": "utf-8", "newline": ""} if text else {})) as f:
            if bom and text:
                f.write("\ufeff")  # Excel on Windows needs it to read UTF-8
            yield f
            f.flush()
            os.fsync(f.fileno())
        check_output(out, kind, inputs)  # nothing protected appeared there while we wrote
        os.replace(tmp, out)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def write_output(path: Path | str, kind: Kind, data: bytes) -> Path:
    """Write a whole output (a PDF, a PNG) by the rules above."""
    with output_file(path, kind, text=False) as f:
        f.write(data)
    return Path(path)


@contextmanager
def csv_output(path: Path | str, fieldnames: list[str] | tuple[str, ...] | None = None,
               inputs: tuple[Path | str, ...] = (), bom: bool = False) -> Iterator[SafeCsvWriter]:
    with output_file(path, "csv", inputs, bom=bom) as f:
        yield SafeCsvWriter(f, fieldnames)
