"""An attacker's review of the server store, played back: each test is one finding, reproduced from psql or plain
psycopg as a staff member's own login, and fails if the protection is removed."""
from __future__ import annotations


import psycopg
import pytest

from services.site.facade import Site
from services.site.server_accounts import ServerAccounts
from services.store.audit import row_hash
from services.store.server import ServerAddress, ServerAddressError
from tests.conftest import SERVER_PATIENT as PATIENT, STAFF_PASSWORD as PW, at_once


def _as(site, user, password=PW):
    c = psycopg.connect(site.cluster.url(site.dbname, user), password=password, autocommit=True)
    c.execute("SET search_path = wardlens")
    return c


def test_an_administrator_cannot_turn_the_user_functions_on_the_owner_or_the_dba(staff):
    site, people, pid = staff
    from tests.conftest import DBA
    with _as(site, site.admin, site.password) as c:
        owner = c.execute("SELECT value FROM meta WHERE key = 'role_prefix'").fetchone()[0] + "owner"
        for target in (owner, DBA[0], "postgres"):
            c.execute("INSERT INTO users (username, role, created_at) VALUES (%s, 'admin', 'x') "
                      "ON CONFLICT DO NOTHING", (target,))
            for call in ("SELECT enable_login(%s)", "SELECT disable_login(%s)"):
                with pytest.raises(psycopg.errors.RaiseException, match="not a WardLens login"):
                    c.execute(call, (target,))
            with pytest.raises(psycopg.errors.RaiseException, match="not a WardLens login"):
                c.execute("SELECT set_login_password(%s, 'SCRAM-SHA-256$4096:x')", (target,))
            with pytest.raises(psycopg.errors.RaiseException, match="not a WardLens login"):
                c.execute("SELECT set_login_group(%s, 'nurse')", (target,))


def test_no_login_can_shadow_the_stores_tables_with_temporary_ones(staff):
    site, people, pid = staff
    with _as(site, people["nurse"]) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            c.execute("CREATE TEMP TABLE meta (key text primary key, value text)")


def test_an_audit_row_must_carry_the_hash_of_its_own_fields(staff):
    site, people, pid = staff
    with _as(site, people["nurse"]) as c:
        head_id, head = c.execute("SELECT id, hash FROM audit_head()").fetchone()
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="hash of its fields"):
            c.execute("INSERT INTO audit_log (id, ts, username, action, prev_hash, hash) VALUES (%s, 't', %s, 'x', %s, "
                      "repeat('a', 64))", (head_id + 1, people["nurse"], head))


@pytest.mark.parametrize("url", [
    "postgresql://nurse@x/wl?host=/nonexistent,127.0.0.1&port=5432",     # a host list: the socket, then plain TCP
    "postgresql://nurse@/wl?port=5432",                                  # no host: whatever PGHOST says
    "postgresql://nurse@db/wl?sslmode=verify-full&sslrootcert=/etc/hosts&port=5432,5433",
])
def test_an_address_cannot_slip_past_the_tls_rule(url):
    with pytest.raises(ServerAddressError):
        ServerAddress.parse(url)


def test_libpq_environment_cannot_redirect_a_desk(staff, monkeypatch):
    """PGHOST and friends would otherwise send a socket address to a TCP server in clear."""
    site, people, pid = staff
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGSSLMODE", "disable")
    s = site.login()
    try:
        assert s.db.conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0] is True
    finally:
        s.lock()


def test_rows_in_someone_elses_name_are_named_even_with_a_key_an_administrator_planted(staff):
    from services.store import signing
    site, people, pid = staff
    key = signing.new_key()
    pub = signing.b64(signing.public_raw(key))
    with _as(site, site.admin, site.password) as c:
        c.execute("INSERT INTO retired_keys (username, sign_pub, to_row, sig) VALUES (%s, %s, 9000000000, 'x')",
                  (people["nurse"], pub))
        c.execute("UPDATE users SET sign_pub = %s WHERE username = %s", (pub, people["nurse"]))
        store_id = c.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0]
        head_id, head = c.execute("SELECT id, hash FROM audit_head()").fetchone()
        ts, n = "2026-12-05T10:00:00+00:00", people["nurse"]
        h = row_hash(head, head_id + 1, ts, n, "export", "patients", "", "")
        c.execute("INSERT INTO audit_log (id, ts, username, action, entity, entity_id, detail, prev_hash, hash, signer, "
                  "sig) VALUES (%s, %s, %s, 'export', 'patients', '', '', %s, %s, %s, %s)",
                  (head_id + 1, ts, n, head, h, n, signing.sign(key, signing.AUDIT, store_id, h)))
    admin = site.login()
    try:
        problems = Site(admin).verify().problems
        assert any(f"audit row {head_id + 1}" in p and site.admin in p for p in problems), problems
    finally:
        admin.lock()


