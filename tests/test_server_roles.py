"""What the SERVER enforces, tried as each staff member's own login from psql and plain psycopg (not through WardLens),
and two desks editing the same records. Each test fails if its protection (a grant, a trigger, the version check, the
writer lock) is removed."""
from __future__ import annotations


import psycopg
import pytest

from models.domain import Role
from services.core.errors import EditConflict, PermissionDenied
from services.records.patients import PatientService
from services.site.server_accounts import ServerAccounts

from tests.conftest import SERVER_PATIENT as PATIENT, STAFF_PASSWORD as PW, at_once


def _psql(site, user, sql):
    return site.cluster.psql(site.dbname, user, PW, sql)


def test_a_nurse_login_from_psql_cannot_import_or_read_the_audit_log(staff):
    site, people, pid = staff
    nurse = people["nurse"]
    ok = _psql(site, nurse, "SELECT count(*) FROM wardlens.patients")
    assert ok.returncode == 0, ok.stderr
    for sql in ("INSERT INTO wardlens.patients (mrn, created_at, updated_at) VALUES ('X-1', 'now', 'now')",
                "INSERT INTO wardlens.encounters (patient_id, encounter_nbr, status, admission_type_id, "
                f"admission_source_id, created_at, updated_at) VALUES ({pid}, 99, 'inpatient', 1, 7, 'now', 'now')",
                "SELECT * FROM wardlens.audit_log",
                "UPDATE wardlens.users SET role = 'admin'",
                "UPDATE wardlens.encounters SET status = 'discharged'",
                "DELETE FROM wardlens.patients",
                f"SELECT wardlens.create_login('{nurse}x', 'SCRAM-SHA-256$x', 'admin', false)",
                # export to the server's disk (pg_write_server_files); what a nurse may read, she may read
                "COPY wardlens.patients TO '/tmp/wardlens-nurse-export.csv'"):
        done = _psql(site, nurse, sql)
        assert done.returncode != 0 and any(why in done.stderr for why in (
            "permission denied", "must be superuser", "violates row-level security policy")), \
            (sql, done.stdout, done.stderr)


