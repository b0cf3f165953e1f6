"""Logging in to a server store, and the logins of the people who use it.

On the server a person's WardLens user name and password ARE their PostgreSQL login: the server checks the password
(SCRAM) and enforces their role's privileges (services.store.server_schema), whatever program they connect with.
Identifying fields are plain columns there, kept from analysts by column privileges and at rest by the server's disk
encryption (docs/security.md), instead of the desk store's identity key.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from models.domain import Permission, Role, User
from services.core.errors import PermissionDenied, ValidationError, WrongPassword
from services.site.accounts import validate_new_account
from services.store import audit
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


class ServerAccounts:
    """An administrator's management of people on the server: a users row and the person's own login, one transaction
    (CREATE ROLE is transactional in PostgreSQL), through the set-up's user-management functions."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def _verifier(self, username: str, password: str) -> str:
        return self.s.db.conn.raw.pgconn.encrypt_password(password.encode("utf-8"), username.encode("utf-8"),
                                                           b"scram-sha-256").decode()

    def add_user(self, username: str, password: str, role: Role, display_name: str = "") -> None:
        self.s.require(Permission.MANAGE_USERS, "manage users")
        username = (username or "").strip().lower()
        validate_new_account(username, password, display_name)
        verifier = self._verifier(username, password)
        with self.s.db.transaction() as c:
            if c.execute("SELECT 1 FROM pg_roles WHERE rolname = ?", (username,)).fetchone():
                raise ValidationError({"username": f"the server already has a login called {username}"})
            c.execute("INSERT INTO users (username, role, display_name, created_at) VALUES (?,?,?,?)",
                      (username, Role(role).value, display_name or username, _now()))
            c.execute("SELECT create_login(?, ?, ?)", (username, verifier, Role(role).value))
            audit.append(c, self.s.user.username, "user_add", "user", username, Role(role).value)

    def set_role(self, username: str, role: Role) -> None:
        self.s.require(Permission.MANAGE_USERS, "manage users")
        with self.s.db.transaction() as c:
            c.execute("UPDATE users SET role = ? WHERE username = ?", (Role(role).value, username))
            c.execute("SELECT set_login_group(?, ?)", (username, Role(role).value))
            audit.append(c, self.s.user.username, "user_role", "user", username, Role(role).value)

    def deactivate_user(self, username: str) -> None:
        self.s.require(Permission.MANAGE_USERS, "manage users")
        with self.s.db.transaction() as c:
            c.execute("UPDATE users SET active = 0 WHERE username = ?", (username,))
            c.execute("SELECT disable_login(?)", (username,))
            audit.append(c, self.s.user.username, "user_deactivate", "user", username)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
