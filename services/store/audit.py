"""Append-only, hash-chained audit log.

Each row's hash covers its fields and the previous row's hash, so an edited row breaks its own hash
and a deleted row breaks the next row's link. The chain head (last id and hash) is kept in `meta` in
the same transaction, which catches a deleted last row. Triggers refuse UPDATE and DELETE.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from models.domain import AuditEvent
from services.store.database import Database

GENESIS = "0" * 64


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def row_hash(prev_hash: str, id_: int, ts: str, username: str, action: str, entity: str, entity_id: str,
             detail: str) -> str:
    payload = "\x1f".join([prev_hash, str(id_), ts, username, action, entity, entity_id, detail])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def append(conn, username: str, action: str, entity: str = "", entity_id: str | int = "", detail: str = "",
           ts: str | None = None) -> None:
    """Append inside the caller's transaction (the caller holds the write lock)."""
    ts = ts or _now()
    last = conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    prev_id, prev_hash = (last[0], last[1]) if last else (0, GENESIS)
    new_id = prev_id + 1
    h = row_hash(prev_hash, new_id, ts, username, action, entity, str(entity_id), detail)
    conn.execute("INSERT INTO audit_log (id, ts, username, action, entity, entity_id, detail, prev_hash, hash) "
                 "VALUES (?,?,?,?,?,?,?,?,?)", (new_id, ts, username, action, entity, str(entity_id), detail, prev_hash, h))
    conn.execute("INSERT INTO meta(key, value) VALUES ('audit_head', ?) "
                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (f"{new_id}:{h}",))


class AuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, username: str, action: str, entity: str = "", entity_id: str | int = "", detail: str = "") -> None:
        with self.db.transaction() as c:
            append(c, username, action, entity, entity_id, detail)

    def recent(self, limit: int = 500, offset: int = 0) -> list[AuditEvent]:
        rows = self.db.conn.execute(
            "SELECT id, ts, username, action, entity, entity_id, detail FROM audit_log ORDER BY id DESC LIMIT ? OFFSET ?",
            (limit, offset)).fetchall()
        return [AuditEvent(*r) for r in rows]


@dataclass
class ChainReport:
    rows: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(conn, max_problems: int = 20) -> ChainReport:
    problems: list[str] = []
    prev_id, prev_hash, n = 0, GENESIS, 0
    for id_, ts, user, action, entity, entity_id, detail, p_hash, h in conn.execute(
            "SELECT id, ts, username, action, entity, entity_id, detail, prev_hash, hash FROM audit_log ORDER BY id"):
        n += 1
        if id_ != prev_id + 1:
            problems.append(f"audit rows {prev_id + 1}..{id_ - 1} are missing (deleted)")
        if p_hash != prev_hash:
            problems.append(f"audit row {id_} does not link to the row before it")
        if row_hash(p_hash, id_, ts, user, action, entity, entity_id, detail) != h:
            problems.append(f"audit row {id_} was altered after it was written")
        prev_id, prev_hash = id_, h
        if len(problems) >= max_problems:
            problems.append("(further problems not listed)")
            break
    head = conn.execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone()
    if head and len(problems) < max_problems:
        head_id, _, head_hash = head[0].partition(":")
        if int(head_id) != prev_id or head_hash != prev_hash:
            problems.append(f"the audit log ends at row {prev_id} but its recorded head is row {head_id} "
                            "(rows at the end were deleted or altered)")
    elif n and not head:
        problems.append("the audit log's recorded head is missing")
    return ChainReport(n, problems)
