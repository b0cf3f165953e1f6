"""`migrate-store`: the demo desk store moved to a real PostgreSQL server, checked on both sides, then used there."""
from __future__ import annotations

import pytest

from services.core.errors import PasswordChangeRequired
from services.desk import open_desk
from services.site.accounts import unlock
from services.site.server_migrate import MigrationRefused, migrate_store
from tests.conftest import DBA, DEMO_PASSWORDS


@pytest.fixture(scope="module")
def own_cluster():
    """A cluster of this module's own: moving the demo store makes logins named as the demo's people, which the
    shared cluster's server demo store (tests/conftest.py) already holds."""
    from tests import pgcluster
    if pgcluster.pg_bin() is None:
        pytest.skip("no PostgreSQL server on this machine (Debian: apt-get install postgresql)")
    cluster = pgcluster.start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def empty_server_db(own_cluster):
    import os
    import psycopg
    name = f"wl_move_{os.urandom(3).hex()}"
    with psycopg.connect(own_cluster.superuser_conninfo(), autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (DBA[0],)).fetchone():
            c.execute(f"CREATE ROLE {DBA[0]} LOGIN CREATEROLE PASSWORD '{DBA[1]}'")
        c.execute(f'CREATE DATABASE "{name}" OWNER {DBA[0]}')
        for user in DEMO_PASSWORDS:   # an earlier test of this module moved the demo store here too
            c.execute(f'DROP ROLE IF EXISTS "{user}"')
    return own_cluster, name


def test_the_demo_store_moves_to_the_server_whole(demo_store, empty_server_db):
    cluster, name = empty_server_db
    desk_session = unlock(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        before = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
        desk_patients, desk_census = before.records.counts(), before.census_rows()
        before.lock()
        report = migrate_store(desk_session, cluster.url(name, DBA[0]), DBA[1], DEMO_PASSWORDS["admin"])
    finally:
        desk_session.lock()
    assert report.ok, report.problems
    assert report.counts["patients"] > 100 and report.counts["audit_log"] > 10 and report.counts["model_versions"] >= 0
    assert set(report.one_time_passwords) == {"dr.demo", "nurse.demo", "analyst.demo"}
    url = cluster.url(name)
    server = open_desk(url, "admin", DEMO_PASSWORDS["admin"])
    try:
        assert server.records.counts() == desk_patients
        assert server.census_rows() == desk_census   # the same names, beds and expected discharges
        assert server.site.verify().ok, server.site.verify().problems
    finally:
        server.lock()
    with pytest.raises(PasswordChangeRequired):
        open_desk(url, "dr.demo", report.one_time_passwords["dr.demo"])
    clinician = open_desk(url, "dr.demo", report.one_time_passwords["dr.demo"], new_password="drs-own-server-pass-1")
    try:
        row = clinician.records.patients.search("")[0]
        page = clinician.records.patients.get_patient(row.patient_id)
        assert page.family_name and page.mrn == row.mrn
    finally:
        clinician.lock()


def test_moving_refuses_a_server_that_already_has_those_logins(demo_store, empty_server_db):
    cluster, name = empty_server_db
    import psycopg
    with psycopg.connect(cluster.superuser_conninfo(), autocommit=True) as c:
        c.execute('CREATE ROLE "dr.demo" LOGIN')
    s = unlock(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        with pytest.raises(MigrationRefused, match="dr.demo"):
            migrate_store(s, cluster.url(name, DBA[0]), DBA[1], DEMO_PASSWORDS["admin"])
    finally:
        s.lock()
        with psycopg.connect(cluster.superuser_conninfo(), autocommit=True) as c:
            c.execute('DROP ROLE "dr.demo"')
