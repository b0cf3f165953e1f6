"""`migrate-store --from FILE.db --to URL`: a desk store moves up to the hospital server, with its audit chain and
model registry, and both sides are checked to agree (rows per table, the audit chain's head and its verification).

Run by the desk store's administrator, who becomes the server store's first administrator with the same user name and
password; the site's DBA gives the set-up login (CREATEROLE, owner of an empty database) in the URL. Everything is
copied in ONE server transaction: a failure leaves the server database with its empty schema and none of the records.
Identifying fields sealed under the desk's identity key are opened on the way (the server keeps them as columns that
only care roles may read); every other value is copied as stored. The other people of the desk store get their own
server logins with one-time passwords, shown once, to be changed at their first login.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from models.domain import Permission
from services.core.errors import WardLensError
from services.core.progress import ProgressFn, no_progress
from services.site.accounts import new_one_time_password
from services.site.server_setup import init_server, verifier
from services.site.session import Session
from services.store import audit, server_keys
from services.store.dialect import sync_ids
from services.store.identity import TEXT_FIELDS, UNREADABLE, UNREADABLE_TEXT
from services.store.server import ServerAddress, ServerDatabase, connect

# Parents before children (foreign keys); patient_codes is the server's own (kept by its diagnoses trigger).
ORDER = ("wards", "beds", "patients", "encounters", "medications", "lab_results", "comorbidities", "diagnoses",
         "procedures", "medication_orders", "identifiers", "xray_studies", "interventions", "alerts",
         "waiting_admissions", "model_versions", "settings", "retired_keys", "adt_messages", "audit_log")
ID_TABLES = ("wards", "beds", "patients", "encounters", "lab_results", "diagnoses", "procedures", "medication_orders",
             "xray_studies", "interventions", "alerts", "waiting_admissions", "model_versions")
BATCH = 2000


class MigrationRefused(WardLensError):
    pass


@dataclass
class MigrationReport:
    counts: dict[str, int]
    audit_head: str
    one_time_passwords: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _columns_desk(conn, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


def _columns_server(conn, table: str) -> list[str]:
    return [r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = "
                                       "current_schema() AND table_name = ? ORDER BY ordinal_position", (table,))]


def migrate_store(session: Session, url: str, dba_password: str | None, admin_password: str,
                  progress: ProgressFn = no_progress) -> MigrationReport:
    """`session`: the desk store's administrator, logged in with `admin_password`."""
    session.require(Permission.MANAGE_USERS, "move the store to a server")
    if not session.codec.readable:
        raise MigrationRefused("This session cannot open the store's identifying fields; log in as an administrator "
                               "who holds the identity key.")
    from services.site.facade import Site
    found = Site(session).verify().problems   # what moves up must verify here first: it is trusted there for good
    if found:
        raise MigrationRefused("The desk store does not verify, so it is not moved: " + "; ".join(found[:5]) +
                               ". Run verify, restore a verified backup or have the problems explained first.")
    address = ServerAddress.parse(url)
    src = session.db.conn
    users = src.execute("SELECT username, role, display_name, active, created_at FROM users ORDER BY username").fetchall()
    probe = connect(address, address.user, dba_password)
    try:
        taken = [u for (u, *_r) in users if probe.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (u,)).fetchone()]
    finally:
        probe.close()
    if taken:
        raise MigrationRefused(f"The server already has logins called {', '.join(taken)}; a server's logins serve "
                               "every database on it. Nothing was changed.")
    me = session.user.username
    mine = next(u for u in users if u[0] == me)
    progress(0, len(ORDER) + 2, "setting up the server store")
    init_server(address, dba_password, me, admin_password, mine[2])
    db = ServerDatabase.login(address, me, admin_password)
    report = MigrationReport({}, "")
    try:
        with db.transaction() as dst:
            for i, table in enumerate(ORDER):
                progress(i + 1, len(ORDER) + 2, f"copying {table}")
                report.counts[table] = _copy(session, src, dst, table)
            for table in ID_TABLES:
                sync_ids(dst, table)
            retired = src.execute("SELECT value FROM meta WHERE key = 'retired_patient_id'").fetchone()
            if retired:
                dst.execute("INSERT INTO meta (key, value) VALUES ('retired_patient_id', ?) ON CONFLICT (key) DO UPDATE "
                            "SET value = excluded.value", (retired[0],))
            report.one_time_passwords = _people(dst, [u for u in users if u[0] != me])
            # the desk keys that signed the copied audit rows, recorded once with the copied head, for verify
            store_id = src.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0]
            dst.execute("SELECT record_desk_history(CAST(? AS jsonb), ?)", (json.dumps(_desk_keys(session, src)),
                                                                            store_id))
            head = dst.execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone()
            report.audit_head = head[0] if head else ""
        # this administrator's server signing key signs from the row after the copied log
        db.set_trust(server_keys.session_trust(db, me, admin_password))
        with db.transaction() as dst:
            audit.append(dst, me, "store_migrated", "store", "", f"from the desk store; {sum(report.counts.values())} rows")
        progress(len(ORDER) + 1, len(ORDER) + 2, "checking both sides agree")
        report.problems = _compare(session, src, db, report)
    finally:
        db.close()
    progress(len(ORDER) + 2, len(ORDER) + 2, "done")
    return report


