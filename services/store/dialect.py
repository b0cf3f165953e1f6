"""What differs between the desk store (SQLCipher) and the server store (PostgreSQL) for code holding a connection."""
from __future__ import annotations


def is_server(conn) -> bool:
    return getattr(conn, "dialect", "sqlite") == "postgresql"


def writer_lock(conn, what: str) -> None:
    """Serialise writers that number rows themselves (next patient id, encounter numbers, the audit chain).

    On the desk store BEGIN IMMEDIATE already lets one writer in at a time. On the server several desks write at once,
    so such a transaction takes a transaction-scoped advisory lock named after `what`; it ends with the transaction."""
    if is_server(conn):
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"wardlens.{what}",))
