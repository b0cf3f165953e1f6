"""What differs between the desk store (SQLCipher) and the server store (PostgreSQL) for code holding a connection.

Nothing here imports the PostgreSQL driver: a desk that never opens a server store never loads it."""
from __future__ import annotations

from pathlib import Path


def is_server_url(text: str | Path | None) -> bool:
    """A server store is named by its postgresql:// URL; anything else is a desk store file."""
    return isinstance(text, str) and text.strip().lower().startswith(("postgresql://", "postgres://"))


def server_url_from(host: str, port: str | int, database: str, ca_file: str) -> str:
    """The URL for what the unlock screen asks: server, port, database, the hospital's CA certificate file."""
    from urllib.parse import quote
    host, database, ca_file = host.strip(), database.strip(), ca_file.strip()
    port = str(port).strip() or "5432"
    if host.startswith("/"):   # a Unix socket folder on this computer
        return f"postgresql:///{quote(database)}?host={quote(host)}&port={port}"
    return f"postgresql://{host}:{port}/{quote(database)}?sslmode=verify-full&sslrootcert={quote(ca_file)}"


def server_url_problem(url: str) -> str:
    """Why WardLens would not connect to `url` (services.store.server.ServerAddress), or ''."""
    from services.store.server import ServerAddress, ServerAddressError
    try:
        ServerAddress.parse(url)
    except ServerAddressError as exc:
        return str(exc)
    return ""


def server_label(url: str) -> str:
    from services.store.server import ServerAddress, ServerAddressError
    try:
        return ServerAddress.parse(url).label
    except ServerAddressError:
        return "(address not usable)"


def is_server(conn) -> bool:
    return getattr(conn, "dialect", "sqlite") == "postgresql"


IMPORT_LOCK_WAIT = "15min"   # an import waits behind another desk's import (the whole UCI table takes about a minute)


def writer_lock(conn, what: str, long_wait: bool = False) -> None:
    """Serialise writers that number rows themselves (next patient id, encounter numbers, the audit chain).

    On the desk store BEGIN IMMEDIATE already lets one writer in at a time. On the server several desks write at once,
    so such a transaction takes a transaction-scoped advisory lock named after `what`; it ends with the transaction.
    A form's save waits as long as the connection's lock timeout (then says the server is busy); an import or a feed
    (`long_wait`) waits for another desk's import to finish."""
    if is_server(conn):
        if long_wait:
            conn.execute(f"SET LOCAL lock_timeout = '{IMPORT_LOCK_WAIT}'")
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"wardlens.{what}",))


def tables_with_column(conn, column: str, exclude: tuple[str, ...] = ()) -> list[str]:
    """The store's tables that have `column` (a merge moves every row that names the merged-away patient)."""
    if is_server(conn):
        rows = conn.execute("SELECT table_name FROM information_schema.columns WHERE table_schema = current_schema() "
                            "AND column_name = ? ORDER BY table_name", (column,)).fetchall()
    else:
        rows = conn.execute("SELECT m.name FROM sqlite_master m JOIN pragma_table_info(m.name) p ON p.name = ? "
                            "WHERE m.type = 'table' ORDER BY m.name", (column,)).fetchall()
    return [t for (t,) in rows if t not in exclude]


def sync_ids(conn, table: str) -> None:
    """After rows were written with ids chosen by the writer (bulk imports), the server's identity sequence must move
    past them, or the next row that takes its id from the sequence would collide. The desk store needs nothing."""
    if is_server(conn):
        conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), greatest((SELECT max(id) FROM {table}), 1))")
