"""The key never on disk, and wrong passwords throttled then locked out, with audit events.

The scan: a data folder used the way a site uses it (store, key file, live -wal/-shm, failed logins,
a second user, a password change, an import, settings, a backup beside it), searched byte by byte for
the data key (raw, hex both cases, base64), and for every password used (UTF-8 and UTF-16)."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest

from services.site import accounts

from services.store import keyfile
from services.site.accounts import AccountService, create_store, unlock
from services.site.backup import backup
from services.core.errors import LoginThrottled, WrongPassword
from services.records.importer import import_uci_csv
from services.store.keyfile import FREE_ATTEMPTS, LOCKOUT_AFTER, LOCKOUT_S, KeyFile, key_file_path
from services.site.settings import SettingsService
from models.domain import Role
from tests.conftest import FAST

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "demo" / "uci_sample.csv.gz"
PASSWORDS = ("admin-password-7Q", "nurse-password-3Z", "nurse-password-NEW")


def _needles(key: bytes) -> dict[str, bytes]:
    n = {"key raw": key, "key hex": key.hex().encode(), "key HEX": key.hex().upper().encode(),
         "key base64": base64.b64encode(key).rstrip(b"="), "key sql literal": f"x'{key.hex()}'".encode()}
    for pw in PASSWORDS:
        n[f"password {pw} utf-8"] = pw.encode()
        n[f"password {pw} utf-16"] = pw.encode("utf-16-le")
    return n


def _scan(folder: Path, needles: dict[str, bytes]) -> list[str]:
    hits = []
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files
    for p in files:
        data = p.read_bytes()
        hits += [f"{what} in {p.name}" for what, needle in needles.items() if needle in data]
    return hits


def test_no_key_and_no_password_anywhere_in_the_data_folder(tmp_path, monkeypatch):
    made: list[bytes] = []
    real = keyfile.new_data_key

    def spy() -> bytearray:
        k = real()
        made.append(bytes(k))
        return k
    monkeypatch.setattr(accounts, "new_data_key", spy)
    home = tmp_path / "WardLens"
    monkeypatch.setenv("WARDLENS_HOME", str(home))
    store = home / "wardlens.db"
    home.mkdir()
    create_store(store, "admin", PASSWORDS[0], FAST)
    (key,) = made
    for _ in range(2):
        with pytest.raises(WrongPassword):
            unlock(store, "admin", PASSWORDS[1])  # a real password of another user, typed for admin
    s = unlock(store, "admin", PASSWORDS[0])
    AccountService(s, FAST).add_user("nurse", PASSWORDS[1], Role.NURSE)
    import_uci_csv(s, SAMPLE)
    SettingsService(s).set("idle_lock_minutes", "15")
    (home / "backups").mkdir(exist_ok=True)
    backup(s, home / "backups" / "b1.db")
    n = unlock(store, "nurse", PASSWORDS[1])
    AccountService(n, FAST).change_password(PASSWORDS[1], PASSWORDS[2])
    n.lock()
    needles = _needles(key)
    # while unlocked: the -wal and -shm are there too
    assert Path(str(store) + "-wal").exists()
    assert _scan(home, needles) == []
    s.lock()
    assert _scan(home, needles) == []
    assert not any(s.db._key)  # wiped from memory at lock


def test_wrong_passwords_throttle_then_lock_out_and_every_failure_is_audited(empty_store):
    path = empty_store.path

    def age_last_failure(seconds: float) -> None:
        keys = KeyFile.load(key_file_path(path))
        keys.data["failures"]["admin"]["last"] -= seconds
        keys.save()

    for i in range(LOCKOUT_AFTER):
        if i >= FREE_ATTEMPTS:
            with pytest.raises(LoginThrottled):  # the right password is not even tried while throttled
                unlock(path, "admin", "admin-password")
            age_last_failure(3600)
        with pytest.raises(WrongPassword):
            unlock(path, "admin", f"wrong-{i}")
    with pytest.raises(LoginThrottled) as locked:
        unlock(path, "admin", "admin-password")
    assert locked.value.wait_s > LOCKOUT_S - 60 and "Try again in" in str(locked.value)
    age_last_failure(LOCKOUT_S / 2)
    with pytest.raises(LoginThrottled):
        unlock(path, "admin", "admin-password")
    # another account is not locked by admin's failures
    with pytest.raises(WrongPassword):
        unlock(path, "nobody", "x")
    age_last_failure(LOCKOUT_S)
    s = unlock(path, "admin", "admin-password")
    rows = s.db.conn.execute("SELECT username, detail FROM audit_log WHERE action = 'login_failed' ORDER BY id").fetchall()
    assert [u for u, _ in rows].count("admin") == LOCKOUT_AFTER
    assert ("nobody", "wrong password (attempt 1)") in rows
    assert KeyFile.load(key_file_path(path)).data["failures"].get("admin") is None  # reset by the success
    s.lock()


def test_recovery_key_attempts_are_throttled_too(empty_store):
    from services.site.accounts import unlock_with_recovery
    for _ in range(FREE_ATTEMPTS):
        with pytest.raises(WrongPassword):
            unlock_with_recovery(empty_store.path, "AAAA-BBBB")
    with pytest.raises(LoginThrottled):
        unlock_with_recovery(empty_store.path, empty_store.recovery_key)
