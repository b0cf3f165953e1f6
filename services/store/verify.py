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

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_connection(conn, expect_version: int | None | object = CURRENT) -> VerifyReport:
    """Every check of a store; expect_version None accepts any schema version (a copy taken before an upgrade,
    an earlier release's backup)."""
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
