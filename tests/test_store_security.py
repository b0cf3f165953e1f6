"""The encrypted store: keys, wrong passwords, damage, plain SQLite, the file on disk."""
from __future__ import annotations

import sqlite3

import pytest

from services.site import accounts
from services.site.accounts import AccountService, create_store, unlock, unlock_with_recovery
from services.core.errors import KeyFileError, LoginThrottled, NotEncrypted, StoreDamaged, WrongPassword
from services.store.keyfile import FREE_ATTEMPTS, KdfParams, KeyFile, key_file_path
from tests.conftest import FAST


def test_wrong_password_and_damaged_store_say_different_things(empty_store):
    path = empty_store.path
    with pytest.raises(WrongPassword) as wrong:
        unlock(path, "admin", "not-the-password")
    # Damage pages in the middle of the file (the key stays right).
    data = bytearray(path.read_bytes())
    assert len(data) >= 8192
    for i in range(4096, 8192):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(StoreDamaged) as damaged:
        s = unlock(path, "admin", "admin-password")
        s.db.conn.execute("SELECT count(*) FROM audit_log").fetchone()
    assert "Wrong" in str(wrong.value) and "damaged" in str(damaged.value)
    assert str(wrong.value) != str(damaged.value)


def test_plain_sqlite_file_is_refused(tmp_path):
    plain = tmp_path / "plain.db"
    con = sqlite3.connect(plain)
    con.execute("CREATE TABLE patients (name TEXT)")
    con.commit()
    con.close()
    key_file_path(plain).write_text("{}")
    with pytest.raises(NotEncrypted):
        unlock(plain, "admin", "whatever-pass")


def test_store_file_has_no_header_no_schema_text_and_sqlite_cannot_read_it(demo_store):
    raw = demo_store.read_bytes()
    assert not raw.startswith(b"SQLite format 3")
    for word in (b"CREATE TABLE", b"patients", b"encounters", b"audit_log"):
        assert word not in raw
    con = sqlite3.connect(demo_store)
    with pytest.raises(sqlite3.DatabaseError):
        con.execute("SELECT * FROM sqlite_master").fetchall()
    con.close()


def test_key_file_holds_no_usable_key(empty_store):
    session = unlock(empty_store.path, "admin", "admin-password")
    key = session.db.key_copy()
    text = key_file_path(empty_store.path).read_bytes()
    assert bytes(key).hex().encode() not in text and bytes(key) not in text
    assert b"admin-password" not in text and empty_store.recovery_key.encode() not in text
    session.lock()
    assert not any(session.db._key), "the key is wiped from memory on lock"


def test_wal_and_full_sync(empty_store):
    s = unlock(empty_store.path, "admin", "admin-password")
    assert s.db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s.db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    s.lock()


def test_recovery_key_opens_the_store_and_wrong_one_does_not(empty_store):
    s = unlock_with_recovery(empty_store.path, empty_store.recovery_key.lower().replace("-", " "))
    assert s.user.role.value == "admin"
    s.lock()
    with pytest.raises(WrongPassword):
        unlock_with_recovery(empty_store.path, "AAAA-BBBB-CCCC-DDDD-EEEE-FFFF-GGGG-HHHH")


def test_missing_and_foreign_key_files(tmp_path, empty_store):
    (tmp_path / "other").mkdir()
    other = create_store(tmp_path / "other" / "b.db", "admin", "admin-password", FAST)
    # The other store's key file opens its own data key, which does not open this store.
    key_file_path(empty_store.path).write_bytes(key_file_path(other.path).read_bytes())
    with pytest.raises((KeyFileError, StoreDamaged)):
        unlock(empty_store.path, "admin", "admin-password")
    key_file_path(empty_store.path).unlink()
    with pytest.raises(KeyFileError, match="missing"):
        unlock(empty_store.path, "admin", "admin-password")


def test_failed_logins_are_throttled_and_audited(empty_store):
    for _ in range(FREE_ATTEMPTS):
        with pytest.raises(WrongPassword):
            unlock(empty_store.path, "admin", "bad-password")
    with pytest.raises(LoginThrottled):
        unlock(empty_store.path, "admin", "admin-password")
    # Let the wait pass: move the recorded failure time back.
    keys = KeyFile.load(key_file_path(empty_store.path))
    keys.data["failures"]["admin"]["last"] -= 3600
    keys.save()
    s = unlock(empty_store.path, "admin", "admin-password")
    failed = s.db.conn.execute("SELECT count(*) FROM audit_log WHERE action = 'login_failed'").fetchone()[0]
    assert failed == FREE_ATTEMPTS
    s.lock()


def test_deactivated_user_cannot_log_in(empty_store):
    s = unlock(empty_store.path, "admin", "admin-password")
    from models.domain import Role
    AccountService(s, FAST).add_user("nurse1", "nurse-password", Role.NURSE)
    AccountService(s, FAST).deactivate_user("nurse1")
    s.lock()
    with pytest.raises(WrongPassword):
        unlock(empty_store.path, "nurse1", "nurse-password")


def test_change_password(empty_store):
    s = unlock(empty_store.path, "admin", "admin-password")
    with pytest.raises(WrongPassword):
        AccountService(s, FAST).change_password("wrong-old-pass", "new-password-1")
    AccountService(s, FAST).change_password("admin-password", "new-password-1")
    s.lock()
    with pytest.raises(WrongPassword):
        unlock(empty_store.path, "admin", "admin-password")
    unlock(empty_store.path, "admin", "new-password-1").lock()


def test_kdf_is_calibrated_to_about_half_a_second():
    import time
    from services.store.keyfile import derive
    params = KdfParams.calibrated(0.5)
    t = time.perf_counter()
    derive(b"pw", b"salt-salt-salt-1", params)
    took = time.perf_counter() - t
    assert 0.15 < took < 2.0, took  # loose: a shared CI machine, but never a trivial KDF


def test_create_refuses_to_overwrite(empty_store):
    with pytest.raises(accounts.WardLensError):
        create_store(empty_store.path, "admin", "admin-password", FAST)


def test_interrupted_demo_build_leaves_no_store_and_can_be_redone(tmp_path):
    from services.records.demo import build_demo_store

    def stop_at_import(done, total, message=""):
        if "Importing" in message:
            raise KeyboardInterrupt("window closed")

    target = tmp_path / "demo.db"
    with pytest.raises(KeyboardInterrupt):
        build_demo_store(target, kdf=FAST, progress=stop_at_import)
    assert not target.exists() and not key_file_path(target).exists()
    build_demo_store(target, kdf=FAST)
    unlock(target, "admin", "wardlens-admin").lock()
    assert not list(tmp_path.glob("*.building*"))
