"""Integrity checks of a store: SQLCipher page HMACs, SQLite structure, foreign keys and the audit chain."""
from __future__ import annotations

from dataclasses import dataclass, field

from services.store.audit import verify_chain
from services.store.database import DatabaseError
from services.store import migrations
from services.store.migrations import current_version

CURRENT = object()   # the schema version of this WardLens, read when the check runs


@dataclass
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    audit_rows: int = 0
    schema_version: int = 0
    server: bool = False   # a server store: its guards were checked, not SQLCipher pages

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_connection(conn, expect_version: int | None | object = CURRENT) -> VerifyReport:
    """Every check of a store; expect_version None accepts any schema version (a copy taken before an upgrade,
    an earlier release's backup)."""
    if getattr(conn, "dialect", "sqlite") == "postgresql":
        return verify_server_connection(conn)
    expect_version = migrations.LATEST if expect_version is CURRENT else expect_version
    report = VerifyReport()
    try:
        # cipher_integrity_check returns one row per page whose HMAC fails; no rows means clean.
        bad_pages = [r[0] for r in conn.execute("PRAGMA cipher_integrity_check")]
        report.problems += [f"encryption check: {m}" for m in bad_pages[:20]]
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if integrity != ["ok"]:
            report.problems += [f"structure check: {m}" for m in integrity[:20]]
        fks = conn.execute("PRAGMA foreign_key_check").fetchall()
        if fks:
            report.problems.append(f"{len(fks)} rows point to records that do not exist (first in table {fks[0][0]})")
        report.schema_version = current_version(conn)
        if expect_version is not None and report.schema_version != expect_version:
            report.problems.append(f"schema version {report.schema_version}, expected {expect_version}")
        trust = getattr(conn, "trust", None)
        chain = verify_chain(conn)
        report.audit_rows = chain.rows
        report.problems += chain.problems
        if trust is not None:   # an open session: every signature against the administrator key it trusts
            from services.store.integrity import check_signatures
            problems, notes = check_signatures(conn, trust)
            report.problems += [p for p in problems if p not in report.problems]
            report.notes += notes
    except DatabaseError as exc:
        report.problems.append(f"the store could not be read: {exc}")
    return report


# The server's own guards: if one is missing or disabled, the server no longer enforces what WardLens promises.
SERVER_TRIGGERS = ("audit_no_change", "audit_no_truncate", "audit_link", "patients_version", "encounters_version",
                   "meta_guard")


def verify_server_connection(conn) -> VerifyReport:
    """The server store: schema version, the audit chain, and that the server still guards the store (the audit
    triggers in place and enabled, no login able to act as the owner role). Pages and foreign keys are the server's
    own to keep (PostgreSQL checks foreign keys on every write; page checksums are the DBA's: initdb -k)."""
    from services.store.server_schema import SERVER_VERSION
    report = VerifyReport(server=True)
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    report.schema_version = int(row[0]) if row else 0
    if report.schema_version != SERVER_VERSION:
        report.problems.append(f"schema version {report.schema_version}, expected {SERVER_VERSION}")
    enabled = dict(conn.execute("SELECT tgname, tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
                                "AND NOT t.tgisinternal").fetchall())
    for name in SERVER_TRIGGERS:
        if enabled.get(name) in (None, "D"):
            report.problems.append(f"the server's {name} guard is {'disabled' if name in enabled else 'missing'}")
    prefix = conn.execute("SELECT value FROM meta WHERE key = 'role_prefix'").fetchone()
    if prefix:
        for role in ("owner", "usermgr"):   # no login may act as either, nor log in as it
            name = prefix[0] + role
            members = [r[0] for r in conn.execute(
                "SELECT m.rolname FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON "
                "m.oid = a.member WHERE r.rolname = ?", (name,))]
            if members:
                report.problems.append(f"{', '.join(members)} can act as the store's {role} role (and so alter the "
                                       "audit log or make logins)")
            can_login = conn.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = ?", (name,)).fetchone()
            if can_login and can_login[0]:
                report.problems.append(f"the store's {role} role can log in: someone gave it a login and password")
    from services.store.server_keys import key_set, writer_problems
    chain = verify_chain(conn, keys=key_set(conn))   # every signed row against the keys of the person it names
    report.audit_rows = chain.rows
    report.problems += chain.problems + writer_problems(conn)
    return report
