"""Restore: a backup of another store never replaces the site's store unless one of its administrators confirms."""
from __future__ import annotations

import hashlib

import pytest

from services.core.errors import WrongPassword
from services.site.accounts import create_store, unlock
from services.site.backup import RestoreRefused, backup, restore
from services.store.keyfile import KdfParams
from tests.security.conftest import as_user, cli

FAST = KdfParams.fast()


def _digest(p) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def own_store(tmp_path):
    """A store the nurse made herself, where she is the administrator."""
    (tmp_path / "mine").mkdir()
    return create_store(tmp_path / "mine" / "fake.db", "nurse.demo", "wardlens-nurse", FAST).path


def test_a_nurse_cannot_restore_a_store_of_her_own_making_over_the_sites(demo_store, own_store):
    """Before: a nurse could `restore` a store of her own making over the site's store."""
    before = _digest(demo_store)
    r = cli("restore", "--db", str(demo_store), "--backup", str(own_store), env=as_user("nurse.demo", "wardlens-nurse"))
    assert r.returncode == 1 and "backup of another store" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert _digest(demo_store) == before
    assert sorted(p.name for p in demo_store.parent.iterdir()) == sorted([demo_store.name, demo_store.name + ".keys"])


def test_only_an_administrator_of_the_current_store_can_confirm(demo_store, own_store):
    with pytest.raises(RestoreRefused, match="Only an administrator"):
        restore(own_store, demo_store, "nurse.demo", "wardlens-nurse", confirm=("dr.demo", "wardlens-clinician"))
    with pytest.raises(WrongPassword):
        restore(own_store, demo_store, "nurse.demo", "wardlens-nurse", confirm=("admin", "guess"))
    session = unlock(demo_store, "admin", "wardlens-admin")  # the site's store is untouched and opens
    try:
        denied = session.db.conn.execute("SELECT username FROM audit_log WHERE action = 'denied' AND "
                                         "entity_id = 'restore'").fetchall()
        assert denied == [("dr.demo",)]
    finally:
        session.lock()


def test_a_confirmed_restore_of_another_store_is_audited_in_both(demo_store, own_store):
    kept = restore(own_store, demo_store, "nurse.demo", "wardlens-nurse", confirm=("admin", "wardlens-admin"))
    old = unlock(kept, "admin", "wardlens-admin")
    try:
        rows = old.db.conn.execute("SELECT username, detail FROM audit_log WHERE action = 'restore_replaced'").fetchall()
        assert rows and rows[0][0] == "admin" and "another store" in rows[0][1]
    finally:
        old.lock()
    new = unlock(demo_store, "nurse.demo", "wardlens-nurse")
    try:
        detail = new.db.conn.execute("SELECT detail FROM audit_log WHERE action = 'restore'").fetchone()[0]
        assert "replacing another store" in detail and "confirmed by admin" in detail
    finally:
        new.lock()


def test_a_backup_of_the_same_store_restores_without_extra_confirmation(demo_store, tmp_path):
    session = unlock(demo_store, "admin", "wardlens-admin")
    try:
        backup(session, tmp_path / "b.db")
    finally:
        session.lock()
    restore(tmp_path / "b.db", demo_store, "admin", "wardlens-admin")
    unlock(demo_store, "admin", "wardlens-admin").lock()


def test_restoring_an_older_backup_through_wardlens_raises_no_false_alarm(demo_store, tmp_path):
    session = unlock(demo_store, "admin", "wardlens-admin")
    backup(session, tmp_path / "monday.db")
    session.log("read", "patients", "", "work after Monday")
    backup(session, tmp_path / "tuesday.db")
    session.lock()
    restore(tmp_path / "monday.db", demo_store, "admin", "wardlens-admin")
    s = unlock(demo_store, "admin", "wardlens-admin")
    try:
        assert s.warnings == []   # Tuesday's head no longer describes the store; this desk's anchor was reset
    finally:
        s.lock()