def test_a_failed_login_in_someone_elses_name_is_named(staff):
    site, people, pid = staff
    nurse = site.login(people["nurse"], PW)
    from services.store import audit
    with nurse.db.transaction() as c:
        audit.append(c, site.admin, "login_failed", "session", "", "made up")
    nurse.lock()
    admin = site.login()
    try:
        assert any("login_failed" in p or people["nurse"] in p for p in Site(admin).verify().problems)
    finally:
        admin.lock()


def test_a_connection_lost_inside_a_transaction_commits_nothing(staff):
    from services.store.server import ServerUnavailable
    site, people, pid = staff
    s = site.login()
    try:
        with pytest.raises(ServerUnavailable):
            with s.db.transaction() as t:
                me = t.execute("SELECT pg_backend_pid()").fetchone()[0]
                with psycopg.connect(site.cluster.superuser_conninfo(site.dbname), autocommit=True) as su:
                    su.execute("SELECT pg_terminate_backend(%s)", (me,))
                t.execute("SELECT count(*) FROM settings")
                t.execute("INSERT INTO settings (key, value, updated_at, updated_by) VALUES ('hospital_name', 'X', "
                          "'t', 'x')")
        assert s.db.conn.execute("SELECT count(*) FROM settings WHERE key = 'hospital_name'").fetchone()[0] == 0
    finally:
        s.lock()


def test_a_deactivated_persons_open_connection_ends_and_a_one_time_password_expires(staff):
    site, people, pid = staff
    open_conn = _as(site, people["clinician"])
    admin = site.login()
    try:
        acc = ServerAccounts(admin)
        acc.deactivate_user(people["clinician"])
        with pytest.raises(psycopg.OperationalError):
            open_conn.execute("UPDATE patients SET family_name = 'X'")
        acc.reset_password(people["nurse"], "one-time-pass-9931")
        until = admin.db.conn.execute("SELECT rolvaliduntil < now() + interval '8 days' FROM pg_roles WHERE rolname = ?",
                                      (people["nurse"],)).fetchone()[0]
        assert until is True   # a week at most
    finally:
        admin.lock()
        open_conn.close()
    # the one-time password only lets her choose her own, which then does not expire
    from services.site.server_accounts import unlock_server
    unlock_server(site.url, people["nurse"], "one-time-pass-9931", new_password="her-own-choice-4412").lock()
    with _as(site, people["nurse"], "her-own-choice-4412") as c:
        assert c.execute("SELECT rolvaliduntil = 'infinity' FROM pg_roles WHERE rolname = current_user").fetchone()[0]
        assert c.execute("SELECT must_change FROM users WHERE username = current_user").fetchone()[0] == 0


def test_two_desks_placing_into_one_bed_at_once_fill_it_once(staff):
    from services.desk import open_desk
    site, people, pid = staff
    admin = open_desk(site.url, site.admin, site.password)
    admin.capacity.wards.add_ward("Renal", "medical", 2, prefix="R-")
    bed = admin.records.patients.beds()[0].id
    other = admin.records.patients.add_patient({**PATIENT, "mrn": "H-3003"})
    with admin.session.db.transaction() as c:
        for p in (pid, other):
            c.execute("INSERT INTO waiting_admissions (patient_id, requested_at, ward_type) VALUES (?, 'now', 'medical')",
                      (p,))
    waiting = [w for (w,) in admin.session.db.conn.execute("SELECT id FROM waiting_admissions ORDER BY id")]
    desks = [open_desk(site.url, people["clinician"], PW), admin]
    results = at_once(*(lambda d=d, w=w: d.capacity.beds.place(w, bed) for d, w in zip(desks, waiting)))
    try:
        n = admin.session.db.conn.execute("SELECT count(*) FROM encounters WHERE bed_id = ? AND status = 'inpatient'",
                                          (bed,)).fetchone()[0]
        assert n == 1 and sum(isinstance(r, int) for r in results) == 1, results
    finally:
        for d in desks:
            d.lock()


def test_a_lock_held_by_anyone_makes_a_desk_say_so_instead_of_hanging(staff, monkeypatch):
    import services.store.server as server
    from services.store.server import ServerUnavailable
    monkeypatch.setattr(server, "LOCK_TIMEOUT_MS", 1000)
    site, people, pid = staff
    with _as(site, people["analyst"]) as c:
        c.execute("SELECT pg_advisory_lock(hashtext('wardlens.audit'))")
        with pytest.raises(ServerUnavailable, match="busy"):
            site.login()


