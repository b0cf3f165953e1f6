"""Setting up a server store (`init --db URL --admin NAME`) and the logins of the people who use it.

`init` runs once, as the login the site's DBA made for it (CREATEROLE, owner of an empty database). It creates the
roles of services.store.server_schema, the schema owned by the NOLOGIN owner role, and the first administrator's own
login; then it gives up its temporary membership of the owner role, so that no login can alter the schema or the
audit log afterwards. Passwords never reach the server in clear: WardLens sends a SCRAM-SHA-256 verifier computed on
the desk (libpq's PQencryptPasswordConn), so they appear in no server log.
"""
from __future__ import annotations

import datetime as dt
import uuid
from contextlib import contextmanager
from typing import Iterator

import psycopg
from psycopg import sql

from services.core.errors import ValidationError, WardLensError
from services.store import server_schema as sch
from services.store.server import SCHEMA, ServerAddress, connect

# Logins are made and dropped only through these functions (owned by <p>usermgr, which holds CREATEROLE): an
# administrator's login needs no CREATEROLE of its own, and the functions put a login into one WardLens role only.
USER_FUNCTIONS = r"""
-- The logins create_login made: a table of usermgr's own, which no login can write.
CREATE TABLE staff_logins (name TEXT PRIMARY KEY, created_at TEXT NOT NULL);
-- A WardLens login: one create_login made, a member of exactly one role and that one of this store's four groups, no
-- special powers. Every function below acts only on such a login: never on the owner, the DBA, a login the DBA made
-- for something else, or another database's people, whatever the users table says.
CREATE FUNCTION is_staff_login(name text) RETURNS boolean LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = @S, pg_temp AS $$
  SELECT EXISTS (SELECT 1 FROM staff_logins s WHERE s.name = is_staff_login.name)
     AND EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = name AND NOT r.rolsuper AND NOT r.rolcreaterole
                 AND NOT r.rolcreatedb AND NOT r.rolreplication AND NOT r.rolbypassrls
                 AND (SELECT count(*) FROM pg_auth_members m WHERE m.member = r.oid) = 1
                 AND EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid
                             AND g.rolname IN ('@Padmin', '@Pclinician', '@Pnurse', '@Panalyst')))
$$;
CREATE FUNCTION create_login(name text, verifier text, grp text, one_time boolean) RETURNS void LANGUAGE plpgsql
SECURITY DEFINER SET search_path = @S, pg_temp AS $$
BEGIN
  IF grp NOT IN ('admin','clinician','nurse','analyst') THEN RAISE EXCEPTION 'unknown WardLens role %', grp; END IF;
  IF name !~ '^[a-z][a-z0-9._-]{1,31}$' OR left(name, 3) IN ('wl_', 'pg_') THEN
    RAISE EXCEPTION 'not a WardLens user name: %', name;
  END IF;
  IF verifier !~ '^SCRAM-SHA-256\$' THEN RAISE EXCEPTION 'a password verifier is expected'; END IF;
  EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L '
                 'VALID UNTIL %L', name, verifier, CASE WHEN one_time THEN (now() + interval '7 days')::text
                                                   ELSE 'infinity' END);
  EXECUTE format('GRANT %I TO %I', '@P' || grp, name);
  INSERT INTO staff_logins VALUES (name, to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS'));
END $$;
-- A one-time password an administrator sets: it works for a week, and only to choose one's own (set_own_password).
CREATE FUNCTION set_login_password(name text, verifier text) RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = @S, pg_temp AS $$
BEGIN
  IF NOT is_staff_login(name) THEN RAISE EXCEPTION 'not a WardLens login: %', name; END IF;
  IF verifier !~ '^SCRAM-SHA-256\$' THEN RAISE EXCEPTION 'a password verifier is expected'; END IF;
  EXECUTE format('ALTER ROLE %I PASSWORD %L VALID UNTIL %L', name, verifier, (now() + interval '7 days')::text);
END $$;
CREATE FUNCTION set_own_password(verifier text) RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = @S, pg_temp AS $$
BEGIN
  IF NOT is_staff_login(session_user) THEN RAISE EXCEPTION 'not a WardLens login: %', session_user; END IF;
  IF verifier !~ '^SCRAM-SHA-256\$' THEN RAISE EXCEPTION 'a password verifier is expected'; END IF;
  EXECUTE format('ALTER ROLE %I PASSWORD %L VALID UNTIL %L', session_user, verifier, 'infinity');
  UPDATE users SET must_change = 0 WHERE username = session_user;
END $$;
CREATE FUNCTION set_login_group(name text, grp text) RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = @S, pg_temp AS $$
DECLARE g text;
BEGIN
  IF grp NOT IN ('admin','clinician','nurse','analyst') THEN RAISE EXCEPTION 'unknown WardLens role %', grp; END IF;
  IF NOT is_staff_login(name) THEN RAISE EXCEPTION 'not a WardLens login: %', name; END IF;
  FOREACH g IN ARRAY ARRAY['admin','clinician','nurse','analyst'] LOOP
    EXECUTE format('REVOKE %I FROM %I', '@P' || g, name);
  END LOOP;
  EXECUTE format('GRANT %I TO %I', '@P' || grp, name);
END $$;
CREATE FUNCTION enable_login(name text) RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = @S, pg_temp AS $$
BEGIN
  IF NOT is_staff_login(name) THEN RAISE EXCEPTION 'not a WardLens login: %', name; END IF;
  EXECUTE format('ALTER ROLE %I LOGIN', name);
END $$;
-- Deactivated: no new login, and the person's open connections end now (NOLOGIN alone would leave them working).
CREATE FUNCTION disable_login(name text) RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = @S, pg_temp AS $$
BEGIN
  IF NOT is_staff_login(name) THEN RAISE EXCEPTION 'not a WardLens login: %', name; END IF;
  EXECUTE format('ALTER ROLE %I NOLOGIN', name);
  BEGIN
    PERFORM pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = name AND pid <> pg_backend_pid();
  EXCEPTION WHEN insufficient_privilege THEN
    RAISE WARNING 'open connections of % were not ended: grant pg_signal_backend to the user manager role', name;
  END;
END $$;
"""


