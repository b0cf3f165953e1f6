"""Encrypted backups: written with SQLite's online backup API into an encrypted copy, verified before
it is called done, and restored only after the copy itself verifies."""
from __future__ import annotations

import datetime as dt
import json
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from models.domain import Permission
from services.site import anchors
from services.site.accounts import unlock
from services.store.database import DatabaseError, DiskFull, connect_raw, is_disk_full
from services.core.errors import KeyFileError, WardLensError, WrongPassword
from services.core.files import check_new_store_path, sha256_file
from services.core.outputs import exclusive_temp
from services.store.keyfile import KeyFile, key_file_path
from services.site.session import Session
from services.store.snapshot import BackupError, TABLES, exclusive_copy, fsync_dir as _fsync_dir, fsync_file as _fsync, write_verified_copy  # noqa: F401
from services.site.anchors import backup_index_path, read_index as _read_index  # noqa: F401 - re-exported
from services.store.verify import CURRENT, VerifyReport, verify_connection

def backup(session: Session, dest: Path | str, automatic: bool = False) -> VerifyReport:
    """Copy the open store to `dest` (plus its key file) and verify the copy; nothing is left on failure. `automatic`:
    the daily backup (services.site.daily_backup), which any session makes."""
    session.require(Permission.READ_DEIDENTIFIED if automatic else Permission.BACKUP, "make backups")
    if session.on_server:
        raise BackupError("A server store is backed up by the hospital's DBA on the server (pg_dump or the "
                          "server's own backups; docs/security.md), not from a desk.")
    dest = Path(dest)
    if dest.exists():
        raise BackupError(f"{dest} already exists; choose a new file name.")
    check_new_store_path(dest)   # a backup is a store: no URL, no folder tree made from a typo
    key = session.db.key_copy()
    try:
        report = write_verified_copy(session.db.conn, key, key_file_path(session.store_path), dest, CURRENT)
    finally:
        for i in range(len(key)):
            key[i] = 0
    head = anchors.signed_head(session.db.conn, session.db.trust)   # the copy's last row (taken before this log)
    session.log("backup", "store", "", f"{'daily backup ' if automatic else ''}to {dest.name}: "
                                       f"{report.audit_rows} audit rows")
    _record_in_index(session.store_path, dest, report, head)
    return report


# --- finding the last verified backup (offered when the store is damaged) ----------------------------

def _record_in_index(store_path: Path, dest: Path, report: VerifyReport, head: dict | None = None) -> None:
    """Best effort: a backup that verified is valid whether or not the index could be written. `head` is the audit row
    the backup ends with, signed by the user who made it (services.site.anchors.check_backup_heads)."""
    try:
        entries = [e for e in _read_index(store_path) if e.get("path") != str(dest.resolve())]
        entries.append({"path": str(dest.resolve()), "created_at": dt.datetime.now().isoformat(timespec="microseconds"),
                        "size": dest.stat().st_size, "sha256": sha256_file(dest),
                        "keys_sha256": sha256_file(key_file_path(dest)), "audit_rows": report.audit_rows,
                        **({"head": head} if head else {})})
        _write_index(store_path, entries)
    except OSError:
        pass


def _write_index(store_path: Path, entries: list[dict]) -> None:
    idx = backup_index_path(store_path)
    fd, tmp = exclusive_temp(idx.absolute().parent, idx.name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps({"format": "wardlens-backups", "backups": entries[-200:]}, indent=1))
        os.replace(tmp, idx)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class VerifiedBackup:
    """A backup that passed its checks just now; `how` says which checks (shown to the user)."""
    path: Path
    created_at: str        # ISO time the backup was written (file time when it was found by scanning)
    size: int
    audit_rows: int        # -1 when only the checksum could be checked (no credentials given)
    how: str


