"""File helpers shared by the store's backups and the model bundles (no heavy imports)."""
from __future__ import annotations

import gzip
import hashlib
import os
import re
from pathlib import Path

from services.core.errors import WardLensError
from services.core.outputs import check_output


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# What one input file (a FHIR Bundle or NDJSON, a CSV) may take once decompressed: it is read whole, and a small .gz
# can expand a thousandfold (a 400 kB file took 1.3 GB), so a watched folder must not be a way to exhaust memory.
# Far above what the shared exports hold (the largest, 29 MB of FHIR bundles, is many files).
MAX_INPUT_BYTES = 256 * 2**20


class InputTooLarge(WardLensError):
    """An input file passes MAX_INPUT_BYTES once decompressed; nothing of it was read into the store."""


def read_input(path: Path, limit: int | None = None) -> bytes:
    """A whole input file, gunzipped where its first bytes say gzip, refused past `limit` bytes of content: the read
    stops there, so memory stays bounded however far the file would expand. OSError, EOFError and zlib.error of a
    damaged file pass through for the caller to word."""
    limit = MAX_INPUT_BYTES if limit is None else limit
    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw) if gz else raw
        data = stream.read(limit + 1)
    if len(data) > limit:
        what = "once decompressed " if gz else ""
        raise InputTooLarge(f"{Path(path).name} is larger than {limit // 2**20} MiB {what}and was not read; split it "
                            "into smaller files.")
    return data


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^(postgres(ql)?|sqlite|mysql|file|https?):", re.I)


def check_new_store_path(path: Path | str) -> Path:
    """Where a new store may be created: a plain file path in a folder that exists. Refuses, before anything is
    written, a URL (this version keeps its store in a file; a mistyped server address must not become a folder
    tree named 'postgresql:'), an existing file or folder, and a missing or unwritable parent folder (a typo in
    a folder name must not create a new tree of folders)."""
    text = str(path)
    if _URL.match(text):
        raise WardLensError(f"{text} looks like a URL; this version of WardLens keeps its store in a file on this "
                            "computer. Give a file path such as /srv/wardlens/site.db.")
    p = Path(path)
    if p.is_dir():
        raise WardLensError(f"{p} is a folder; give a file name in it, for example {p / 'site.db'}.")
    parent = p.absolute().parent
    if not parent.is_dir():
        raise WardLensError(f"the folder {parent} does not exist; create it first (WardLens does not create folders "
                            "for a new store) or check the path.")
    if not os.access(parent, os.W_OK):
        raise WardLensError(f"cannot write to the folder {parent}: permission denied.")
    return p


def check_command_paths(output: Path, inputs: tuple[Path, ...] = (), input_files_only: bool = True,
                        kind: str = "csv") -> None:
    """Refuse, before any work, what would lose data or fail late: an input that is a folder (for commands that
    read one CSV) and every output the rules of services.core.outputs refuse (over an input, a store, its key
    file, a backup, a folder, a file of another kind, a missing folder). Raises WardLensError with a sentence."""
    for src in inputs:
        if input_files_only and Path(src).is_dir():
            raise WardLensError(f"{src} is a folder; give the CSV file to read.")
    check_output(output, kind, tuple(inputs))  # type: ignore[arg-type]
