"""The hospital server goes away mid-session and comes back (a cluster of this module's own, stopped and started)."""
from __future__ import annotations

import os

import psycopg
import pytest

from services.desk import open_desk
from services.site.server_setup import init_server
from services.store.server import ServerAddress, ServerUnavailable
from tests.conftest import DBA


@pytest.fixture(scope="module")
def cluster():
    from tests import pgcluster
    if pgcluster.pg_bin() is None:
        pytest.skip("no PostgreSQL server on this machine (Debian: apt-get install postgresql)")
    c = pgcluster.start_cluster()
    yield c
    c.stop()


def test_an_outage_is_said_plainly_nothing_is_kept_locally_and_the_desk_carries_on(cluster, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with psycopg.connect(cluster.superuser_conninfo(), autocommit=True) as c:
        c.execute(f"CREATE ROLE {DBA[0]} LOGIN CREATEROLE PASSWORD '{DBA[1]}'")
        c.execute(f"CREATE DATABASE wl_outage OWNER {DBA[0]}")
    init_server(ServerAddress.parse(cluster.url("wl_outage", DBA[0])), DBA[1], "chief", "chief-server-password-1")
    desk = open_desk(cluster.url("wl_outage"), "chief", "chief-server-password-1")
    home = os.environ["WARDLENS_HOME"]
    before = sorted(os.walk(home)) if os.path.isdir(home) else []
    try:
        pid = desk.records.patients.add_patient({"mrn": "H-9", "given_name": "Ada", "family_name": "Byron",
                                                 "birth_date": "1950-02-03", "sex": "Female", "race": "?"})
        cluster.pause()
        with pytest.raises(ServerUnavailable, match="cannot be reached.*Nothing was saved on this computer"):
            desk.records.patients.update_patient(pid, {"mrn": "H-9", "given_name": "Augusta", "family_name": "Byron",
                                                       "birth_date": "1950-02-03", "sex": "Female", "race": "?"})
        with pytest.raises(ServerUnavailable):
            desk.records.patients.search("")
        assert list(tmp_path.iterdir()) == [] and (sorted(os.walk(home)) if os.path.isdir(home) else []) == before
        cluster.resume()
        # the same session goes on, no new login: reads reconnect by themselves, the save is made again
        assert [r.patient_id for r in desk.records.patients.search("")] == [pid]
        desk.records.patients.update_patient(pid, {"mrn": "H-9", "given_name": "Augusta", "family_name": "Byron",
                                                   "birth_date": "1950-02-03", "sex": "Female", "race": "?"})
        assert desk.records.patients.get_patient(pid).given_name == "Augusta"
    finally:
        desk.lock()