def _copy(session: Session, src, dst, table: str) -> int:
    theirs = set(_columns_server(dst, table))
    cols = [c for c in _columns_desk(src, table) if c in theirs]
    order = "id" if "id" in cols else cols[0]
    marks = ",".join("?" * len(cols))
    insert = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})"
    sealed = [(col, owner) for t, col, owner, _w in TEXT_FIELDS if t == table]
    n, cur = 0, src.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}")
    while rows := cur.fetchmany(BATCH):
        out = [_open(session, table, cols, row, sealed) for row in rows]
        dst.executemany(insert, out)
        n += len(out)
    return n


def _open(session: Session, table: str, cols: list[str], row: tuple, sealed: list[tuple[str, str]]) -> tuple:
    """A desk row as the server keeps it: identifying fields in their columns, sealed free text opened."""
    v = dict(zip(cols, row))
    codec = session.codec
    if table == "patients":
        who = codec.read_patient(v["id"], v["mrn"], v["given_name"], v["family_name"], v["birth_date"], v["ident"])
        if who is UNREADABLE:
            raise MigrationRefused(f"Patient id {v['id']}'s sealed identity does not open (altered outside WardLens): "
                                   "nothing was copied. Run verify on the desk store first.")
        v.update(mrn=who.mrn, given_name=who.given, family_name=who.family, birth_date=who.birth, ident=None,
                 search_name="")
    for col, owner in sealed:
        if v.get(col):
            text = codec.text_out(table, col, v[owner], v[col])
            if text == UNREADABLE_TEXT:
                raise MigrationRefused(f"A sealed {table} {col} (row {v.get('id')}) does not open: nothing was copied.")
            v[col] = text
    return tuple(bytes(x) if isinstance(x, memoryview) else x for x in v.values())


def _desk_keys(session: Session, src) -> list[dict]:
    """Who signed the desk store's audit rows with which key, up to which row: as the desk's own verify trusts them
    (integrity.key_set: keys and retirements an administrator countersigned, the recovery key's administrator key),
    never a key merely written into the users or retired_keys table."""
    from services.store import integrity
    from services.store.signing import b64
    trust = session.db.trust
    if trust is None:
        return []
    last = src.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()[0] + 1
    keys, _pending = integrity.key_set(src, trust)
    out = [{"username": u, "sign_pub": b64(pub), "to_row": last} for u, pub in keys.current.items()]
    out += [{"username": u, "sign_pub": b64(pub), "to_row": to} for u, spans in keys.retired.items()
            for pub, to in spans]
    return out


def _people(dst, others: list[tuple]) -> dict[str, str]:
    out = {}
    for username, role, display, active, created in others:
        one_time = new_one_time_password()
        dst.execute("INSERT INTO users (username, role, display_name, active, created_at, must_change) "
                    "VALUES (?,?,?,?,?,1)", (username, role, display, active, created))
        dst.execute("SELECT create_login(?, ?, ?, true)", (username, verifier(dst.raw, username, one_time), role))
        if active == 1:
            out[username] = one_time
        else:
            dst.execute("SELECT disable_login(?)", (username,))
    return out


def _compare(session: Session, src, db: ServerDatabase, report: MigrationReport) -> list[str]:
    problems = []
    dst = db.conn
    for table, n in report.counts.items():
        have = src.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        there = dst.execute(f"SELECT count(*) FROM {table}").fetchone()[0] - (1 if table == "audit_log" else 0)
        if not (have == n == there):
            problems.append(f"{table}: {have} rows on the desk store, {there} on the server")
    last = src.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    if last and report.audit_head != f"{last[0]}:{last[1]}":
        problems.append(f"the audit chain's head differs: desk {last[0]}:{last[1]}, server {report.audit_head}")
    chain = audit.verify_chain(dst, keys=server_keys.key_set(dst))   # every signature too, as verify checks them
    problems += [f"server audit chain: {p}" for p in chain.problems]
    codes_desk = src.execute("SELECT count(*) FROM patient_codes").fetchone()[0]
    codes_server = dst.execute("SELECT count(*) FROM patient_codes").fetchone()[0]
    if codes_desk != codes_server:
        problems.append(f"patient codes: {codes_desk} on the desk store, {codes_server} on the server")
    return problems
