"""Logging in to a server store, and the logins of the people who use it.

On the server a person's WardLens user name and password ARE their PostgreSQL login: the server checks the password
(SCRAM) and enforces their role's privileges (services.store.server_schema), whatever program they connect with.
Identifying fields are plain columns there, kept from analysts by column privileges and at rest by the server's disk
encryption (docs/security.md), instead of the desk store's identity key.
"""
from __future__ import annotations

from pathlib import Path

from models.domain import Role, User
from services.core.errors import PermissionDenied, WrongPassword
from services.site.session import DEFAULT_IDLE_MINUTES, Session
from services.store.identity import IdentityCodec
from services.store.server import ServerAddress, ServerDatabase


def unlock_server(url: str, username: str, password: str, idle_minutes: float | None = None) -> Session:
    address = ServerAddress.parse(url)
    username = (username or address.user or "").strip().lower()
    db = ServerDatabase.login(address, username, password)
    try:
        row = db.conn.execute("SELECT role, display_name, active FROM users WHERE username = ?", (username,)).fetchone()
        if row is None or row[2] != 1:
            raise WrongPassword()
        prefix = db.conn.execute("SELECT value FROM meta WHERE key = 'role_prefix'").fetchone()[0]
        # The server's grant is the truth: a users row naming a role the login does not hold opens nothing more.
        if not db.conn.execute("SELECT pg_has_role(current_user, ?, 'MEMBER')", (prefix + row[0],)).fetchone()[0]:
            raise PermissionDenied(f"The server does not give {username} the {row[0]} role WardLens records for it. "
                                   "Ask an administrator to set the role again.")
        idle = idle_minutes if idle_minutes is not None else DEFAULT_IDLE_MINUTES
        session = Session(User(username, Role(row[0]), row[1], True), db, Path(address.label), idle)
        session.set_identity(IdentityCodec(None, False))
        session.log("login", "session", "", "server")
    except BaseException:
        db.close()
        raise
    return session
