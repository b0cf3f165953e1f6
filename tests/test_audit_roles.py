"""Roles enforced in services, the hash-chained audit log, and the idle lock."""
from __future__ import annotations

import pytest

from tests.conftest import identities

from services.site.accounts import unlock
from services.store.audit import verify_chain
from services.site.backup import backup
from services.core.errors import PermissionDenied, SessionLocked
from services.records.importer import import_uci_csv
from services.records.patients import PatientService
from services.site.session import Session

CLIN = ("dr.demo", "wardlens-clinician")
NURSE = ("nurse.demo", "wardlens-nurse")
ANALYST = ("analyst.demo", "wardlens-analyst")


def test_nurse_cannot_export_import_or_edit(demo_store, tmp_path):
    s = unlock(demo_store, *NURSE)
    with pytest.raises(PermissionDenied):
        import_uci_csv(s, tmp_path / "x.csv")
    with pytest.raises(PermissionDenied):
        backup(s, tmp_path / "b.db")
    with pytest.raises(PermissionDenied):
        PatientService(s).add_patient({"mrn": "X1", "family_name": "Doe"})
    assert not s.can(__import__("models.domain").domain.Permission.EXPORT)
    denied = s.db.conn.execute("SELECT count(*) FROM audit_log WHERE action = 'denied'").fetchone()[0]
    assert denied == 3
    s.lock()


def test_analyst_sees_no_names_and_cannot_search_by_name(demo_store):
    clin = unlock(demo_store, *CLIN)
    rows = PatientService(clin).search("")
    family = rows[0].name.split(",")[0]
    pid = rows[0].patient_id
    clin.lock()
    a = unlock(demo_store, *ANALYST)
    svc = PatientService(a)
    assert all(r.name.startswith("Patient ") for r in svc.search(""))
    assert svc.search(family.lower()) == [] or all(family not in r.name for r in svc.search(family.lower()))
    with pytest.raises(PermissionDenied):  # the record (dates, beds, every stay) is the care team's page
        svc.get_patient(pid)
    with pytest.raises(PermissionDenied):
        svc.encounters(pid)
    with pytest.raises(PermissionDenied):
        svc.add_patient({"mrn": "X1", "family_name": "Doe"})
    # a hospital number is an identifier too: pseudonyms on screen, and no search by number
    mrn = identities(demo_store)[pid].mrn
    assert len(mrn) >= 5
    seen = {r.patient_id: r.mrn for r in svc.search("")}
    assert all(ref.startswith("P-") and ref != mrn for ref in seen.values()) and mrn not in seen.values()
    assert all(r.name == f"Patient {r.mrn}" for r in svc.search(""))
    assert pid not in {r.patient_id for r in svc.search(mrn)}  # an 8-digit number is no diagnosis-code prefix
    assert {r.patient_id: r.mrn for r in svc.search("")} == seen  # stable within the session
    a.lock()
    b = unlock(demo_store, *ANALYST)
    assert PatientService(b).search("")[0].mrn != seen[PatientService(b).search("")[0].patient_id]  # not across
    b.lock()


def test_reads_and_changes_are_audited(demo_store):
    s = unlock(demo_store, *CLIN)
    svc = PatientService(s)
    pid = svc.search("")[0].patient_id
    svc.get_patient(pid)
    svc.update_patient(pid, {"mrn": svc.get_patient(pid).mrn, "family_name": "Changed", "given_name": "Name",
                             "birth_date": "1950-06-01"})
    actions = [r[0] for r in s.db.conn.execute("SELECT action FROM audit_log ORDER BY id")]
    assert actions.count("login") >= 1 and "search" in actions and "read" in actions and "update" in actions
    assert verify_chain(s.db.conn).ok
    s.lock()


def _drop_guards(c) -> None:
    c.execute("DROP TRIGGER audit_no_update")
    c.execute("DROP TRIGGER audit_no_delete")


def test_audit_log_refuses_update_and_delete(demo_store):
    s = unlock(demo_store, *CLIN)
    with pytest.raises(Exception, match="append-only"):
        s.db.conn.execute("UPDATE audit_log SET detail = 'x' WHERE id = 1")
    with pytest.raises(Exception, match="append-only"):
        s.db.conn.execute("DELETE FROM audit_log WHERE id = 1")
    s.lock()


def test_chain_detects_an_edited_row(demo_store):
    s = unlock(demo_store, *CLIN)
    c = s.db.conn
    _drop_guards(c)
    c.execute("UPDATE audit_log SET username = 'someone-else' WHERE id = 3")
    report = verify_chain(c)
    assert not report.ok and any("row 3 was altered" in p for p in report.problems)
    s.db.close()


def test_chain_detects_a_deleted_row(demo_store):
    s = unlock(demo_store, *CLIN)
    c = s.db.conn
    _drop_guards(c)
    c.execute("DELETE FROM audit_log WHERE id = 4")
    report = verify_chain(c)
    assert any("4..4 are missing" in p for p in report.problems)
    assert any("row 5 does not link" in p for p in report.problems)
    s.db.close()


def test_chain_detects_truncated_tail(demo_store):
    s = unlock(demo_store, *CLIN)
    c = s.db.conn
    _drop_guards(c)
    last = c.execute("SELECT max(id) FROM audit_log").fetchone()[0]
    c.execute("DELETE FROM audit_log WHERE id = ?", (last,))
    report = verify_chain(c)
    assert any("recorded head" in p for p in report.problems)
    s.db.close()


def test_idle_lock_drops_the_key(demo_store):
    s = unlock(demo_store, *CLIN)
    now = [1000.0]
    locked = Session(s.user, s.db, s.store_path, idle_minutes=5, clock=lambda: now[0])
    now[0] += 4 * 60
    assert not locked.check_idle()
    locked.touch()
    now[0] += 4 * 60
    assert not locked.check_idle()
    now[0] += 61
    assert locked.check_idle()
    assert not any(s.db._key)
    with pytest.raises(SessionLocked):
        PatientService(locked).search("")


def test_idle_time_is_a_site_setting_only_admins_change(demo_store):
    from services.core.errors import ValidationError
    from services.site.settings import SettingsService
    admin = unlock(demo_store, "admin", "wardlens-admin")
    SettingsService(admin).set("idle_lock_minutes", "3")
    with pytest.raises(ValidationError):
        SettingsService(admin).set("idle_lock_minutes", "-1")
    admin.lock()
    nurse = unlock(demo_store, *NURSE)
    assert nurse.idle_seconds == 180
    with pytest.raises(PermissionDenied):
        SettingsService(nurse).set("idle_lock_minutes", "60")
    nurse.lock()
