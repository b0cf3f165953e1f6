"""File helpers shared by the store's backups and the model bundles (no heavy imports)."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from services.core.errors import WardLensError


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


def check_command_paths(output: Path, inputs: tuple[Path, ...] = (), input_files_only: bool = True) -> None:
    """Refuse, before any work, what would lose data or fail late: an output that is one of the inputs (the input
    would be overwritten), an output that is a folder, an output folder that does not exist or cannot be written,
    and (for commands that read one CSV) an input that is a folder. Raises WardLensError with a sentence."""
    out = Path(output)
    for src in inputs:
        src = Path(src)
        if input_files_only and src.is_dir():
            raise WardLensError(f"{src} is a folder; give the CSV file to read.")
        same = out.resolve() == src.resolve() or (out.exists() and src.exists() and out.samefile(src))  # + hard links
        if same:
            raise WardLensError(f"--output {out} is the input file; it would be overwritten. Choose another name.")
    if out.is_dir():
        raise WardLensError(f"--output {out} is a folder; give a file name in it.")
    parent = out.resolve().parent
    if not parent.is_dir():
        raise WardLensError(f"the folder {parent} does not exist; create it first or choose another --output.")
    if not os.access(parent, os.W_OK):
        raise WardLensError(f"cannot write to the folder {parent}: permission denied.")
