"""Key rotation: after it, no earlier key file and no earlier password opens the store; everyone still active does."""
from __future__ import annotations

import shutil

import pytest

from services.core.errors import StoreDamaged, ValidationError, WrongPassword
from services.desk import open_desk
from services.site.accounts import unlock
from services.site.backup import BackupError, backup, restore
from services.site.rotation import rotate_data_key
from services.store.database import DatabaseError, connect_raw
from services.store.keyfile import KeyFile, key_file_path
from tests.conftest import DEMO_PASSWORDS
from tests.security.conftest import as_user, cli


def _old_key(keys_file, user: str) -> bytearray:
    keys = KeyFile.load(keys_file)
    return keys.data_key(f"user:{user}", DEMO_PASSWORDS[user].encode())


def test_a_deactivated_users_old_password_and_old_key_file_no_longer_open_the_store(demo_store, tmp_path):
    """Before: a deactivated user's old password plus an old backup's .keys still opened the live store."""
    old_keys = tmp_path / "kept.keys"
    shutil.copy(key_file_path(demo_store), old_keys)   # what she took home before she left
    admin = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    admin.site.accounts.deactivate_user("nurse.demo")
    result = rotate_data_key(admin.session)
    admin.lock()
    assert result.epoch == 1 and result.without_grant == []   # her entry went at deactivation: she gets no grant
    assert sorted(result.granted) == ["analyst.demo", "dr.demo", "the recovery key"]
    key = _old_key(old_keys, "nurse.demo")
    with pytest.raises(DatabaseError):
        connect_raw(demo_store, key).execute("SELECT count(*) FROM patients").fetchone()
    shutil.copy(old_keys, key_file_path(demo_store))   # even put back beside the store
    with pytest.raises((StoreDamaged, WrongPassword)):
        unlock(demo_store, "nurse.demo", DEMO_PASSWORDS["nurse.demo"])


def test_every_active_user_opens_with_their_grant_and_it_is_used_up(demo_store):
    admin = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    rotate_data_key(admin.session)
    admin.lock()
    for user in ("admin", "dr.demo", "nurse.demo", "analyst.demo"):
        desk = open_desk(demo_store, user, DEMO_PASSWORDS[user])
        try:
            assert desk.warnings == [] and desk.records.patients.counts()[0] > 0
        finally:
            desk.lock()
    keys = KeyFile.load(key_file_path(demo_store))
    assert set(keys.data["grants"]) == {"recovery"}   # the recovery key takes its grant when it is next used
    report = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        assert report.site.verify().ok
    finally:
        report.lock()


def test_an_old_key_file_with_a_current_password_opens_nothing(demo_store, tmp_path):
    old_keys = tmp_path / "old.keys"
    shutil.copy(key_file_path(demo_store), old_keys)
    r = cli("rotate-keys", "--db", str(demo_store), env=as_user("admin", DEMO_PASSWORDS["admin"]))
    assert r.returncode == 0 and "epoch 1" in r.stdout, r.stderr
    key = _old_key(old_keys, "dr.demo")   # her password still opens her OLD entry: it holds a dead key
    with pytest.raises(DatabaseError):
        connect_raw(demo_store, key).execute("SELECT count(*) FROM patients").fetchone()


def test_only_an_administrator_can_rotate(demo_store):
    r = cli("rotate-keys", "--db", str(demo_store), env=as_user("dr.demo", DEMO_PASSWORDS["dr.demo"]))
    assert r.returncode == 1 and "may not rotate" in r.stderr


def test_a_backup_from_before_a_rotation_says_which_passwords_it_needs(demo_store, tmp_path):
    admin = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    backup(admin.session, tmp_path / "before.db")
    admin.site.accounts.change_password(DEMO_PASSWORDS["admin"], "a-new-admin-password")
    rotate_data_key(admin.session)
    admin.lock()
    with pytest.raises(BackupError, match="made before the store's keys were last rotated"):
        restore(tmp_path / "before.db", demo_store, "admin", "a-new-admin-password")
    restore(tmp_path / "before.db", demo_store, "admin", DEMO_PASSWORDS["admin"])   # the password valid then
    unlock(demo_store, "admin", DEMO_PASSWORDS["admin"]).lock()