class ServerSetupError(WardLensError):
    pass


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def verifier(conn: psycopg.Connection, user: str, password: str) -> str:
    return conn.pgconn.encrypt_password(password.encode("utf-8"), user.encode("utf-8"), b"scram-sha-256").decode()


def _ident(name: str) -> sql.Identifier:
    return sql.Identifier(name)


@contextmanager
def _setup_transaction(address: ServerAddress, dba_password: str | None) -> Iterator[tuple]:
    """One transaction of the DBA's set-up login (init, upgrade-store): committed whole, or rolled back whole."""
    conn = connect(address, address.user, dba_password, autocommit=False)
    try:
        with conn.cursor() as cur:
            yield conn, cur
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()


def init_server(address: ServerAddress, dba_password: str | None, admin: str, admin_password: str,
                display_name: str = "") -> str:
    """Create the schema, the roles and `admin`'s login in the empty database at `address` (as the URL's user)."""
    from services.site.accounts import validate_new_account
    admin = (admin or "").strip().lower()
    validate_new_account(admin, admin_password, display_name)
    if not address.user:
        raise ServerSetupError("Name the set-up login in the address (postgresql://dba@host/…): the DBA's login with "
                               "CREATEROLE that owns the empty database.")
    p = sch.role_prefix(address.dbname)
    notes = ""
    with _setup_transaction(address, dba_password) as (conn, cur):
        if cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (SCHEMA,)).fetchone():
            raise ServerSetupError(f"{address.label} already holds a WardLens store. Nothing was changed.")
        if cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (admin,)).fetchone():
            raise ValidationError({"username": f"the server already has a login called {admin}"})
        can = cur.execute("SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        if not can or not can[0]:
            raise ServerSetupError(f"The login {address.user} may not create roles (CREATEROLE): the DBA runs "
                                   "init with a login that may. Nothing was changed.")
        me = _ident(address.user)
        for g in ("owner", "usermgr") + sch.GROUPS:
            extra = " CREATEROLE" if g == "usermgr" else ""
            cur.execute(sql.SQL("CREATE ROLE {} NOLOGIN" + extra).format(_ident(p + g)))
        cur.execute(sql.SQL("GRANT {}, {} TO {}").format(_ident(p + "owner"), _ident(p + "usermgr"), me))
        for g in sch.GROUPS:
            cur.execute(sql.SQL("GRANT {} TO {} WITH ADMIN OPTION").format(_ident(p + g), _ident(p + "usermgr")))
        cur.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(_ident(SCHEMA), _ident(p + "owner")))
        cur.execute(sql.SQL("SET LOCAL search_path = {}").format(_ident(SCHEMA)))
        cur.execute(sql.SQL("SET LOCAL ROLE {}").format(_ident(p + "owner")))
        for stmt in sch.statements((sch.TABLES + sch.FUNCTIONS).replace("@P", p), SCHEMA):
            cur.execute(stmt)
        cur.execute("REVOKE ALL ON ALL FUNCTIONS IN SCHEMA " + SCHEMA + " FROM PUBLIC")
        for stmt in sch.grants(p):
            cur.execute(stmt.replace("@S", SCHEMA))
        cur.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA {} TO {}").format(_ident(SCHEMA), _ident(p + "usermgr")))
        cur.execute(sql.SQL("GRANT SELECT, UPDATE (must_change) ON users TO {}").format(_ident(p + "usermgr")))
        cur.execute(sql.SQL("SET LOCAL ROLE {}").format(_ident(p + "usermgr")))
        for stmt in sch.statements(USER_FUNCTIONS.replace("@P", p), SCHEMA):
            cur.execute(stmt)
        for fn in ("create_login(text, text, text, boolean)", "set_login_password(text, text)",
                   "set_login_group(text, text)", "enable_login(text)", "disable_login(text)",
                   "is_staff_login(text)", "set_own_password(text)"):
            cur.execute(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC")
            cur.execute(sql.SQL("GRANT EXECUTE ON FUNCTION " + fn + " TO {}").format(_ident(p + "admin")))
        cur.execute(sql.SQL("GRANT EXECUTE ON FUNCTION set_own_password(text) TO {}, {}, {}").format(
            *(_ident(p + g) for g in ("clinician", "nurse", "analyst"))))
        cur.execute(sql.SQL("SET LOCAL ROLE {}").format(_ident(p + "owner")))
        cur.execute(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(_ident(SCHEMA), _ident(p + "usermgr")))
        store_id = str(uuid.uuid4())
        cur.executemany("INSERT INTO meta (key, value) VALUES (%s, %s)",
                        [("schema_version", str(sch.SERVER_VERSION)), ("store_id", store_id),
                         ("identity_gen", "0"), ("role_prefix", p), ("created_at", _now())])
        cur.execute("INSERT INTO users (username, role, display_name, created_at) VALUES (%s, 'admin', %s, %s)",
                    (admin, display_name or admin, _now()))
        cur.execute("RESET ROLE")
        cur.execute(sql.SQL("SET LOCAL ROLE {}").format(_ident(p + "usermgr")))
        cur.execute("SELECT create_login(%s, %s, 'admin', false)", (admin, verifier(conn, admin, admin_password)))
        cur.execute("RESET ROLE")
        # usermgr ends a deactivated person's open connections; no login may make temporary tables here (they
        # would shadow the store's tables inside functions that run with the owner's rights)
        # (PostgreSQL 16 and later let only a role's administrators grant it: then the DBA grants it, README)
        cur.execute("SAVEPOINT signal")
        try:
            cur.execute(sql.SQL("GRANT pg_signal_backend TO {}").format(_ident(p + "usermgr")))
            cur.execute("RELEASE SAVEPOINT signal")
            notes = ""
        except psycopg.errors.InsufficientPrivilege:
            cur.execute("ROLLBACK TO SAVEPOINT signal")
            notes = (f" Ask a superuser to run GRANT pg_signal_backend TO {p}usermgr, so that deactivating someone "
                     "also ends their open connections.")
        cur.execute(sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC").format(_ident(address.dbname)))
        # The set-up login keeps nothing: from here on no login can act as the owner or make logins directly.
        cur.execute(sql.SQL("REVOKE {}, {} FROM {}").format(_ident(p + "owner"), _ident(p + "usermgr"), me))
    return (f"Created the WardLens store on {address.label}: roles {p}admin, {p}clinician, {p}nurse, {p}analyst, "
            f"and the administrator login {admin}.{notes}")


def upgrade_server(address: ServerAddress, dba_password: str | None) -> list[int]:
    """Bring a server store to this WardLens's schema version, as the DBA's set-up login (no staff login may change
    the schema): every pending migration as the owner role, in one transaction with the version, or none."""
    p = sch.role_prefix(address.dbname)
    with _setup_transaction(address, dba_password) as (conn, cur):
        me = _ident(address.user)
        # the owner role for this transaction only: given back below, or undone with the rollback
        cur.execute(sql.SQL("GRANT {} TO {}").format(_ident(p + "owner"), me))
        cur.execute(sql.SQL("SET LOCAL search_path = {}").format(_ident(SCHEMA)))
        cur.execute(sql.SQL("SET LOCAL ROLE {}").format(_ident(p + "owner")))
        row = cur.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        have = int(row[0]) if row else 0
        if have > sch.SERVER_VERSION:
            raise ServerSetupError(f"The server store is at schema version {have}, newer than this WardLens "
                                   f"({sch.SERVER_VERSION}). Upgrade WardLens instead.")
        todo = [m for m in sch.SERVER_MIGRATIONS if have < m[0] <= sch.SERVER_VERSION]
        if not todo:
            conn.rollback()   # not even the owner role's grant stays
            return []
        for version, _what, script in todo:
            for stmt in sch.statements(script.replace("@P", p), SCHEMA):
                cur.execute(stmt)
            cur.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'", (str(version),))
        cur.execute("RESET ROLE")
        cur.execute(sql.SQL("REVOKE {} FROM {}").format(_ident(p + "owner"), me))
    return [m[0] for m in todo]
