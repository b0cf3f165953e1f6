"""Append-only, hash-chained, signed audit log.

Each row's hash covers its fields and the previous row's hash, so an edited row breaks its own hash
and a deleted row breaks the next row's link. Triggers refuse UPDATE and DELETE; neither stops someone who
holds the data key and rewrites the file, so each row is also signed (Ed25519) by the user whose session
wrote it: recomputing the chain after an edit would need every later writer's private key. Truncation and
rewind are caught against anchors kept outside the store (services.site.anchors, the users' keyrings).
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

from models.domain import AuditEvent
from services.store.database import Database

GENESIS = "0" * 64


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def row_hash(prev_hash: str, id_: int, ts: str, username: str, action: str, entity: str, entity_id: str,
             detail: str) -> str:
    payload = "\x1f".join(str(v) for v in (prev_hash, id_, ts, username, action, entity, entity_id, detail))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def append(conn, username: str, action: str, entity: str = "", entity_id: str | int = "", detail: str = "",
           ts: str | None = None) -> None:
    """Append inside the caller's transaction (the caller holds the write lock)."""
    ts = ts or _now()
    server = getattr(conn, "dialect", "sqlite") == "postgresql"
    # On the server a login may write the log but not read it: audit_head() tells where it ends and serialises
    # appends from all desks; the server's trigger checks the link and records the head (server_schema).
    last = conn.execute("SELECT id, hash FROM audit_head()" if server else
                        "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    prev_id, prev_hash = (int(last[0]), last[1]) if last else (0, GENESIS)
    new_id = prev_id + 1
    h = row_hash(prev_hash, new_id, ts, username, action, entity, str(entity_id), detail)
    trust = getattr(conn, "trust", None)
    signer, sig = trust.sign_audit(h) if trust is not None else (None, None)
    conn.execute("INSERT INTO audit_log (id, ts, username, action, entity, entity_id, detail, prev_hash, hash, signer, "
                 "sig) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                 (new_id, ts, username, action, entity, str(entity_id), detail, prev_hash, h, signer, sig))
    if not server:
        conn.execute("INSERT INTO meta(key, value) VALUES ('audit_head', ?) "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (f"{new_id}:{h}",))
    if trust is not None and trust.admin_key is not None and trust.admin_pub is not None:
        from services.store import integrity   # (imports this module)
        if integrity.is_admin_change(action):
            integrity.seal_state(conn, trust)   # the change and the signed summary in one transaction


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
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# Rows whose writer is not the signer by design: alerts raised by the system within a user's session, and failed
# logins carried over from the key file by the next user who logs in.
_SIGNED_FOR_OTHERS = ("system",)


def _signer_allowed(user: str, action: str, signer: str) -> bool:
    return signer == user or user in _SIGNED_FOR_OTHERS or action == "login_failed" or \
        (user == "recovery" and signer == "recovery")


def verify_chain(conn, max_problems: int = 20, keys=None, pending: dict[str, bytes] | None = None,
                 required_from: int | None = None) -> ChainReport:
    """The chain, and with `keys` (services.store.integrity.KeySet: the trusted keys of each user by row) every row's
    signature from the first signed row on: an unsigned row after it, a signature that fails, or a row signed by
    someone other than the user it names is reported."""
    from services.store.signing import AUDIT, verifies
    problems: list[str] = []
    prev_id, prev_hash, n = 0, GENESIS, 0
    signing_began = False
    store_id = None
    by_pending: dict[str, list[int]] = {}
    if keys is not None:
        row = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
        store_id = row[0] if row else ""
    signed_schema = getattr(conn, "dialect", "sqlite") == "postgresql" or \
        any(r[1] == "sig" for r in conn.execute("PRAGMA table_info(audit_log)"))  # v7 and later; every server store
    sig_cols = "signer, sig" if signed_schema else "NULL, NULL"
    for id_, ts, user, action, entity, entity_id, detail, p_hash, h, signer, sig in conn.execute(
            "SELECT id, ts, username, action, entity, entity_id, detail, prev_hash, hash, " + sig_cols +
            " FROM audit_log ORDER BY id"):
        n += 1
        if id_ != prev_id + 1:
            problems.append(f"audit rows {prev_id + 1}..{id_ - 1} are missing (deleted)")
        if p_hash != prev_hash:
            problems.append(f"audit row {id_} does not link to the row before it")
        if row_hash(p_hash, id_, ts, user, action, entity, entity_id, detail) != h:
            problems.append(f"audit row {id_} was altered after it was written")
        if keys is not None:
            if sig:
                signing_began = True
                if signer not in keys and pending and signer in pending and \
                        verifies(pending[signer], sig, AUDIT, store_id, h):
                    by_pending.setdefault(signer, []).append(id_)
                elif not any(verifies(k, sig, AUDIT, store_id, h) for k in keys.candidates(signer, id_)):
                    problems.append(f"audit row {id_}'s signature does not verify (written or rewritten by someone "
                                    f"other than {signer!r})")
                elif not _signer_allowed(user, action, signer):
                    problems.append(f"audit row {id_} names {user!r} but was signed by {signer!r}")
            elif signing_began or (required_from is not None and id_ >= required_from):
                problems.append(f"audit row {id_} is not signed (added or stripped outside WardLens)")
        prev_id, prev_hash = id_, h
        if len(problems) >= max_problems:
            problems.append("(further problems not listed)")
            break
    head = conn.execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone()
    if head and len(problems) < max_problems:
        head_id, _, head_hash = str(head[0]).partition(":")
        if not head_id.isdigit() or int(head_id) != prev_id or head_hash != prev_hash:
            problems.append(f"the audit log ends at row {prev_id} but its recorded head is row {head_id} "
                            "(rows at the end were deleted or altered)")
    elif n and not head:
        problems.append("the audit log's recorded head is missing")
    # A key no administrator countersigned cannot be told from one an insider wrote into the file for that user.
    problems += [f"{len(ids)} audit rows (from row {ids[0]}) are signed with a key of {u!r} that no administrator has "
                 f"countersigned: they cannot be told from forgeries (users countersign {u}, once {u} confirms they "
                 "logged in since the upgrade)" for u, ids in by_pending.items()]
    return ChainReport(n, problems, [])