def test_a_nurse_may_move_a_patient_between_beds_and_nothing_more_of_the_stay(staff):
    site, people, pid = staff
    with psycopg.connect(site.cluster.url(site.dbname, people["nurse"]), password=PW, autocommit=True) as c:
        c.execute("SET search_path = wardlens")
        c.execute("UPDATE encounters SET ward_id = NULL, bed_id = NULL WHERE patient_id = %s", (pid,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("UPDATE encounters SET discharge_time = 'x' WHERE patient_id = %s", (pid,))


def test_an_analyst_login_never_reads_who_a_patient_is(staff):
    site, people, pid = staff
    with psycopg.connect(site.cluster.url(site.dbname, people["analyst"]), password=PW, autocommit=True) as c:
        c.execute("SET search_path = wardlens")
        assert c.execute("SELECT id, sex FROM patients").fetchall() == [(pid, "Female")]
        for column in ("mrn", "given_name", "family_name", "birth_date", "ident", "source_digest", "search_name", "*"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(f"SELECT {column} FROM patients")
        for table in ("identifiers", "xray_studies", "waiting_admissions", "alerts", "interventions", "audit_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(f"SELECT * FROM {table}")


def test_the_audit_log_is_append_only_even_for_an_administrator_login(staff):
    site, people, pid = staff
    with psycopg.connect(site.cluster.url(site.dbname, site.admin), password=site.password, autocommit=True) as c:
        c.execute("SET search_path = wardlens")
        n = c.execute("SELECT count(*) FROM audit_log").fetchone()[0]
        assert n >= 5
        for sql in ("UPDATE audit_log SET detail = 'nothing happened'", "DELETE FROM audit_log WHERE id = 2",
                    "TRUNCATE audit_log", "ALTER TABLE audit_log DISABLE TRIGGER audit_no_change",
                    "DROP TRIGGER audit_link ON audit_log"):
            with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.RaiseException)):
                c.execute(sql)
        # a row that does not link to the head is refused: nobody can fork or rewind the chain by inserting
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
            c.execute("INSERT INTO audit_log (id, ts, username, action, prev_hash, hash) "
                      "VALUES (2, 'x', 'x', 'x', repeat('0', 64), 'x')")
        assert c.execute("SELECT count(*) FROM audit_log").fetchone()[0] == n


def test_a_role_recorded_without_the_servers_grant_opens_nothing_more(staff):
    site, people, pid = staff
    with psycopg.connect(site.cluster.url(site.dbname, site.admin), password=site.password, autocommit=True) as c:
        c.execute("UPDATE wardlens.users SET role = 'admin' WHERE username = %s", (people["nurse"],))
    with pytest.raises(PermissionDenied, match="does not give"):
        site.login(people["nurse"], PW)


def test_the_same_patient_edited_on_two_desks_never_loses_an_update(staff):
    site, people, pid = staff
    desk_a, desk_b = site.login(people["clinician"], PW), site.login(site.admin)
    try:
        a, b = PatientService(desk_a), PatientService(desk_b)
        seen_a, seen_b = a.get_patient(pid), b.get_patient(pid)
        a.update_patient(pid, {**PATIENT, "given_name": "Augusta", "version": seen_a.version})
        with pytest.raises(EditConflict, match=people["clinician"]):
            b.update_patient(pid, {**PATIENT, "family_name": "King", "version": seen_b.version})
        now = b.get_patient(pid)
        assert (now.given_name, now.family_name) == ("Augusta", "Lovelace")
        b.update_patient(pid, {**PATIENT, "family_name": "King", "version": now.version})   # after reloading
        assert (a.get_patient(pid).given_name, a.get_patient(pid).family_name) == ("Ada", "King")
    finally:
        desk_a.lock()
        desk_b.lock()


def test_two_desks_adding_patients_at_once_each_get_their_own(staff):
    site, people, pid = staff
    desks = [site.login(people["clinician"], PW), site.login(site.admin)]
    done = at_once(*(lambda d=d, k=k: [PatientService(d).add_patient({**PATIENT, "mrn": f"D{k}-{i}"})
                                       for i in range(15)] for k, d in enumerate(desks)))
    for d in desks:
        d.lock()
    assert not any(isinstance(r, Exception) for r in done), done
    assert len({pid for ids in done for pid in ids}) == 30


def test_the_desk_store_refuses_a_save_over_a_newer_version_too(sessions):
    """The same rule on one desk's file, opened twice (the desk and the command line, say)."""
    a, b = PatientService(sessions("admin")), PatientService(sessions("dr.demo"))
    pid = a.search("")[0].patient_id
    seen_a, seen_b = a.get_patient(pid), b.get_patient(pid)
    fields = {"mrn": seen_a.mrn, "given_name": seen_a.given_name, "family_name": seen_a.family_name,
              "birth_date": seen_a.birth_date, "sex": seen_a.sex, "race": seen_a.race}
    b.update_patient(pid, {**fields, "given_name": "Changed", "version": seen_b.version})
    with pytest.raises(EditConflict, match="dr.demo"):
        a.update_patient(pid, {**fields, "family_name": "Other", "version": seen_a.version})
    assert a.get_patient(pid).given_name == "Changed"
    stay = a.encounters(pid)[0]
    b.encounters(pid)
    PatientService(sessions("dr.demo")).save_encounter(pid, _stay_values(stay), stay.id)
    with pytest.raises(EditConflict, match="This stay"):
        a.save_encounter(pid, {**_stay_values(stay), "version": stay.version}, stay.id)


def _stay_values(e) -> dict:
    return {"admit_time": e.admit_time, "discharge_time": e.discharge_time, "admission_type_id": e.admission_type_id,
            "admission_source_id": e.admission_source_id, "discharge_disposition_id": e.discharge_disposition_id,
            "ward_id": e.ward_id, "bed_id": e.bed_id, "medical_specialty": e.medical_specialty,
            "diagnoses": [d.code for d in e.diagnoses], "medications": {m.drug: m.status for m in e.medications},
            "version": e.version}


def test_people_on_the_server_are_their_logins(staff):
    site, people, pid = staff
    admin = site.login()
    acc = ServerAccounts(admin)
    try:
        # a one-time password: the login works only to choose a new one
        acc.reset_password(people["nurse"], "one-time-pass-4421")
        from services.core.errors import PasswordChangeRequired
        with pytest.raises(PasswordChangeRequired):
            site.login(people["nurse"], "one-time-pass-4421")
        from services.site.server_accounts import unlock_server
        unlock_server(site.url, people["nurse"], "one-time-pass-4421", new_password="nurses-own-choice-77").lock()
        site.login(people["nurse"], "nurses-own-choice-77").lock()
        # deactivated: the server refuses the login itself, from psql too
        acc.deactivate_user(people["analyst"])
        assert "not permitted to log in" in _psql(site, people["analyst"], "SELECT 1").stderr
        acc.reactivate_user(people["analyst"], "back-again-pass-5521")
        assert acc.set_role(people["analyst"], Role.CLINICIAN)
        assert {p["username"]: p["role"] for p in acc.people()}[people["analyst"]] == "clinician"
    finally:
        admin.lock()
    with psycopg.connect(site.cluster.url(site.dbname, people["analyst"]), password="back-again-pass-5521") as c:
        assert c.execute("SELECT count(*) FROM wardlens.patients WHERE family_name IS NOT NULL").fetchone()[0] == 1


def test_the_patient_page_keeps_what_was_typed_and_shows_theirs_after_a_conflict(qtbot, owner, desks):
    """Two desks (on both stores): the second save is refused with who and when; the page reloads to their version,
    the form's values are untouched, and saving again then is a knowing choice."""
    from viewmodels.background import BackgroundRunner
    from viewmodels.patients_vm import PatientViewModel
    runner = BackgroundRunner(owner)
    mine, theirs = desks("dr.demo"), desks("admin")
    pid = mine.records.patients.search("", limit=1)[0].patient_id
    page = PatientViewModel(mine, runner, owner)
    with qtbot.waitSignal(page.loaded, timeout=20_000):
        page.load(pid)
    p = page.patient
    typed = {"mrn": p.mrn, "given_name": "Typed", "family_name": p.family_name, "birth_date": p.birth_date,
             "sex": p.sex, "race": p.race}
    theirs.records.patients.update_patient(pid, {**typed, "given_name": "Theirs"})
    with qtbot.waitSignal(page.loaded, timeout=20_000):
        problems = page.save_patient(dict(typed), pid)
    assert "was changed by admin" in problems[""] and "Save again" in problems[""]
    assert page.patient.given_name == "Theirs" and typed["given_name"] == "Typed"
    with qtbot.waitSignal(page.loaded, timeout=20_000):
        assert page.save_patient(dict(typed), pid) == {}
    assert page.patient.given_name == "Typed"
    runner.cancel_all()   # no worker may be inside the store when the fixture closes it
    runner.wait_idle()


def test_the_same_adt_feed_from_two_desks_at_once_is_applied_once_and_every_message_counted(server_store, tmp_path):
    """Two desks receive the same ADT feed (a resend) at the same moment: each import completes, every message is
    counted by each, and each event is applied once (the other desk finds it unchanged)."""
    from services.desk import open_desk
    from tests.test_records_import import _msg, _write
    site = server_store
    setup = open_desk(site.url, site.admin, site.password)
    setup.capacity.wards.add_ward("Renal", "medical", 4, prefix="R-")
    setup.capacity.wards.add_ward("Cardiology", "cardiology", 4, prefix="C-")
    setup.lock()
    messages = []
    for k in range(12):
        visit = f"V{k:03d}"
        messages += [_msg("A01", f"2026010{1 + k % 5}1200", bed="", control=f"A{k}", visit=visit, mrn=f"M{k:03d}"),
                     _msg("A02", f"2026010{1 + k % 5}1500", ward="Cardiology", bed=f"C-{1 + k % 4}" if k < 4 else "",
                          control=f"T{k}", visit=visit, mrn=f"M{k:03d}")]
    feed = _write(tmp_path, "feed.hl7", *messages)
    desks = [open_desk(site.url, site.admin, site.password) for _ in range(2)]
    reports = at_once(*(lambda d=d: d.records.import_files([feed]) for d in desks))
    try:
        assert not any(isinstance(r, Exception) for r in reports), reports
        for r in reports:
            assert sum(r.counts["messages"].values()) + r.rejected_total == len(messages), r.lines()
        applied = sum(r.counts["messages"]["imported"] for r in reports)
        assert applied == len(messages) - reports[0].rejected_total
        assert sorted(r.counts["messages"]["unchanged"] for r in reports)[0] == 0   # one desk applied, one found
        n = desks[0].session.db.conn.execute("SELECT count(*) FROM encounters").fetchone()[0]
        assert n == 12
    finally:
        for d in desks:
            d.lock()


def test_another_desks_change_reaches_this_desk_within_seconds(qtbot, owner, staff):
    """The census, alerts and worklist refresh on the other desks: the server notifies, nothing polls the tables."""
    from viewmodels.changes_vm import StoreChangesViewModel
    from services.desk import open_desk
    site, people, pid = staff
    here, there = open_desk(site.url, people["nurse"], PW), open_desk(site.url, site.admin, site.password)
    watcher = StoreChangesViewModel(here, owner)
    assert watcher.active
    watcher.start()
    try:
        qtbot.wait(300)   # listening
        with qtbot.waitSignal(watcher.changed, timeout=5_000) as got:
            there.records.patients.add_patient({**PATIENT, "mrn": "H-2002"})
        assert "patients" in got.args[0]
    finally:
        watcher.stop()
        here.lock()
        there.lock()


def test_a_desk_store_has_no_other_desks_to_listen_to(desks, owner):
    from viewmodels.changes_vm import StoreChangesViewModel
    watcher = StoreChangesViewModel(desks("admin"), owner)
    assert watcher.active == isinstance(desks.store, str)
    watcher.start()
    watcher.stop()


def test_every_audit_row_is_signed_by_the_person_it_names_and_verify_checks_it(staff):
    import hashlib
    from services.store.audit import row_hash
    site, people, pid = staff
    nurse = site.login(people["nurse"], PW)
    nurse.log("read", "patient", pid)
    nurse.lock()
    admin = site.login()
    try:
        rows = admin.db.conn.execute("SELECT username, signer, sig FROM audit_log ORDER BY id").fetchall()
        assert rows and all(sig and signer == user for user, signer, sig in rows), rows
        from services.site.facade import Site
        assert Site(admin).verify().ok, Site(admin).verify().problems
    finally:
        admin.lock()
    # an administrator's login writes a row in the nurse's name, well linked, from psql: verify names it
    with psycopg.connect(site.cluster.url(site.dbname, site.admin), password=site.password, autocommit=True) as c:
        c.execute("SET search_path = wardlens")
        head_id, head = c.execute("SELECT id, hash FROM audit_head()").fetchone()
        ts = "2026-12-05T10:00:00+00:00"
        h = row_hash(head, head_id + 1, ts, people["nurse"], "export", "patients", "", "all of them")
        c.execute("INSERT INTO audit_log (id, ts, username, action, entity, entity_id, detail, prev_hash, hash) "
                  "VALUES (%s, %s, %s, 'export', 'patients', '', 'all of them', %s, %s)",
                  (head_id + 1, ts, people["nurse"], head, h))
        # the sealed signing keys: each login reads only its own, and cannot register a key for someone else
        assert [r[0] for r in c.execute("SELECT username FROM signing_secrets")] == [site.admin]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("INSERT INTO signing_keys (username, sign_pub) VALUES (%s, %s)",
                      (people["nurse"], hashlib.sha256(b"x").hexdigest()))
    admin = site.login()
    try:
        from services.site.facade import Site
        problems = Site(admin).verify().problems
        assert any(f"audit row {head_id + 1} is not signed" in p for p in problems), problems
    finally:
        admin.lock()


def test_a_nurse_places_a_waiting_patient_but_opens_no_other_stay(staff):
    from services.desk import open_desk
    site, people, pid = staff
    admin = open_desk(site.url, site.admin, site.password)
    admin.capacity.wards.add_ward("Renal", "medical", 2, prefix="R-")
    bed = admin.records.patients.beds()[0].id
    with admin.session.db.transaction() as c:
        c.execute("INSERT INTO waiting_admissions (patient_id, requested_at, ward_type) VALUES (?, 'now', 'medical')",
                  (pid,))
    waiting = admin.session.db.conn.execute("SELECT id FROM waiting_admissions").fetchone()[0]
    admin.lock()
    nurse = open_desk(site.url, people["nurse"], PW)
    try:
        eid = nurse.capacity.beds.place(waiting, bed)
        assert nurse.session.db.conn.execute("SELECT patient_id, bed_id FROM encounters WHERE id = ?",
                                             (eid,)).fetchone() == (pid, bed)
    finally:
        nurse.lock()
    # the same insert from psql for a patient no longer waiting: refused by the row-level policy
    done = _psql(site, people["nurse"], "INSERT INTO wardlens.encounters (patient_id, encounter_nbr, status, "
                 f"admission_type_id, admission_source_id, created_at, updated_at) VALUES ({pid}, 77, 'inpatient', 1, "
                 "7, 'now', 'now')")
    assert done.returncode != 0 and "row-level security" in done.stderr, done.stderr
