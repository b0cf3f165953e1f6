"""Disk full during an import or a backup: a clean error, nothing partial, the store intact.

A real full disk: a small tmpfs mounted for the test (needs root and permission to mount, as in CI's
container; skipped with the reason otherwise). SQLite then gets ENOSPC exactly as on a full drive."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from services.site.accounts import create_store, unlock
from services.site.backup import BackupError, backup
from services.store.database import DiskFull
from services.records.importer import import_uci_csv
from services.store.verify import verify_connection
from tests.conftest import FAST

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "demo" / "uci_sample.csv.gz"


def _mount(path: Path, size: str) -> Path:
    path.mkdir(parents=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a full disk is simulated with a small tmpfs, which needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()[:80]})")
    return path


@pytest.fixture
def small_disk(tmp_path):
    mounts = []

    def make(size: str) -> Path:
        mounts.append(_mount(tmp_path / f"disk{len(mounts)}", size))
        return mounts[-1]
    yield make
    for m in mounts:
        subprocess.run(["umount", "-l", str(m)], capture_output=True)


def _counts(conn) -> tuple:
    return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                 for t in ("patients", "encounters", "diagnoses", "medications", "audit_log"))


@pytest.mark.parametrize("spill", [False, True], ids=["fails-at-commit", "fails-mid-import"])
def test_import_on_a_full_disk_changes_nothing(small_disk, spill):
    disk = small_disk("1200k")
    store = disk / "site.db"
    create_store(store, "admin", "admin-password", FAST)
    s = unlock(store, "admin", "admin-password")
    before = _counts(s.db.conn)
    if spill:  # a tiny page cache makes SQLite write pages to the WAL long before COMMIT
        s.db.conn.execute("PRAGMA cache_size = 8")
    with pytest.raises(DiskFull, match="disk is full.*Nothing from this operation was saved"):
        import_uci_csv(s, SAMPLE)
    assert not s.db.conn.in_transaction
    assert _counts(s.db.conn) == before
    s.lock()
    # the store still opens and verifies after the failure (free space again first, as a user would)
    s = unlock(store, "admin", "admin-password")
    assert verify_connection(s.db.conn).ok
    assert _counts(s.db.conn)[:4] == before[:4]
    s.lock()


def test_backup_to_a_full_disk_leaves_nothing_and_the_store_intact(demo_store, small_disk):
    disk = small_disk("256k")
    s = unlock(demo_store, "admin", "wardlens-admin")
    before = _counts(s.db.conn)
    with pytest.raises(BackupError, match="full: no backup was written"):
        backup(s, disk / "b.db")
    assert list(disk.iterdir()) == []  # no backup, no .partial, no key file copy
    assert _counts(s.db.conn) == before
    assert verify_connection(s.db.conn).ok
    s.lock()


def test_adding_a_person_when_the_key_file_cannot_be_written_changes_nothing(empty_store, monkeypatch):
    """The account and its key-file entry are saved together or not at all (the key file is written inside the
    store's transaction; a key file that cannot be written rolls the account back)."""
    from models.domain import Role
    from services.site.accounts import AccountService
    from services.store.keyfile import KeyFile
    s = unlock(empty_store.path, "admin", "admin-password")
    try:
        users = s.db.conn.execute("SELECT count(*) FROM users").fetchone()[0]
        real_save = KeyFile.save
        monkeypatch.setattr(KeyFile, "save", lambda self: (_ for _ in ()).throw(OSError(28, "No space left on device")))
        with pytest.raises(OSError):
            AccountService(s, FAST).add_user("nurse9", "nurse9-password", Role.NURSE)
        monkeypatch.setattr(KeyFile, "save", real_save)
        assert s.db.conn.execute("SELECT count(*) FROM users").fetchone()[0] == users
        AccountService(s, FAST).add_user("nurse9", "nurse9-password", Role.NURSE)   # and it can be added again
    finally:
        s.lock()
    unlock(empty_store.path, "nurse9", "nurse9-password").lock()
