"""The hospital server store: the same tables on PostgreSQL, reached over verified TLS with each person's own login.

`ServerAddress` reads the libpq URL a site gives (`postgresql://[user@]host[:port]/dbname?sslmode=verify-full&
sslrootcert=ca.pem`) and applies WardLens's rule before any byte goes on the wire: a TCP connection is made only with
`verify-full` (or `verify-ca` where the site chooses) against a CA file; a local Unix socket needs no TLS. A password
in the URL is refused (it would sit in shell histories and process lists): it comes from the prompt or PGPASSWORD.

`ServerDatabase` offers what services use of `services.store.database.Database` (a connection per thread, explicit
transactions, interrupt, close), so one set of domain services runs on both stores. Its connections accept the
desk store's SQL with `?` placeholders; `PgConnection` rewrites them to psycopg's and reports `lastrowid` from
`RETURNING id`. Why psycopg 3 and not SQLAlchemy: docs/architecture.md.
"""
from __future__ import annotations

import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import parse_qs, quote, unquote, urlsplit

import psycopg
from psycopg import errors as pgerr
from psycopg.pq import TransactionStatus

from services.core.errors import WardLensError, WrongPassword
from services.store.dialect import is_server_url

SCHEMA = "wardlens"
TLS_MODES = ("verify-full", "verify-ca")
CONNECT_TIMEOUT_S = 10
LOCK_TIMEOUT_MS = 15_000


class ServerAddressError(WardLensError):
    """The server address cannot be used as given (not a PostgreSQL URL, no TLS verification, a password in it)."""


class ServerUnavailable(WardLensError):
    """The server cannot be reached or dropped the connection: nothing of the operation was saved anywhere."""


class ServerTrustError(WardLensError):
    """The server's certificate did not verify: WardLens does not talk to it."""


@dataclass(frozen=True)
class ServerAddress:
    host: str            # a host name, an IP address, or a Unix socket folder (starts with "/")
    port: int
    dbname: str
    user: str
    sslmode: str
    sslrootcert: str

    @property
    def via_socket(self) -> bool:
        return self.host.startswith("/")

    @property
    def label(self) -> str:
        """How the desk names the store to people: database and server, never a password."""
        where = "this computer's socket" if self.via_socket else f"{self.host}:{self.port}"
        return f"{self.dbname} on {where}"

    @property
    def url(self) -> str:
        who = f"{self.user}@" if self.user else ""
        if self.via_socket:
            return f"postgresql://{who}/{quote(self.dbname)}?host={quote(self.host, safe='/')}&port={self.port}"
        return (f"postgresql://{who}{self.host}:{self.port}/{quote(self.dbname)}?sslmode={self.sslmode}"
                f"&sslrootcert={quote(self.sslrootcert, safe='/')}")

    def with_user(self, user: str) -> "ServerAddress":
        return ServerAddress(self.host, self.port, self.dbname, user, self.sslmode, self.sslrootcert)

    @classmethod
    def parse(cls, url: str) -> "ServerAddress":
        if not is_server_url(url):
            raise ServerAddressError("A server store is given as postgresql://user@host:port/database?sslmode=verify-full"
                                     "&sslrootcert=/path/to/hospital-ca.pem")
        parts = urlsplit(url.strip())
        if parts.password is not None:
            raise ServerAddressError("The server address must not contain a password (it would be kept in shell "
                                     "histories and process lists). Type it when asked, or set PGPASSWORD.")
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        unknown = set(query) - {"sslmode", "sslrootcert", "host", "port", "user", "dbname", "connect_timeout",
                                "application_name"}
        if unknown:
            raise ServerAddressError(f"The server address has options WardLens does not use: {', '.join(sorted(unknown))}.")
        host = unquote(query.get("host") or parts.hostname or "")
        try:
            port = int(query.get("port") or parts.port or 5432)
        except ValueError:
            raise ServerAddressError("The server address has a port that is not a number.") from None
        # One named host: libpq reads "a,b" as a list to try in turn (a socket first, then plain TCP), and an empty
        # host as "whatever PGHOST says".
        if not host:
            raise ServerAddressError("Name the server in the address: postgresql://host/database, or host=/folder "
                                     "for a local socket.")
        if "," in host or "," in str(query.get("port", "")):
            raise ServerAddressError("The server address names several hosts or ports; WardLens connects to one.")
        dbname = unquote(query.get("dbname") or parts.path.lstrip("/"))
        if not dbname:
            raise ServerAddressError("The server address names no database (…/dbname after the host).")
        user = unquote(query.get("user") or parts.username or "")
        sslmode = query.get("sslmode", "")
        ca = query.get("sslrootcert", "")
        address = cls(host, port, dbname, user, sslmode, ca)
        if not address.via_socket:
            if sslmode not in TLS_MODES:
                raise ServerAddressError(
                    f"WardLens connects to {host} only over TLS that checks the server's certificate: add "
                    "sslmode=verify-full&sslrootcert=/path/to/hospital-ca.pem to the address "
                    f"({'sslmode=' + sslmode if sslmode else 'no sslmode'} was given; 'require' and weaker modes "
                    "do not check who answers).")
            if not ca:
                raise ServerAddressError("Name the hospital's CA certificate file with sslrootcert=… so that "
                                         "WardLens can check the server's certificate.")
            if ca != "system" and not Path(ca).is_file():
                raise ServerAddressError(f"The CA certificate file {ca} does not exist on this computer.")
        return address

    def conninfo(self, user: str | None = None) -> dict[str, Any]:
        # lock_timeout: a lock held by someone else (an advisory lock any login may take) makes a desk say so after
        # a while instead of hanging; password only by SCRAM, bound to the TLS channel over the network.
        args: dict[str, Any] = {"host": self.host, "port": self.port, "dbname": self.dbname,
                                "user": user or self.user, "connect_timeout": CONNECT_TIMEOUT_S,
                                "application_name": "WardLens", "require_auth": "scram-sha-256",
                                "options": f"-c search_path={SCHEMA} -c lock_timeout={LOCK_TIMEOUT_MS}"}
        if self.via_socket:
            args["sslmode"] = "disable"    # a Unix socket never leaves the machine
        else:
            args.update(sslmode=self.sslmode, sslrootcert=self.sslrootcert, channel_binding="require")
        return args