def _candidates(store_path: Path, folders: Iterable[Path | str]) -> list[dict]:
    found = {e["path"]: dict(e) for e in _read_index(store_path)}
    try:
        store_id = KeyFile.load(key_file_path(store_path)).store_id
    except KeyFileError:
        store_id = None  # the key file is damaged too: scanned backups cannot be matched to this store
    for folder in folders:
        for keys in sorted(Path(folder).glob("*.keys")):
            db = Path(str(keys)[:-len(".keys")])
            if str(db.resolve()) in found or not db.is_file() or db.resolve() == store_path.resolve():
                continue
            if db.name.startswith(".") or db.name.endswith((".partial", ".restoring", ".part")):
                continue
            try:
                if store_id is None or KeyFile.load(keys).store_id != store_id:
                    continue
            except KeyFileError:
                continue
            found[str(db.resolve())] = {"path": str(db.resolve()), "size": db.stat().st_size,
                                        "created_at": dt.datetime.fromtimestamp(db.stat().st_mtime).isoformat(
                                            timespec="seconds")}
    # newest first; among equal times the one recorded later in the index
    order = sorted(enumerate(found.values()), key=lambda t: (str(t[1].get("created_at", "")), t[0]), reverse=True)
    return [e for _, e in order]


def check_backup(path: Path | str, username: str | None = None, password: str | None = None,
                 expected_sha256: str | None = None) -> VerifiedBackup | None:
    """Verify one backup without writing to it; None when it fails any check.

    With credentials: the password unwraps the data key from the backup's own key file and the copy gets
    the full check (page HMACs, structure, foreign keys, schema, audit chain) on a read-only connection.
    Without: only the digest recorded when the backup was written (if any) is compared.
    """
    path = Path(path)
    kpath = key_file_path(path)
    if not path.is_file() or not kpath.is_file():
        return None
    try:
        if expected_sha256 and sha256_file(path) != expected_sha256:
            return None
        st = path.stat()
        created = dt.datetime.fromtimestamp(st.st_mtime).isoformat(timespec="seconds")
        if username is None or password is None:
            if not expected_sha256:
                return None
            return VerifiedBackup(path, created, st.st_size, -1, "unchanged since it was written and verified")
        keys = KeyFile.load(kpath)
        key = keys.data_key(f"user:{username.strip().lower()}", password.encode("utf-8"))
    except (OSError, KeyFileError, WrongPassword):
        return None
    try:
        conn = connect_raw(f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro", key, uri=True)
        try:
            report = verify_connection(conn, expect_version=None)   # an earlier release's backup is upgraded when opened
            store_id = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
        finally:
            conn.close()
    except DatabaseError:
        return None
    finally:
        for i in range(len(key)):
            key[i] = 0
    if not report.ok or not store_id or store_id[0] != keys.store_id:
        return None
    return VerifiedBackup(path, created, st.st_size, report.audit_rows, "full check: encryption, structure, "
                          "references and audit chain")


def latest_verified_backup(store_path: Path | str, username: str | None = None, password: str | None = None,
                           folders: Iterable[Path | str] = ()) -> VerifiedBackup | None:
    """The newest backup of this store that verifies now, for the 'restore the last verified backup' offer.

    Candidates: every backup recorded in `<store>.backups.json` (written by `backup`) plus backups of the
    same store (matched by the store id in their key file) found in `folders`. Newest first; the first one
    that passes `check_backup` wins. Never raises for a missing or damaged backup; returns None if none
    verifies. Restore it with `restore(result.path, store_path, username, password)`.
    """
    store_path = Path(store_path)
    for entry in _candidates(store_path, folders):
        found = check_backup(entry["path"], username, password, entry.get("sha256"))
        if found is not None:
            return VerifiedBackup(found.path, str(entry.get("created_at") or found.created_at), found.size,
                                  found.audit_rows if found.audit_rows >= 0 else int(entry.get("audit_rows", -1)),
                                  found.how)
    return None


class RestoreRefused(WardLensError):
    """The backup is of another store and no administrator of the current store confirmed."""


def _store_id_of(store_path: Path) -> str | None:
    try:
        return KeyFile.load(key_file_path(store_path)).store_id
    except KeyFileError:
        return None


def _confirm_other_store(store_path: Path, backup_path: Path, backup_id: str,
                         confirm: tuple[str, str] | None) -> str:
    """An administrator of the CURRENT store approves replacing it with another store's backup, and the approval is
    written to the current store's audit log (kept beside the restored one). Returns the administrator's name."""
    if confirm is None:
        raise RestoreRefused(f"{backup_path.name} is a backup of another store, not of {store_path.name}. Replacing "
                             "this store with it needs an administrator of this store to confirm with their password "
                             "(--confirm-admin on the command line).")
    admin = unlock(store_path, confirm[0], confirm[1])
    try:
        if not admin.can(Permission.MANAGE_USERS):
            admin.log("denied", "permission", "restore", "confirm replacing the store with another store's backup")
            raise RestoreRefused("Only an administrator of this store can confirm replacing it with another store.")
        admin.log("restore_replaced", "store", backup_id, f"replaced by {backup_path.name}, a backup of another store")
        return admin.user.username
    finally:
        admin.lock(reason="restore")


def _drop_heads(store_path: Path, paths: set[str]) -> None:
    if not paths:
        return
    entries = [{k: v for k, v in e.items() if k != "head" or e["path"] not in paths} for e in _read_index(store_path)]
    try:
        _write_index(store_path, entries)
    except OSError:
        pass


def _older_keys(backup_path: Path, store_path: Path) -> BackupError | None:
    """Say so when a backup predates a key rotation: it opens only with the passwords valid when it was made."""
    try:
        then = int(KeyFile.load(key_file_path(backup_path)).data.get("key_epoch", 0))
        now = int(KeyFile.load(key_file_path(store_path)).data.get("key_epoch", 0))
    except (KeyFileError, ValueError, TypeError):
        return None
    if then < now:
        return BackupError(f"{backup_path.name} was made before the store's keys were last rotated: it opens only "
                           "with a user name and password that were valid when it was made.")
    return None


def restore(backup_path: Path | str, store_path: Path | str, username: str, password: str,
            confirm: tuple[str, str] | None = None) -> Path:
    """Replace the store with a verified backup; the replaced store is kept beside it, never deleted.

    The credentials must open the backup (its own key file), so a restore needs a user of that backup with the
    backup permission. A backup of ANOTHER store (a different store id) replaces an existing store only when an
    administrator of the current store confirms (`confirm` = their name and password); it is audited in both.
    Returns the path where the previous store was kept (or the store path if there was none).
    """
    backup_path, store_path = Path(backup_path), Path(store_path)
    if not store_path.absolute().parent.is_dir():
        raise BackupError(f"the folder {store_path.absolute().parent} does not exist; WardLens does not create folders "
                          "for a store: create it first or check the path.")
    if not backup_path.is_file() or not key_file_path(backup_path).is_file():
        raise BackupError(f"{backup_path} and its key file {key_file_path(backup_path).name} are both needed.")
    # Work on a copy so the backup itself is never written to, and so the login and restore events
    # land in the audit log of the store that results.
    folder = store_path.absolute().parent
    tmp = exclusive_copy(backup_path, folder, store_path.name + ".restoring")  # exclusive, no links, 0600
    tmp_keys = Path(str(tmp) + ".keys")
    try:
        exclusive_copy(key_file_path(backup_path), folder, tmp_keys.name, exact=True)
        try:
            session = unlock(tmp, username, password)
        except WrongPassword:
            raise _older_keys(backup_path, store_path) or WrongPassword() from None
        try:
            session.require(Permission.BACKUP, "restore backups")
            report = verify_connection(session.db.conn)
            if not report.ok:
                raise BackupError("The backup does not verify: " + "; ".join(report.problems))
            backup_id = session.db.conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0]
            detail = f"restored from {backup_path.name}"
            if store_path.exists() and backup_id != _store_id_of(store_path):
                approver = _confirm_other_store(store_path, backup_path, backup_id, confirm)
                detail += f", replacing another store ({_store_id_of(store_path)}), confirmed by {approver}"
            session.log("restore", "store", "", detail)
            # backups newer than this one no longer describe the store: their heads stop being checked
            superseded = [e["path"] for e in _read_index(store_path) if isinstance(e.get("head"), dict) and
                          anchors.compare(session.db.conn, e["head"], "the backup") is not None]
            session.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            session.lock(reason="restore")
        _fsync(tmp)
    except BaseException as exc:
        for p in (tmp, tmp_keys, Path(str(tmp) + "-wal"), Path(str(tmp) + "-shm")):
            p.unlink(missing_ok=True)
        if isinstance(exc, (DatabaseError, OSError)) and is_disk_full(exc) and not isinstance(exc, DiskFull):
            raise BackupError("The disk is full: the backup was not restored and the current store is "
                              "unchanged. Free some space and try again.") from exc
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
    anchors.forget(backup_id)   # an older log is expected now; the restore itself is audited in the restored store
    _drop_heads(store_path, set(superseded))
    return kept if kept.exists() else store_path
