"""Logging in to a server store, and the logins of the people who use it.

On the server a person's WardLens user name and password ARE their PostgreSQL login: the server checks the password
(SCRAM) and enforces their role's privileges (services.store.server_schema), whatever program they connect with.
Identifying fields are plain columns there, kept from analysts by column privileges and at rest by the server's disk
encryption (docs/security.md), instead of the desk store's identity key. Passwords reach the server only as SCRAM
verifiers computed on the desk (libpq's PQencryptPasswordConn), so no server log can hold one.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path


from models.domain import Permission, Role, User
from services.core.errors import (PasswordChangeRequired, PermissionDenied, StoreDamaged, ValidationError,
                                 WrongPassword)
from services.site.accounts import validate_new_account, validate_password_change
from services.site.session import DEFAULT_IDLE_MINUTES, Session
from services.store import audit, server_keys
from services.store.identity import IdentityCodec
from services.store.server import ServerAddress, ServerDatabase
from services.store.server_schema import SERVER_VERSION


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def unlock_server(url: str, username: str, password: str, idle_minutes: float | None = None,
                  new_password: str | None = None) -> Session:
    """Log in with one's own PostgreSQL login. An account with a one-time password set by an administrator logs in
    only with `new_password`, which replaces it (PasswordChangeRequired otherwise)."""
    address = ServerAddress.parse(url)
    username = (username or address.user or "").strip().lower()
    if new_password is not None:
        validate_new_account(username or "x", new_password)
        if new_password == password:
            raise ValidationError({"password": "the new password must differ from the one-time password"})
    db = ServerDatabase.login(address, username, password)
    try:
        row = db.conn.execute("SELECT role, display_name, active, must_change FROM users WHERE username = ?",
                              (username,)).fetchone()
        if row is None or row[2] != 1:
            raise WrongPassword()
        version = db.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version is None or int(version[0]) != SERVER_VERSION:
            # a login cannot change the schema (no login holds the owner role): an upgrade is the DBA's step
            raise StoreDamaged(f"The server store is at schema version {version[0] if version else '?'}, this WardLens "
                               f"works with {SERVER_VERSION}. Ask the hospital's DBA to run upgrade-store (or to "
                               "update this desk's WardLens) so that both agree.")
        prefix = db.conn.execute("SELECT value FROM meta WHERE key = 'role_prefix'").fetchone()[0]
        # The server's grant is the truth: a users row naming a role the login does not hold opens nothing more.
        if not db.conn.execute("SELECT pg_has_role(current_user, ?, 'MEMBER')", (prefix + row[0],)).fetchone()[0]:
            raise PermissionDenied(f"The server does not give {username} the {row[0]} role WardLens records for it. "
                                   "Ask an administrator to set the role again.")
        if row[3] and new_password is None:
            raise PasswordChangeRequired()
        idle = idle_minutes if idle_minutes is not None else _idle_setting(db)
        db.set_trust(server_keys.session_trust(db, username, password))   # signs this person's audit rows
        session = Session(User(username, Role(row[0]), row[1], True), db, Path(address.label), idle)
        session.set_identity(IdentityCodec(None, False))
        session.log("login", "session", "", "server")
    except BaseException:
        db.close()
        raise
    if new_password is not None:
        try:
            ServerAccounts(session).change_password(password, new_password)
        except BaseException:
            session.lock(reason="password change failed")
            raise
    return session


def _idle_setting(db: ServerDatabase) -> float:
    row = db.conn.execute("SELECT value FROM settings WHERE key = 'idle_lock_minutes'").fetchone()
    try:
        return float(row[0]) if row else DEFAULT_IDLE_MINUTES
    except ValueError:
        return DEFAULT_IDLE_MINUTES


class ServerAccounts:
    """An administrator's management of people on the server, with the desk store's AccountService interface: a users
    row and the person's own login change in one transaction (CREATE ROLE is transactional in PostgreSQL), through the
    set-up's user-management functions (an administrator's login holds no CREATEROLE itself)."""

    def __init__(self, session: Session) -> None:
        self.s = session

    def _verifier(self, username: str, password: str) -> str:
        return self.s.db.conn.raw.pgconn.encrypt_password(password.encode("utf-8"), username.encode("utf-8"),
                                                           b"scram-sha-256").decode()

    def _admin(self) -> None:
        self.s.require(Permission.MANAGE_USERS, "manage users")

    def list_users(self) -> list[User]:
        self._admin()
        rows = self.s.db.conn.execute("SELECT username, role, display_name, active FROM users ORDER BY username")
        return [User(u, Role(r), d, bool(a)) for u, r, d, a in rows]

    def people(self) -> list[dict]:
        """As AccountService.people. The server keeps no failed-login count WardLens can read (PostgreSQL logs them;
        docs/security.md), and roles are the server's grants rather than signatures: both shown as such."""
        self._admin()
        return [{"username": u, "role": r, "display_name": d, "active": a == 1, "must_change_password": bool(m),
                 "failed_logins": 0, "signed": True}
                for u, r, d, a, m in self.s.db.conn.execute(
                    "SELECT username, role, display_name, active, must_change FROM users ORDER BY username")]

    def add_user(self, username: str, password: str, role: Role, display_name: str = "",
                 must_change: bool = False) -> User:
        self._admin()
        username = (username or "").strip().lower()
        validate_new_account(username, password, display_name)
        verifier = self._verifier(username, password)
        with self.s.db.transaction() as c:
            if c.execute("SELECT 1 FROM pg_roles WHERE rolname = ?", (username,)).fetchone():
                raise ValidationError({"username": f"the server already has a login called {username}"})
            c.execute("INSERT INTO users (username, role, display_name, created_at, must_change) VALUES (?,?,?,?,?)",
                      (username, Role(role).value, display_name or username, _now(), int(must_change)))
            c.execute("SELECT create_login(?, ?, ?, ?)", (username, verifier, Role(role).value, bool(must_change)))
            audit.append(c, self.s.user.username, "user_add", "user", username, Role(role).value)
        return User(username, Role(role), display_name or username, True)

    def _existing(self, c, username: str) -> tuple:
        row = c.execute("SELECT role, active FROM users WHERE username = ?", (username,)).fetchone()
        if row is None:
            raise ValidationError({"username": f"no user {username}"})
        return row

    def set_role(self, username: str, role: Role, one_time_password: str | None = None) -> bool:
        """The users row and the server's grant change together; False when the person already has the role."""
        self._admin()
        role = Role(role)
        if username == self.s.user.username and role is not Role.ADMIN:
            raise ValidationError({"role": "administrators cannot take their own administrator role away"})
        with self.s.db.transaction() as c:
            if self._existing(c, username)[0] == role.value:
                return False
            c.execute("UPDATE users SET role = ? WHERE username = ?", (role.value, username))
            c.execute("SELECT set_login_group(?, ?)", (username, role.value))
            if one_time_password:
                c.execute("SELECT set_login_password(?, ?)", (username, self._verifier(username, one_time_password)))
                c.execute("UPDATE users SET must_change = 1 WHERE username = ?", (username,))
            audit.append(c, self.s.user.username, "user_role", "user", username, role.value)
        return True

    def _one_time(self, username: str, one_time_password: str, action: str, reactivate: bool) -> None:
        self._admin()
        validate_new_account(username, one_time_password)
        with self.s.db.transaction() as c:
            self._existing(c, username)
            c.execute("SELECT set_login_password(?, ?)", (username, self._verifier(username, one_time_password)))
            if reactivate:
                c.execute("SELECT enable_login(?)", (username,))
            c.execute("UPDATE users SET must_change = 1" + (", active = 1" if reactivate else "") + " WHERE username = ?",
                      (username,))
            audit.append(c, self.s.user.username, action, "user", username)

    def reset_password(self, username: str, one_time_password: str) -> None:
        self._one_time(username, one_time_password, "password_reset", False)

    def reactivate_user(self, username: str, one_time_password: str) -> None:
        self._one_time(username, one_time_password, "user_reactivate", True)

    def deactivate_user(self, username: str) -> None:
        self._admin()
        if username == self.s.user.username:
            raise ValidationError({"username": "administrators cannot deactivate their own account"})
        with self.s.db.transaction() as c:
            self._existing(c, username)
            c.execute("UPDATE users SET active = 0 WHERE username = ?", (username,))
            c.execute("SELECT disable_login(?)", (username,))   # NOLOGIN: psql is refused too, not only WardLens
            audit.append(c, self.s.user.username, "user_deactivate", "user", username)

    def unlock_account(self, username: str) -> None:
        raise ValidationError({"username": "the server store keeps no lock-out of its own: repeated failed logins are "
                                           "the server's to limit (docs/security.md)"})

    def countersign(self, username: str) -> str:
        raise ValidationError({"username": "on the server store a role is the server's grant, not a signed key"})

    def regenerate_recovery_key(self) -> str:
        raise ValidationError({"recovery": "a server store has no recovery key: the DBA restores access (README)"})

    def change_password(self, old_password: str, new_password: str) -> None:
        """Any user, for their own login: the old password is checked by logging in with it again."""
        s = self.s
        s.ensure_open()
        validate_password_change(s.user, old_password, new_password)
        ServerDatabase.login(s.db.address, s.user.username, old_password).close()   # WrongPassword if not
        verifier = self._verifier(s.user.username, new_password)
        with s.db.transaction() as c:
            c.execute("SELECT set_own_password(?)", (verifier,))   # and no longer a one-time password
            if s.db.trust is not None and s.db.trust.signer_key is not None:   # the signing key, under the new one
                server_keys.seal(c, s.db.trust.store_id, s.user.username, new_password, s.db.trust.signer_key)
            audit.append(c, s.user.username, "password_changed", "user", s.user.username)
        s.db.remember_password(new_password)
