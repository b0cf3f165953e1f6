"""The watched import folder (off by default; an administrator sets `import_folder`): files the hospital's systems drop
there (FHIR, HL7 v2, UCI CSV) are imported one by one in the order they arrived, then moved to done/ when every record
in them was imported, updated or unchanged, or to failed/ with a reason file beside them (`NAME.reason.txt`: what
was imported and what was rejected, or why nothing was). Importing is idempotent, so a failed file can be dropped
again once its cause is fixed (an admission that arrived later). No sockets: the hospital's interface engine writes
files, WardLens reads them.

A file is taken only once it has stopped changing (SETTLE_SECONDS since its last write), so one being written is
left for the next pass; links, hidden files and partial downloads (.tmp, .part) are never taken."""
from __future__ import annotations

import datetime as dt
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from models.domain import Permission
from services.core.errors import Cancelled, WardLensError
from services.core.outputs import exclusive_temp
from services.core.progress import CancelToken
from services.records.sources import import_records
from services.store.database import is_disk_full
from services.site.session import Session

SETTLE_SECONDS = 5.0
SKIP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".reason.txt")


@dataclass(frozen=True)
class WatchResult:
    name: str
    ok: bool
    summary: str
    moved_to: Path


def pending_files(folder: Path, now: float | None = None) -> list[Path]:
    """Files ready to import, oldest first (modification time, then name)."""
    now = time.time() if now is None else now
    out = []
    for entry in os.scandir(folder):
        if entry.name.startswith(".") or entry.name.lower().endswith(SKIP_SUFFIXES):
            continue
        if not entry.is_file(follow_symlinks=False):   # links and folders (done/, failed/) are never taken
            continue
        st = entry.stat(follow_symlinks=False)
        if now - st.st_mtime >= SETTLE_SECONDS:
            out.append((st.st_mtime, entry.name, Path(entry.path)))
    return [p for _, _, p in sorted(out)]


def _target_dir(target_dir: Path) -> Path:
    """done/ or failed/, made if missing; refused when it is a link or not this user's own folder (whoever can write
    to the watched folder must not steer the files, or the reason files, anywhere else)."""
    try:
        target_dir.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.lstat(target_dir)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode) or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
        raise WatchFolderUnsafe(f"{target_dir} is a link, not a folder, or not this user's own folder; the watched "
                                "folder is not read until it is a plain folder again.")
    return target_dir


class WatchFolderUnsafe(WardLensError):
    pass


def _move(path: Path, target_dir: Path) -> Path:
    """Into done/ or failed/ under the same name, or with the time added when that name is taken (never over a file)."""
    target_dir = _target_dir(target_dir)
    target = target_dir / path.name
    if target.exists() or target.is_symlink():
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        target = target_dir / f"{path.stem}.{stamp}{path.suffix}"
    os.link(path, target, follow_symlinks=False)   # fails rather than replace anything; same file system
    os.unlink(path)
    return target


def _write_reason(next_to: Path, text: str) -> None:
    fd, tmp = exclusive_temp(next_to.parent, next_to.name + ".reason.txt")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, next_to.parent / (next_to.name + ".reason.txt"))


def process_folder(session: Session, folder: Path | str, cancel: CancelToken | None = None) -> list[WatchResult]:
    """Import every settled file in `folder` once; returns what happened to each."""
    session.require(Permission.IMPORT, "import data")   # before any file is moved: a desk without the right leaves them
    folder = Path(folder)
    if not folder.is_dir():
        raise WardLensError(f"The import folder {folder} does not exist or is not a folder.")
    _target_dir(folder / "done")
    _target_dir(folder / "failed")
    results = []
    for path in pending_files(folder):
        if cancel is not None and cancel.cancelled:
            break
        try:
            report = import_records(session, [path], cancel=cancel)
        except Cancelled:
            break   # the transaction rolled back; the file stays for the next pass
        except Exception as exc:   # noqa: BLE001 - any failure of one file: filed with its reason, the next goes on
            if is_disk_full(exc):
                raise   # nothing can be written; the file stays for the next pass
            why = str(exc) if isinstance(exc, WardLensError) else f"{type(exc).__name__}: {exc}"
            moved = _move(path, folder / "failed")
            _write_reason(moved, f"Nothing was imported from {path.name}: {why}\n")
            results.append(WatchResult(path.name, False, why, moved))
            continue
        if report.rejected_total == 0:
            results.append(WatchResult(path.name, True, report.summary(), _move(path, folder / "done")))
            continue
        moved = _move(path, folder / "failed")
        lines = [report.summary(), *report.lines(), *(f"rejected: {r.where}: {r.reason}" for r in report.rejected),
                 "The records not rejected were imported; the file can be dropped again once the cause is fixed "
                 "(importing it again changes nothing that was already imported)."]
        _write_reason(moved, "\n".join(lines) + "\n")
        results.append(WatchResult(path.name, False, report.summary(), moved))
    return results