# libpq's environment variables that would change where or how a desk connects behind the address it was given
LIBPQ_ENV = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGSERVICE", "PGSERVICEFILE", "PGSSLMODE", "PGREQUIRESSL",
             "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGSSLCRL", "PGSSLNEGOTIATION", "PGGSSENCMODE",
             "PGCHANNELBINDING", "PGREQUIREAUTH", "PGOPTIONS", "PGTARGETSESSIONATTRS", "PGDATABASE", "PGUSER",
             "PGPASSFILE", "PGSYSCONFDIR")


def connect(address: ServerAddress, user: str, password: str | None, autocommit: bool = True) -> psycopg.Connection:
    """A connection as `user`, with errors a person can act on (wrong password, unreachable, untrusted). Only the
    address counts: libpq's environment variables are dropped from this process first."""
    for name in LIBPQ_ENV:
        os.environ.pop(name, None)
    try:
        return psycopg.connect(**address.conninfo(user), password=password, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise explain(exc, address) from None


def explain(exc: BaseException, address: ServerAddress) -> WardLensError:
    text = str(exc)
    low = text.lower()
    # a deactivated login (NOLOGIN) is told apart from a wrong password by nobody, as on the desk store
    if "password authentication failed" in low or "no password supplied" in low or \
            "role" in low and ("does not exist" in low or "not permitted to log in" in low):
        return WrongPassword()
    if "certificate" in low or "ssl" in low and ("verify" in low or "handshake" in low):
        return ServerTrustError(f"The server {address.label} did not prove it is the hospital's server (its "
                                f"certificate did not verify against {address.sslrootcert}). WardLens did not "
                                f"connect. Ask IT to check the certificates. ({_first_line(text)})")
    if "lock timeout" in low or "canceling statement due to lock timeout" in low:
        return ServerUnavailable(f"The hospital server {address.label} is busy with another desk's change (a lock "
                                 "held too long). Nothing was saved; try again in a moment, and tell IT if it lasts.")
    if "pg_hba.conf" in low or "no encryption" in low:
        return ServerUnavailable(f"The server {address.label} refused this computer or user ({_first_line(text)}). "
                                 "Ask IT to allow this desk.")
    if "does not exist" in low and "database" in low:
        return ServerUnavailable(f"There is no database {address.dbname} on {address.host}:{address.port}.")
    return ServerUnavailable(f"The hospital server {address.label} cannot be reached ({_first_line(text)}). Nothing "
                             "was saved on this computer. Try again in a moment; if it lasts, ask IT.")


def refused(exc: BaseException) -> WardLensError:
    """The server itself refused an action to this person's role (docs/security.md, the server store)."""
    from services.core.errors import PermissionDenied
    return PermissionDenied(f"The hospital server does not allow this for your role ({_first_line(str(exc))}).")


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (lines[-1] if lines else text)[:200]


# --- the desk store's SQL on PostgreSQL ---------------------------------------------------------------------------
# What may hold a ? or % that is not a placeholder: comments, E'' strings (backslash escapes), '' strings, quoted
# identifiers, dollar-quoted bodies. Each is copied as it is (a % doubled), the rest is rewritten.
_TOKENS = re.compile(r"--[^\n]*|/\*.*?\*/|[Ee]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|"
                     r"(\$[A-Za-z_]*\$).*?\1|\?|%", re.DOTALL)
_INSERT = re.compile(r"^\s*INSERT\s+(OR\s+IGNORE\s+)?INTO\s+(\w+)", re.IGNORECASE)
# Tables whose rows have an identity `id` (services read cursor.lastrowid after inserting into them). Not the audit
# log: RETURNING needs SELECT, which only administrators have there.
ID_TABLES = frozenset({"wards", "beds", "patients", "encounters", "lab_results", "xray_studies",
                       "interventions", "alerts", "waiting_admissions", "model_versions", "diagnoses", "procedures",
                       "medication_orders"})


@lru_cache(maxsize=2048)
def translate(sql: str, returning: bool = True) -> tuple[str, bool]:
    """SQLite's `?` to psycopg's `%s` (a literal % doubled), INSERT OR IGNORE to ON CONFLICT DO NOTHING; and whether
    ` RETURNING id` was added (an INSERT into a table with an identity id, so that lastrowid can be reported)."""
    def token(m: re.Match) -> str:
        t = m.group(0)
        if t == "?":
            return "%s"
        if t.startswith(("--", "/*")):   # comments go: nothing appended may land inside one
            return " "
        return t.replace("%", "%%")
    out = _TOKENS.sub(token, sql)
    m = _INSERT.match(out)
    added = False
    if m:
        out = out.rstrip().rstrip(";").rstrip()
        bare = _TOKENS.sub(lambda t: t.group(0) if t.group(0) in ("?", "%") else " " * len(t.group(0)), out)
        tail = re.search(r"\bRETURNING\b", bare, re.IGNORECASE)   # outside literals and comments
        if m.group(1):
            at = tail.start() if tail else len(out)
            out = out[:at].rstrip() + " ON CONFLICT DO NOTHING" + (" " + out[at:] if tail else "")
            out = out[:m.start(1)] + out[m.end(1):]
        if returning and m.group(2).lower() in ID_TABLES and tail is None:
            out += " RETURNING id"
            added = True
    return out, added


class PgCursor:
    """The part of sqlite3.Cursor that services use."""

    def __init__(self, cur: psycopg.Cursor, added_returning: bool) -> None:
        self._cur = cur
        self.lastrowid: int | None = None
        self.rowcount = cur.rowcount
        if added_returning:
            row = cur.fetchone()
            self.lastrowid = int(row[0]) if row else None

    def fetchone(self):
        return self._cur.fetchone() if self._cur.description is not None else None

    def fetchall(self) -> list:
        return self._cur.fetchall() if self._cur.description is not None else []

    def fetchmany(self, n: int) -> list:
        return self._cur.fetchmany(n) if self._cur.description is not None else []

    def __iter__(self):
        return iter(self.fetchall())

    @property
    def description(self):
        return self._cur.description


class PgConnection:
    """A psycopg connection in autocommit mode that speaks the desk store's dialect (see translate)."""
    trust = None
    dialect = "postgresql"

    def __init__(self, raw: psycopg.Connection, address: ServerAddress, reconnect=None) -> None:
        self.raw = raw
        self.address = address
        self.in_tx = False   # inside ServerDatabase.transaction: a dropped connection there fails the whole of it
        self._reconnect = reconnect   # a fresh psycopg connection as the same person (ServerDatabase)

    def execute(self, sql: str, params: Sequence[Any] | dict = ()) -> PgCursor:
        text, added = translate(sql)
        args = tuple(params) if not isinstance(params, dict) else params
        try:
            return PgCursor(self.raw.execute(text, args), added)
        except pgerr.InsufficientPrivilege as exc:
            if self.in_tx:
                raise   # the transaction says so once it has rolled back (ServerDatabase.transaction)
            raise refused(exc) from exc
        except psycopg.OperationalError as exc:
            # A read outside a transaction on a connection the server or the network dropped (a restart, a cable):
            # once more on a new connection. Writes never retry here: they run in transactions, all or nothing.
            if self._reconnect is None or self.in_tx or not self.raw.closed or \
                    not text.lstrip()[:6].upper() == "SELECT":
                raise explain(exc, self.address) from exc
        try:
            self.raw = self._reconnect()
            return PgCursor(self.raw.execute(text, args), added)
        except psycopg.OperationalError as exc:
            raise explain(exc, self.address) from exc

    def executemany(self, sql: str, rows) -> PgCursor:
        text, _ = translate(sql, returning=False)
        rows = [tuple(r) for r in rows]
        try:
            with self.raw.cursor() as cur:
                if rows:
                    cur.executemany(text, rows)
                return PgCursor(cur, False)
        except psycopg.OperationalError as exc:
            raise explain(exc, self.address) from exc

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def interrupt(self) -> None:
        self.raw.cancel_safe(timeout=2)

    def close(self) -> None:
        self.raw.close()


class ChangeListener:
    """What other desks changed, as the server tells it (LISTEN/NOTIFY, fired once per statement by the triggers of
    server_schema on patients, stays, alerts and waiting admissions), on a connection of its own."""

    def __init__(self, db: "ServerDatabase") -> None:
        self._db = db
        self._conn: psycopg.Connection | None = None
        self._closed = False
        self.channel = f"{SCHEMA}_changes"

    def _connect(self) -> psycopg.Connection:
        if self._closed:
            from services.core.errors import SessionLocked
            raise SessionLocked()
        if self._conn is None or self._conn.closed:
            self._conn = self._db.new_connection()
            self._conn.execute(f"LISTEN {self.channel}")
        return self._conn

    def wait(self, timeout_s: float) -> set[str]:
        """The tables changed within `timeout_s` (empty when nothing was). Raises ServerUnavailable when the server
        cannot be reached; the next call connects again."""
        tables: set[str] = set()
        try:
            conn = self._connect()
            for note in conn.notifies(timeout=timeout_s, stop_after=1):
                tables.add(note.payload)
            for note in conn.notifies(timeout=0.05):   # the rest of a burst, at once
                tables.add(note.payload)
        except psycopg.OperationalError as exc:
            if self._closed:   # closed at lock while waiting
                from services.core.errors import SessionLocked
                raise SessionLocked() from None
            self._drop()
            raise explain(exc, self._db.address) from exc
        return tables

    def close(self) -> None:
        """For good (the session locked): a later wait raises SessionLocked."""
        self._closed = True
        self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass


class ServerDatabase:
    """The server store for one logged-in person: their own PostgreSQL login, a connection per thread."""
    kind = "server"

    def __init__(self, address: ServerAddress, user: str, password: str) -> None:
        self.address = address.with_user(user)
        self.path = address.label        # what messages and the audit call the store
        self._password: str | None = password
        self._local = threading.local()
        self._all: list[PgConnection] = []
        self._listeners: list[ChangeListener] = []
        self._lock = threading.Lock()
        self.trust = None

    @classmethod
    def login(cls, address: ServerAddress, user: str, password: str) -> "ServerDatabase":
        db = cls(address, user, password)
        db.conn  # the login happens here: a wrong password or an unreachable server raise now
        return db

    def new_connection(self) -> psycopg.Connection:
        """A connection of this person's own (SessionLocked once the session closed)."""
        if self._password is None:
            from services.core.errors import SessionLocked
            raise SessionLocked()
        return connect(self.address, self.address.user, self._password)

    def change_listener(self) -> ChangeListener:
        listener = ChangeListener(self)
        with self._lock:
            self._listeners.append(listener)
        return listener

    def remember_password(self, password: str) -> None:
        """After the person changed their password: new connections (other threads, reconnects) log in with it."""
        self._password = password

    def set_trust(self, trust) -> None:
        with self._lock:
            self.trust = trust
            for c in self._all:
                c.trust = trust

    @property
    def is_open(self) -> bool:
        return self._password is not None

    @property
    def conn(self) -> PgConnection:
        c = getattr(self._local, "conn", None)
        if c is not None and c.raw.closed:
            c = None      # dropped by the server or the network: the next use reconnects
        if c is None:
            c = PgConnection(self.new_connection(), self.address, self.new_connection)
            c.trust = self.trust
            self._local.conn = c
            with self._lock:
                self._all.append(c)
        return c

    @contextmanager
    def transaction(self) -> Iterator[PgConnection]:
        """All or nothing, as on the desk store. A dropped connection mid-way leaves nothing committed (the server
        rolls an unfinished transaction back) and raises ServerUnavailable."""
        c = self.conn
        c.in_tx = True
        try:
            with c.raw.transaction():
                yield c
        except psycopg.OperationalError as exc:
            raise explain(exc, self.address) from exc
        except pgerr.InsufficientPrivilege as exc:
            raise refused(exc) from exc
        except pgerr.DiskFull as exc:
            from services.store.database import DiskFull
            raise DiskFull(self.address.label) from exc
        finally:
            c.in_tx = False

    def interrupt(self) -> None:
        with self._lock:
            for c in self._all:
                try:
                    c.interrupt()
                except Exception:
                    pass

    def close(self) -> None:
        with self._lock:
            for c in self._all:
                try:
                    c.close()
                except Exception:
                    pass
            self._all.clear()
            for listener in self._listeners:
                listener.close()
            self._listeners.clear()
        self._local = threading.local()
        self.trust = None
        self._password = None