def test_a_nurse_is_told_when_the_server_refuses_her_role(staff):
    from services.core.errors import PermissionDenied
    site, people, pid = staff
    nurse = site.login(people["nurse"], PW)
    try:
        with pytest.raises(PermissionDenied, match="hospital server does not allow"):
            with nurse.db.transaction() as c:
                c.execute("INSERT INTO wards (name, ward_type, capacity) VALUES ('X', 'medical', 0)")
    finally:
        nurse.lock()


def test_two_desks_importing_the_same_uci_file_at_once_both_finish(staff, tmp_path):
    import gzip
    from services.desk import open_desk
    from tests.conftest import shared_path
    site, people, pid = staff
    lines = gzip.open(shared_path("diabetes130", "diabetic_data.csv.gz"), "rt").read().splitlines()[:301]
    src = tmp_path / "uci.csv"
    src.write_text("\n".join(lines) + "\n")
    desks = [open_desk(site.url, site.admin, site.password) for _ in range(2)]
    reports = at_once(*(lambda d=d: d.records.import_files([src]) for d in desks))
    try:
        assert not any(isinstance(r, Exception) for r in reports), reports
        n = desks[0].session.db.conn.execute("SELECT count(*) FROM encounters").fetchone()[0]
        assert n == 300
    finally:
        for d in desks:
            d.lock()


# --- a second review, of the fixes ---------------------------------------------------------------------------------
def test_a_login_the_dba_made_for_something_else_is_not_the_administrators_to_take(staff):
    site, people, pid = staff
    prefix = None
    with psycopg.connect(site.cluster.superuser_conninfo(site.dbname), autocommit=True) as su:
        prefix = su.execute("SELECT value FROM wardlens.meta WHERE key = 'role_prefix'").fetchone()[0]
        su.execute("DROP ROLE IF EXISTS bi_reader")
        su.execute("CREATE ROLE bi_reader LOGIN PASSWORD 'bi-reader-pass-1'")
        su.execute(f'GRANT "{prefix}analyst" TO bi_reader')
    try:
        with _as(site, site.admin, site.password) as c:
            c.execute("INSERT INTO users (username, role, created_at) VALUES ('bi_reader', 'analyst', 'x')")
            with pytest.raises(psycopg.errors.RaiseException, match="not a WardLens login"):
                c.execute("SELECT set_login_password('bi_reader', 'SCRAM-SHA-256$4096:x')")
    finally:
        with psycopg.connect(site.cluster.superuser_conninfo(site.dbname), autocommit=True) as su:
            su.execute(f'REVOKE "{prefix}analyst" FROM bi_reader')
            su.execute("DROP ROLE bi_reader")


def test_what_the_stores_integrity_rests_on_is_not_an_administrators_to_change(staff):
    site, people, pid = staff
    with _as(site, site.admin, site.password) as c:
        for sql in ("UPDATE meta SET value = '1:' || repeat('b', 64) WHERE key = 'audit_head'",
                    "UPDATE meta SET value = 'another' WHERE key = 'store_id'",
                    "DELETE FROM meta WHERE key = 'role_prefix'",
                    "INSERT INTO meta (key, value) VALUES ('schema_version', '99') ON CONFLICT (key) DO UPDATE "
                    "SET value = excluded.value"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(sql)
    admin = site.login()   # the store still opens, and verifies
    try:
        assert Site(admin).verify().ok
    finally:
        admin.lock()


def test_a_desk_store_that_does_not_verify_is_not_moved_up(demo_store, tmp_path):
    import os
    from services.site.accounts import unlock
    from services.site.server_migrate import MigrationRefused, migrate_store
    from services.store import signing
    from tests.conftest import DEMO_PASSWORDS
    s = unlock(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        pub = signing.b64(signing.public_raw(signing.new_key()))
        with s.db.transaction() as c:   # a key planted in the file, as an insider with the data key could
            c.execute("INSERT INTO retired_keys (username, sign_pub, to_row, sig) VALUES ('nurse.demo', ?, 1000000, "
                      "'x')", (pub,))
        with pytest.raises(MigrationRefused, match="does not verify"):
            migrate_store(s, "postgresql://dba@db.invalid/wl?sslmode=verify-full&sslrootcert=" + os.devnull, None, "x")
    finally:
        s.lock()