def test_rotation_names_accounts_it_cannot_reach_and_needs_force(demo_store):
    admin = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        with admin.session.db.transaction() as c:   # an account from before the upgrade: no countersigned box key
            c.execute("UPDATE users SET key_sig = NULL WHERE username = 'analyst.demo'")
        with pytest.raises(ValidationError, match="analyst.demo"):
            rotate_data_key(admin.session)
        result = rotate_data_key(admin.session, force=True)
        assert result.without_grant == ["analyst.demo"]
    finally:
        admin.lock()
    with pytest.raises((StoreDamaged, WrongPassword)):
        unlock(demo_store, "analyst.demo", DEMO_PASSWORDS["analyst.demo"])


def test_a_crash_between_the_grants_and_the_rekey_leaves_a_store_everyone_opens(demo_store, monkeypatch):
    from services.store.database import Database
    admin = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    monkeypatch.setattr(Database, "rekey", lambda self, key: (_ for _ in ()).throw(OSError("power cut")))
    with pytest.raises(OSError):
        rotate_data_key(admin.session)
    monkeypatch.undo()
    admin.session.db.close()   # the process died: nothing more is written
    for user in ("admin", "nurse.demo"):
        unlock(demo_store, user, DEMO_PASSWORDS[user]).lock()   # grants that do not open the store are ignored


def test_the_recovery_key_still_opens_after_a_rotation(empty_store):
    from services.site.accounts import unlock_with_recovery
    admin = unlock(empty_store.path, "admin", "admin-password")
    assert rotate_data_key(admin).granted == ["the recovery key"]
    admin.lock()
    rescue = unlock_with_recovery(empty_store.path, empty_store.recovery_key)
    try:
        assert rescue.warnings == [] and rescue.db.trust.admin_key is not None
    finally:
        rescue.lock()
    assert "recovery" not in KeyFile.load(key_file_path(empty_store.path)).data["grants"]


def test_a_new_recovery_key_replaces_the_old_one_and_is_reached_by_rotations(empty_store):
    from services.site.accounts import AccountService, unlock_with_recovery
    from services.store.keyfile import KdfParams
    admin = unlock(empty_store.path, "admin", "admin-password")
    try:
        new_key = AccountService(admin, KdfParams.fast()).regenerate_recovery_key()
    finally:
        admin.lock()
    assert new_key != empty_store.recovery_key
    with pytest.raises(WrongPassword):
        unlock_with_recovery(empty_store.path, empty_store.recovery_key)
    admin = unlock(empty_store.path, "admin", "admin-password")
    assert rotate_data_key(admin).granted == ["the recovery key"]
    admin.lock()
    rescue = unlock_with_recovery(empty_store.path, new_key)
    try:
        assert rescue.warnings == [] and rescue.db.trust.admin_key is not None
    finally:
        rescue.lock()


def test_an_older_recovery_box_put_back_gets_no_grant(empty_store):
    from services.site.accounts import AccountService
    from services.store.keyfile import KdfParams
    admin = unlock(empty_store.path, "admin", "admin-password")
    old_box = admin.db.conn.execute("SELECT value FROM meta WHERE key = 'recovery_box'").fetchone()[0]
    AccountService(admin, KdfParams.fast()).regenerate_recovery_key()
    with admin.db.transaction() as c:   # the insider puts the old (signed) box back
        c.execute("UPDATE meta SET value = ? WHERE key = 'recovery_box'", (old_box,))
    try:
        with pytest.raises(ValidationError, match="recovery key"):
            rotate_data_key(admin)   # it is not current: the rotation will not seal the new key to it
    finally:
        admin.lock()
