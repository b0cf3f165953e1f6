"""Encrypted backups: written with SQLite's online backup API into an encrypted copy, verified before
it is called done, and restored only after the copy itself verifies."""
from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

from models.domain import Permission
from services.accounts import unlock
from services.database import connect_raw
from services.errors import WardLensError
from services.keyfile import key_file_path
from services.session import Session
from services.verify import VerifyReport, verify_connection

TABLES = ("patients", "encounters", "diagnoses", "medications", "lab_results", "comorbidities", "wards", "beds",
          "users", "audit_log")


class BackupError(WardLensError):
    pass


def _counts(conn) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def backup(session: Session, dest: Path | str) -> VerifyReport:
    """Copy the open store to `dest` (plus its key file) and verify the copy; nothing is left on failure."""
    session.require(Permission.BACKUP, "make backups")
    dest = Path(dest)
    if dest.exists():
        raise BackupError(f"{dest} already exists; choose a new file name.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".partial")
    tmp_keys = Path(str(tmp) + ".keys")
    key = session.db.key_copy()
    try:
        for p in (tmp, tmp_keys):
            p.unlink(missing_ok=True)
        target = connect_raw(tmp, key)
        try:
            session.db.conn.backup(target)
            target.execute("PRAGMA journal_mode = DELETE")  # a backup is one self-contained file
            report = verify_connection(target)
            same = _counts(target) == _counts(session.db.conn)
        finally:
            target.close()
        if not report.ok or not same:
            raise BackupError("The backup copy did not verify: " + "; ".join(report.problems or ["row counts differ"]))
        shutil.copyfile(key_file_path(session.store_path), tmp_keys)
        _fsync(tmp)
        _fsync(tmp_keys)
        os.replace(tmp_keys, key_file_path(dest))
        os.replace(tmp, dest)
    except BaseException:
        for p in (tmp, tmp_keys):
            p.unlink(missing_ok=True)
        raise
    finally:
        for i in range(len(key)):
            key[i] = 0
    session.log("backup", "store", "", f"to {dest.name}: {report.audit_rows} audit rows")
    return report


def restore(backup_path: Path | str, store_path: Path | str, username: str, password: str) -> Path:
    """Replace the store with a verified backup; the replaced store is kept beside it, never deleted.

    The credentials must open the backup (its own key file), so a restore needs a user of that backup.
    Returns the path where the previous store was kept (or the store path if there was none).
    """
    backup_path, store_path = Path(backup_path), Path(store_path)
    if not backup_path.is_file() or not key_file_path(backup_path).is_file():
        raise BackupError(f"{backup_path} and its key file {key_file_path(backup_path).name} are both needed.")
    # Work on a copy so the backup itself is never written to, and so the login and restore events
    # land in the audit log of the store that results.
    tmp = store_path.with_name(store_path.name + ".restoring")
    tmp_keys = Path(str(tmp) + ".keys")
    shutil.copyfile(backup_path, tmp)
    shutil.copyfile(key_file_path(backup_path), tmp_keys)
    try:
        session = unlock(tmp, username, password)
        try:
            session.require(Permission.BACKUP, "restore backups")
            report = verify_connection(session.db.conn)
            if not report.ok:
                raise BackupError("The backup does not verify: " + "; ".join(report.problems))
            session.log("restore", "store", "", f"restored from {backup_path.name}")
            session.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            session.lock(reason="restore")
        _fsync(tmp)
    except BaseException:
        for p in (tmp, tmp_keys, Path(str(tmp) + "-wal"), Path(str(tmp) + "-shm")):
            p.unlink(missing_ok=True)
        raise
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    kept = store_path.with_name(f"{store_path.name}.before-restore-{stamp}")
    if store_path.exists():
        os.replace(store_path, kept)
        if key_file_path(store_path).exists():
            os.replace(key_file_path(store_path), key_file_path(kept))
        for suffix in ("-wal", "-shm"):
            side = Path(str(store_path) + suffix)
            if side.exists():
                os.replace(side, Path(str(kept) + suffix))
    for suffix in ("-wal", "-shm"):  # normally gone after the last close; if not, they hold committed pages
        if Path(str(tmp) + suffix).exists():
            os.replace(Path(str(tmp) + suffix), Path(str(store_path) + suffix))
    os.replace(tmp_keys, key_file_path(store_path))
    os.replace(tmp, store_path)
    return kept if kept.exists() else store_path
