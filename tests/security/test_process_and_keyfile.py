"""The process and the key file as an attacker meets them: environment, core dumps, user-name probing, planted
parameters and malformed fields."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from services.core.errors import KeyFileError, LoginThrottled, WrongPassword
from services.site.accounts import unlock
from services.store import keyfile
from services.store.keyfile import KdfParams, KeyFile, key_file_path
from tests.security.conftest import ROOT, as_user, cli

PROBE = """
import os, resource, sys
sys.path.insert(0, {root!r})
import main
from services.core.hardening import is_dumpable
env = open('/proc/self/environ', 'rb').read()
print(b'pw-in-environ' in env, b'rk-in-environ' in env, main._ENV_PASSWORD, main._ENV_RECOVERY,
      os.environ.get('WARDLENS_PASSWORD'), resource.getrlimit(resource.RLIMIT_CORE), is_dumpable())
"""


def test_the_cli_wipes_the_password_from_its_environment_and_cannot_dump_core():
    """Before: the CLI password sat in /proc/PID/environ for the whole run, and core dumps were allowed."""
    env = {"WARDLENS_PASSWORD": "pw-in-environ", "WARDLENS_RECOVERY_KEY": "rk-in-environ", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT))], capture_output=True, text=True, env=env,
                       timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False", "pw-in-environ", "rk-in-environ", "None", "(0,", "0)", "False"]


def test_an_unknown_user_costs_the_same_derivation_as_a_known_one(empty_store, monkeypatch):
    """Before: unknown user names answered in 1 ms and real ones in 360 ms."""
    calls: list[KdfParams] = []
    real = keyfile.derive
    monkeypatch.setattr(keyfile, "derive", lambda s, salt, p: calls.append(p) or real(s, salt, p))
    for user in ("admin", "nobody-here"):
        with pytest.raises(WrongPassword):
            unlock(empty_store.path, user, "not the password")
    assert len(calls) == 2 and calls[0] == calls[1]  # one derivation each, at the real entry's cost


def _tamper(store, change) -> None:
    path = key_file_path(store)
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.parametrize("field,value", [("kdf_p", 100000), ("kdf_n", 2**30), ("kdf_n", 3), ("kdf_r", -1),
                                         ("kdf_p", "many"), ("salt", "!!not base64"), ("nonce", "AAAA"),
                                         ("wrapped", 7), ("kdf_n", None)])
def test_planted_or_malformed_key_file_parameters_are_refused_at_once(empty_store, field, value):
    """Before: kdf_p=100000 hung the unlock; malformed fields raised unhandled errors."""
    _tamper(empty_store.path, lambda d: d["entries"]["user:admin"].__setitem__(field, value))
    start = time.monotonic()
    r = cli("verify", "--db", str(empty_store.path), env=as_user("admin", "admin-password"), timeout=60)
    assert r.returncode == 1 and "damaged" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert time.monotonic() - start < 30
    with pytest.raises(KeyFileError, match="damaged"):
        KeyFile.load(key_file_path(empty_store.path)).unwrap("user:admin", b"admin-password")


@pytest.mark.parametrize("change", [
    lambda d: d.__setitem__("failures", "lots"), lambda d: d.__setitem__("failures", {"admin": "x"}),
    lambda d: d.__setitem__("failures", {"admin": {"count": "x", "last": "y"}}),
    lambda d: d.__setitem__("pending_audit", {"not": "a list"}),
    lambda d: d.__setitem__("pending_audit", [{"ts": "yesterday", "username": ["a"]}, 5]),
    lambda d: d.__setitem__("entries", {"user:admin": "x", **d["entries"]}),
])
def test_malformed_throttling_records_never_crash_a_login(empty_store, change):
    _tamper(empty_store.path, change)
    try:
        session = unlock(empty_store.path, "admin", "admin-password")
    except (KeyFileError, WrongPassword, LoginThrottled):
        return  # the admin's own entry or counter was the one damaged: refused with a sentence, not a traceback
    try:
        rows = session.db.conn.execute("SELECT username, detail FROM audit_log WHERE action = 'login_failed'").fetchall()
        assert all(isinstance(u, str) for u, _ in rows)
    finally:
        session.lock()


def test_a_future_timestamp_cannot_lock_a_user_out_forever(empty_store):
    _tamper(empty_store.path, lambda d: d.__setitem__("failures", {"admin": {"count": 3, "last": 4e12}}))
    keys = KeyFile.load(key_file_path(empty_store.path))
    with pytest.raises(LoginThrottled) as caught:
        keys.check_throttle("admin")
    assert caught.value.wait_s <= 2  # the planted future time counts as now: the usual short wait, not 4e12 s


def test_a_lone_surrogate_in_the_search_box_finds_nothing_instead_of_raising(sessions):
    from services.records.patients import PatientService
    service = PatientService(sessions("dr.demo"))
    assert service.search("\ud800") == service.search("")
    assert service.search("a\udfffb") == service.search("ab")
