"""The server store on a real PostgreSQL with TLS (tests/pgcluster.py): the address rule, set-up, logins, and the
roles the SERVER enforces (checked with psql and plain psycopg as each login, not through WardLens)."""
from __future__ import annotations

import psycopg
import pytest

from services.core.errors import WrongPassword
from services.site.server_accounts import unlock_server
from services.store.server import (ServerAddress, ServerAddressError, ServerTrustError, ServerUnavailable,
                                   translate)
from tests.conftest import DBA


# --- the address rule (no server needed) -------------------------------------------------------------------------
def test_tcp_without_certificate_check_is_refused(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    for url in ("postgresql://db.hospital/wl", "postgresql://db.hospital/wl?sslmode=require",
                "postgresql://db.hospital/wl?sslmode=prefer", "postgresql://db.hospital/wl?sslmode=disable"):
        with pytest.raises(ServerAddressError, match="only over TLS that checks"):
            ServerAddress.parse(url)
    with pytest.raises(ServerAddressError, match="sslrootcert"):
        ServerAddress.parse("postgresql://db.hospital/wl?sslmode=verify-full")
    with pytest.raises(ServerAddressError, match="does not exist"):
        ServerAddress.parse(f"postgresql://db.hospital/wl?sslmode=verify-full&sslrootcert={tmp_path}/none.pem")
    a = ServerAddress.parse(f"postgresql://alice@db.hospital:5433/wl?sslmode=verify-full&sslrootcert={ca}")
    assert (a.host, a.port, a.dbname, a.user) == ("db.hospital", 5433, "wl", "alice")
    assert ServerAddress.parse(f"postgresql://db.hospital/wl?sslmode=verify-ca&sslrootcert={ca}").sslmode == "verify-ca"
    # a local Unix socket never leaves the machine: no TLS needed
    assert ServerAddress.parse("postgresql:///wl?host=/run/postgresql").via_socket


def test_a_password_in_the_address_is_refused():
    with pytest.raises(ServerAddressError, match="must not contain a password"):
        ServerAddress.parse("postgresql://alice:secret@db/wl?sslmode=verify-full&sslrootcert=/x")


def test_translate_keeps_literals():
    assert translate("SELECT a FROM t WHERE b LIKE '%?%' AND c = ?")[0] == "SELECT a FROM t WHERE b LIKE '%%?%%' AND c = %s"
    text, added = translate("INSERT OR IGNORE INTO patients (mrn) VALUES (?)")
    assert text == "INSERT INTO patients (mrn) VALUES (%s) ON CONFLICT DO NOTHING RETURNING id" and added
    assert translate("INSERT INTO meta (key, value) VALUES (?, ?)") == ("INSERT INTO meta (key, value) VALUES (%s, %s)", False)
    # comments, E-strings and dollar quotes keep their ? and %; nothing is appended inside a trailing comment
    assert translate("SELECT E'it\\'s ?', $$?%$$, ? -- don't ?\n")[0] == "SELECT E'it\\'s ?', $$?%%$$, %s  \n"
    assert translate("INSERT INTO patients (a) VALUES (?) -- note") == ("INSERT INTO patients (a) VALUES (%s) RETURNING id",
                                                                       True)
    assert translate("INSERT OR IGNORE INTO patients (a) VALUES (?) RETURNING id;")[0] == \
        "INSERT INTO patients (a) VALUES (%s) ON CONFLICT DO NOTHING RETURNING id"


# --- against the server -------------------------------------------------------------------------------------------
def test_wardlens_refuses_a_server_with_another_ca(pg_cluster, server_store, tmp_path):
    from tests.pgcluster import make_ca
    other, _, _ = make_ca(tmp_path, "Someone else")
    url = server_store.url.replace(str(pg_cluster.ca), str(other))
    with pytest.raises(ServerTrustError, match="did not prove"):
        unlock_server(url, server_store.admin, server_store.password)


def test_server_refuses_plain_tcp(pg_cluster, server_store):
    """The server's own pg_hba rule (hostnossl … reject) backs WardLens's: psql without TLS is turned away."""
    with pytest.raises(psycopg.OperationalError, match="no encryption|reject"):
        psycopg.connect(pg_cluster.url(server_store.dbname, server_store.admin, sslmode="disable"),
                        password=server_store.password)


def test_unreachable_server_says_so(pg_cluster, tmp_path):
    url = pg_cluster.url("nothing").replace(f":{pg_cluster.port}/", ":1/")
    with pytest.raises(ServerUnavailable, match="cannot be reached"):
        unlock_server(url, "nobody", "x")


def test_init_then_the_admin_logs_in_with_their_own_login(server_store):
    s = server_store.login()
    try:
        assert s.user.role.value == "admin"
        assert s.db.conn.execute("SELECT current_user").fetchone()[0] == server_store.admin
        rows = s.audit.recent()
        assert [r.action for r in rows][:1] == ["login"]
    finally:
        s.lock()
    with pytest.raises(WrongPassword):
        server_store.login(server_store.admin, "not-the-password")


def test_init_refuses_a_database_that_already_has_a_store(pg_cluster, server_store):
    from services.site.server_setup import ServerSetupError, init_server
    with pytest.raises(ServerSetupError, match="already holds"):
        init_server(ServerAddress.parse(pg_cluster.url(server_store.dbname, DBA[0])), DBA[1], "other",
                    "other-password-123")


def test_the_setup_login_keeps_no_power_over_the_store(pg_cluster, server_store):
    with psycopg.connect(pg_cluster.url(server_store.dbname, DBA[0]), password=DBA[1], autocommit=True) as c:
        for stmt in ("DELETE FROM wardlens.audit_log", "ALTER TABLE wardlens.audit_log DISABLE TRIGGER ALL",
                     "SELECT * FROM wardlens.patients", "DROP SCHEMA wardlens CASCADE"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(stmt)


def test_a_newer_release_is_refused_until_the_dba_upgrades_the_server(pg_cluster, server_store, monkeypatch):
    """Versioned migrations for the server: a login at another version is told what to ask; upgrade-store (the DBA's
    set-up login) applies the pending ones as the owner role, all or none."""
    from services.core.errors import StoreDamaged
    from services.site.server_setup import upgrade_server
    from services.store import server_schema
    import services.site.server_accounts as accounts
    monkeypatch.setattr(server_schema, "SERVER_VERSION", 12)
    monkeypatch.setattr(accounts, "SERVER_VERSION", 12)
    monkeypatch.setattr(server_schema, "SERVER_MIGRATIONS",
                        ((12, "a ward's phone number", "ALTER TABLE wards ADD COLUMN phone TEXT;"),))
    with pytest.raises(StoreDamaged, match="upgrade-store"):
        server_store.login()
    dba = ServerAddress.parse(pg_cluster.url(server_store.dbname, DBA[0]))
    assert upgrade_server(dba, DBA[1]) == [12]
    assert upgrade_server(dba, DBA[1]) == []
    s = server_store.login()
    try:
        assert s.db.conn.execute("SELECT count(phone) FROM wards").fetchone()[0] == 0
        from services.site.facade import Site
        assert Site(s).verify().ok   # the set-up login gave the owner role back
    finally:
        s.lock()
