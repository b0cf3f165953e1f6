"""A verified encrypted copy of an open store and its key file, written atomically: the one copy routine of
backups (services.site.backup) and of the copy taken before a schema upgrade (services.site.accounts)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from services.core.errors import WardLensError
from services.core.outputs import exclusive_temp
from services.store.database import DatabaseError, connect_raw, is_disk_full
from services.store.keyfile import key_file_path
from services.store.verify import VerifyReport, verify_connection

TABLES = ("patients", "encounters", "diagnoses", "medications", "lab_results", "comorbidities", "wards", "beds",
          "users", "audit_log", "identifiers", "procedures", "medication_orders", "adt_messages")


class BackupError(WardLensError):
    pass


def _counts(conn) -> dict[str, int]:
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES if t in have}


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def exclusive_copy(source: Path | None, folder: Path, name: str, exact: bool = False) -> Path:
    """A new file in `folder` holding `source`'s bytes (or empty), created exclusively, never through a link, 0600:
    every copy of a store or key file starts here so that a planted file or link cannot receive patient data."""
    if exact:
        fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        path = folder / name
    else:
        fd, path = exclusive_temp(folder, name)
    try:
        with os.fdopen(fd, "wb") as out:
            if source is not None:
                with open(source, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def write_verified_copy(conn, key: bytes | bytearray, key_file_source: Path, dest: Path,
                        expect_version: int | None | object = None) -> VerifyReport:
    """Copy the store open on `conn` to `dest` with SQLite's online backup API (same key), verify the copy
    (page HMACs, structure, foreign keys, audit chain, the same row counts), then put it and a copy of the key
    file in place. Never writes over a file; nothing is left behind on failure."""
    if dest.exists() or key_file_path(dest).exists():
        raise BackupError(f"{dest} already exists; choose a new file name.")
    tmp = exclusive_copy(None, dest.absolute().parent, dest.name + ".partial")  # empty, ours alone, 0600
    tmp_keys = Path(str(tmp) + ".keys")
    try:
        target = connect_raw(tmp, key)
        snapshot = not conn.in_transaction
        try:
            # One read transaction around the copy and the counts: other threads of the desk keep writing (an audit
            # row for each search), and the copy must be compared with the very state it was taken from.
            if snapshot:
                conn.execute("BEGIN")
            try:
                source = _counts(conn)
                conn.backup(target)
            finally:
                if snapshot:
                    conn.execute("COMMIT")
            target.execute("PRAGMA journal_mode = DELETE")  # a backup is one self-contained file
            report = verify_connection(target, expect_version)
            same = _counts(target) == source
        finally:
            target.close()
        if not report.ok or not same:
            raise BackupError("The backup copy did not verify: " + "; ".join(report.problems or ["row counts differ"]))
        exclusive_copy(key_file_source, tmp_keys.parent, tmp_keys.name, exact=True)
        fsync_file(tmp)
        fsync_file(tmp_keys)
        os.replace(tmp_keys, key_file_path(dest))
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except BaseException as exc:
        for p in (tmp, tmp_keys):
            p.unlink(missing_ok=True)
        if isinstance(exc, (DatabaseError, OSError)) and is_disk_full(exc):
            raise BackupError(f"The disk holding {dest.parent} is full: no backup was written and nothing was "
                              "left behind. Free some space or choose another drive.") from exc
        raise
    return report
