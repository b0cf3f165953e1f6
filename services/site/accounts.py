"""Creating stores, unlocking them, and managing user accounts.

A random data key encrypts the store; each user's password wraps a copy of it in the key file, and a
recovery key shown once at creation wraps another. Roles live inside the encrypted store, so they
cannot be changed without the key.
"""
from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from models.domain import Permission, Role, User
from services.core.files import check_new_store_path
from services.site import anchors, keyrings
from services.site.keyrings import RoleNotSigned, Sealer, anchor_problems, establish_trust, open_ring, wrap_ring  # noqa: F401
from services.store import audit, integrity, signing
from services.store.identity import IdentityCodec, IdentityKey, new_identity_key
from services.store.keyring import Keyring
from services.store.signing import Trust
from services.store.database import Database, DatabaseError, is_plain_sqlite
from services.core.errors import (PasswordChangeRequired, KeyFileError, NotEncrypted, PermissionDenied, StoreDamaged, StoreNotFound,
                             ValidationError, WardLensError, WrongPassword)
from services.store.keyfile import RECOVERY_PREFIX, KdfParams, KeyFile, key_file_path, new_data_key, new_recovery_key, \
    normalise_recovery_key
from services.store.migrations import MigrationFailed, migrate, pending
from services.store.snapshot import exclusive_copy, write_verified_copy
from services.site import passwords, settings
from services.site.session import Session

USERNAME_RE = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")
MIN_PASSWORD = passwords.MIN_LENGTH
RECOVERY_USER = "recovery"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _user_entry(username: str) -> str:
    return f"user:{username}"


def new_one_time_password() -> str:
    """15 random characters in three groups, easy to read out; replaced by the user at their first login."""
    import secrets
    return "-".join(secrets.token_urlsafe(6)[:5] for _ in range(3))


def validate_new_account(username: str, password: str, display_name: str = "") -> None:
    problems = {}
    if not USERNAME_RE.match(username or ""):
        problems["username"] = "2–32 characters: lower-case letters, digits, '.', '_' or '-', starting with a letter"
    if username == RECOVERY_USER:
        problems["username"] = "'recovery' is reserved"
    verdict = passwords.strength(password, (username, display_name))
    if not verdict.acceptable:
        problems["password"] = verdict.problem
    if problems:
        raise ValidationError(problems)


def validate_password_change(user: User, old_password: str, new_password: str) -> None:
    """A person's own new password, on either store: as strong as a new account's and not the current one."""
    validate_new_account(user.username, new_password, user.display_name)
    if new_password == old_password:
        raise ValidationError({"password": "the new password must differ from the current one"})


@dataclass
class CreatedStore:
    path: Path
    recovery_key: str  # shown once; never stored


def create_store(path: Path | str, admin_username: str, admin_password: str, kdf: KdfParams | None = None,
                 display_name: str = "Administrator") -> CreatedStore:
    path = Path(path)
    validate_new_account(admin_username, admin_password)
    check_new_store_path(path)
    kpath = key_file_path(path)
    if path.exists() or kpath.exists():
        raise WardLensError(f"{path} already exists; WardLens will not overwrite a store.")
    kdf = kdf or KdfParams.calibrated()
    store_id = str(uuid.uuid4())
    data_key = new_data_key()
    recovery = new_recovery_key()
    keys = KeyFile.create(kpath, store_id)
    admin_key = signing.new_key()
    admin_pub = signing.public_raw(admin_key)
    ring = Keyring(bytearray(data_key), signing.new_key(), admin_key, admin_pub)
    rescue = Keyring(bytearray(data_key), admin_key, admin_key, admin_pub)  # the recovery key signs as administrator
    ring.ensure_user_key()
    rescue.ensure_user_key()
    ident = new_identity_key()   # names and numbers are sealed under it from the first patient (services.store.identity)
    ring.set_identity(ident, 1)
    rescue.set_identity(ident, 1)
    check = IdentityKey(ident, 1).check()
    for i in range(len(ident)):
        ident[i] = 0
    wrap_ring(keys, _user_entry(admin_username), admin_password.encode("utf-8"), ring, kdf)
    wrap_ring(keys, RECOVERY_PREFIX, normalise_recovery_key(recovery), rescue, kdf)
    exclusive_copy(None, path.absolute().parent, path.name, exact=True)  # the store file is 0600 from its first byte
    db = Database(path, data_key)
    db.set_trust(Trust(store_id, admin_pub, admin_username, ring.user_sign, admin_key))
    try:
        migrate(db.conn)
        with db.transaction() as c:
            c.execute("INSERT INTO meta(key, value) VALUES ('store_id', ?), ('created_at', ?), ('admin_pub', ?), "
                      "('identity', ?)", (store_id, _now(), signing.b64(admin_pub), f"1 {check}"))
            keyrings.register_recovery_box(c, db.trust, rescue)
            c.execute("INSERT INTO users(username, role, display_name, active, created_at, sign_pub, box_pub) "
                      "VALUES (?,?,?,1,?,?,?)", (admin_username, Role.ADMIN.value, display_name, _now(), ring.user_pub,
                                                 ring.box_pub))
            integrity.sign_user(c, db.trust, admin_username)
            integrity.mark_signed_from(c, db.trust)
            audit.append(c, admin_username, "store_created", "store", store_id)
        keys.save()
    except BaseException:
        db.close()
        for p in (path, kpath, Path(str(path) + "-wal"), Path(str(path) + "-shm")):
            p.unlink(missing_ok=True)
        raise
    finally:
        for i in range(len(data_key)):
            data_key[i] = 0
        ring.wipe()
        rescue.wipe()
    db.close()
    return CreatedStore(path, recovery)


def _open_with_key(path: Path, keys: KeyFile, data_key: bytearray) -> Database:
    try:
        db = Database.open_existing(path, data_key)
    finally:
        for i in range(len(data_key)):
            data_key[i] = 0
    try:
        # Every page is read (so every page HMAC is checked) and the b-trees walked before anything is
        # shown or migrated: a damaged store is refused here with one clear message instead of failing
        # later in whichever view touches the bad page. ~0.4 s at 100,000 encounters (docs/performance.md).
        if db.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
            db.close()  # an emptied (truncated to nothing) file must not be "migrated" into a blank store
            raise StoreDamaged(f"The store {path.name} is empty: its content was lost. Restore the last verified backup.")
        problems = [r[0] for r in db.conn.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            db.close()
            damaged = StoreDamaged(f"The store {path.name} is damaged: its integrity check failed. "
                                   "Restore the last verified backup.")
            damaged.detail = "\n".join(problems)  # for the log and for support, not for the message
            raise damaged
        _upgrade(path, db)
        row = db.conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()
    except DatabaseError as exc:
        db.close()
        raise StoreDamaged(f"The store {path.name} is damaged ({exc}). Restore the last verified backup.") from exc
    if not row or row[0] != keys.store_id:
        db.close()
        raise KeyFileError(f"The key file beside {path.name} belongs to another store.")
    return db


def pre_upgrade_copy_path(path: Path, version: int) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return path.with_name(f"{path.name}.before-v{version}-{stamp}.db")


def _upgrade(path: Path, db: Database) -> None:
    """Bring a store made by an earlier WardLens to this schema: first a verified copy of it beside the store
    (with its key file), then every pending migration in one transaction. A failed upgrade leaves the store as
    it was and names the copy."""
    todo = pending(db.conn)
    if not todo:
        return
    copy = pre_upgrade_copy_path(path, todo[-1])
    key = db.key_copy()
    try:
        write_verified_copy(db.conn, key, key_file_path(path), copy, expect_version=None)
    finally:
        for i in range(len(key)):
            key[i] = 0
    try:
        migrate(db.conn)
    except MigrationFailed as exc:
        db.close()
        raise MigrationFailed(f"{exc} A verified copy taken before the upgrade is at {copy}.") from exc


def _check_store_file(path: Path) -> None:
    if not path.exists():
        raise StoreNotFound(f"No store at {path}.")
    if is_plain_sqlite(path):
        raise NotEncrypted(path)


def unlock(path: Path | str, username: str, password: str, idle_minutes: float | None = None,
           new_password: str | None = None) -> Session:
    """Log in: a wrong password and a damaged store raise different errors; failures are throttled. An account with a
    one-time password logs in only with `new_password`, which replaces it (PasswordChangeRequired otherwise)."""
    if new_password is not None:
        validate_new_account((username or "x").strip().lower() or "x", new_password)   # before any work
        if new_password == password:
            raise ValidationError({"password": "the new password must differ from the one-time password"})
    path = Path(path)
    _check_store_file(path)
    keys = KeyFile.load(key_file_path(path))
    username = (username or "").strip().lower()
    keys.check_throttle(username)
    entry = _user_entry(username)
    try:
        ring, kek = open_ring(keys, entry, password.encode("utf-8"))
    except WrongPassword:
        keys.record_failure(username, "wrong password")
        raise
    adopted = keyrings.adopt_grant(path, keys, entry, ring)   # a rotation's new key, sealed to this user
    db = _open_with_key(path, keys, bytearray(ring.data_key))
    try:
        row = db.conn.execute("SELECT role, display_name, active, sign_pub, role_sig, must_change FROM users "
                              "WHERE username = ?", (username,)).fetchone()
        if row is None or type(row[2]) is not int or row[2] != 1:
            keys.record_failure(username, "account disabled or removed")  # audited at the next login, signed there
            raise WrongPassword()
        warnings, codec = establish_trust(db, keys, entry, ring, kek, username, Role(row[0]), row[2], row[3], row[4],
                                          adopted)
        if row[5] and new_password is None:
            raise PasswordChangeRequired()
    except BaseException:
        db.close()
        ring.wipe()
        for i in range(len(kek)):
            kek[i] = 0
        raise
    user = User(username, Role(row[0]), row[1], True)
    session = _start(db, keys, user, path, idle_minutes, Sealer(keys.path, entry, kek, ring, keys.store_id, username),
                     warnings, codec)
    if new_password is not None:
        try:
            AccountService(session).change_password(password, new_password)
        except BaseException:
            session.lock(reason="password change failed")
            raise
    return session


def _start(db: Database, keys: KeyFile, user: User, path: Path, idle_minutes: float | None, sealer: Sealer,
           warnings: list[str], codec: IdentityCodec, detail: str = "") -> Session:
    _flush_pending(db, keys.record_success(user.username))
    session = Session(user, db, path, idle_minutes if idle_minutes is not None else _idle_setting(db))
    session.set_identity(codec)
    session.warnings = warnings
    session.on_lock = sealer
    session.log("login", "session", "", detail)
    for w in warnings:
        session.log("integrity_warning", "store", "", w[:300])
    try:
        sealer.seal(db.conn)  # the login itself is the newest row this user has seen
    except OSError:
        pass  # e.g. a full disk: the previous anchor stays, still true
    return session


def unlock_with_recovery(path: Path | str, recovery_key: str) -> Session:
    """Emergency access with the recovery key: an admin session under the name 'recovery'."""
    path = Path(path)
    _check_store_file(path)
    keys = KeyFile.load(key_file_path(path))
    keys.check_throttle(RECOVERY_USER)
    try:
        ring, kek = open_ring(keys, RECOVERY_PREFIX, normalise_recovery_key(recovery_key))
    except WrongPassword:
        keys.record_failure(RECOVERY_USER, "wrong recovery key")
        raise WrongPassword() from None
    if keyrings.adopt_grant(path, keys, RECOVERY_PREFIX, ring):
        keyrings.reseal(keys, RECOVERY_PREFIX, kek, ring)
    db = _open_with_key(path, keys, bytearray(ring.data_key))
    warnings = []
    if ring.admin_sign is None:   # a recovery key from before signatures: it can open, not sign (regenerate it)
        warnings.append("This recovery key predates signatures: entries made with it are unsigned and it cannot "
                        "sign changes. Generate a new recovery key.")
    trust = Trust(keys.store_id, ring.admin_pub, RECOVERY_USER, ring.admin_sign, ring.admin_sign)
    db.set_trust(trust)
    warnings += anchor_problems(db.conn, ring, trust, RECOVERY_USER, path)
    codec, changed, more = keyrings.settle_identity(db, keys, RECOVERY_PREFIX, ring, Role.ADMIN, trust)
    if changed:
        keyrings.reseal(keys, RECOVERY_PREFIX, kek, ring)
    return _start(db, keys, User(RECOVERY_USER, Role.ADMIN, "Recovery key"), path, None,
                  Sealer(keys.path, RECOVERY_PREFIX, kek, ring, keys.store_id, RECOVERY_USER), warnings + more, codec,
                  "recovery key")


def _flush_pending(db: Database, pending: list[dict]) -> None:
    if not pending:
        return
    with db.transaction() as c:
        for ev in pending:
            try:
                ts = dt.datetime.fromtimestamp(float(ev["ts"]), dt.timezone.utc).isoformat(timespec="microseconds")
                user, detail = str(ev["username"])[:64], f"{str(ev.get('reason', ''))[:80]} (attempt {ev.get('count', '?')})"
            except (KeyError, TypeError, ValueError, OverflowError, OSError):
                ts, user, detail = None, "?", "a failed-login record in the key file was malformed (altered?)"
            audit.append(c, user, "login_failed", "session", "", detail, ts=ts)


def _idle_setting(db: Database) -> float:
    return float(settings.stored_value(db.conn, "idle_lock_minutes"))


def demo_logins(path: Path | str) -> list[dict[str, str]]:
    """The demo store's published logins (empty for a real store); readable before unlock by design."""
    try:
        return KeyFile.load(key_file_path(Path(path))).demo_logins
    except KeyFileError:
        return []


class AccountService:
    """User management inside an unlocked session (admin only)."""

    def __init__(self, session: Session, kdf: KdfParams | None = None) -> None:
        self.session = session
        self.kdf = kdf

    def _keys(self) -> KeyFile:
        return KeyFile.load(key_file_path(self.session.store_path))

    def list_users(self) -> list[User]:
        self.session.require(Permission.MANAGE_USERS, "manage users")
        rows = self.session.db.conn.execute("SELECT username, role, display_name, active FROM users ORDER BY username")
        return [User(u, Role(r), d, bool(a)) for u, r, d, a in rows]

    def people(self) -> list[dict]:
        """Every account with what an administrator needs to see: role, status, must change password, locked out,
        whether its signatures verify."""
        self.session.require(Permission.MANAGE_USERS, "manage users")
        trust, keys = self.session.db.trust, self._keys()
        out = []
        for u, role, name, active, must, sig in self.session.db.conn.execute(
                "SELECT username, role, display_name, active, must_change, role_sig FROM users ORDER BY username"):
            try:   # the key file is anyone's to write: a record altered into nonsense counts as none shown
                failed = int(keys.data["failures"].get(u, {}).get("count", 0) or 0)
            except (TypeError, ValueError, AttributeError, OverflowError):
                failed = -1
            out.append({"username": u, "role": role, "display_name": name, "active": active == 1,
                        "must_change_password": bool(must), "failed_logins": failed,
                        "signed": trust is None or trust.admin_pub is None or
                        integrity.role_is_signed(trust, u, role, active, sig)})
        return out

    def add_user(self, username: str, password: str, role: Role, display_name: str = "",
                 must_change: bool = False) -> User:
        self.session.require(Permission.MANAGE_USERS, "manage users")
        username = username.strip().lower()
        validate_new_account(username, password, display_name)
        keys = self._keys()
        if self._row(username) is not None:
            raise ValidationError({"username": "already exists"})
        # An entry without an account is what a failed commit after the key file was saved leaves: it opens nothing
        # that exists, and the new entry replaces it.

        def insert(c, ring: Keyring) -> None:
            c.execute("INSERT INTO users(username, role, display_name, active, created_at, sign_pub, box_pub, must_change) "
                      "VALUES (?,?,?,1,?,?,?,?)", (username, role.value, display_name, _now(), ring.user_pub, ring.box_pub,
                                                   int(must_change)))
        self._issue(keys, username, password, role, insert, "user_added")
        return User(username, role, display_name, True)

    def _row(self, username: str):
        return self.session.db.conn.execute("SELECT role, active FROM users WHERE username = ?", (username,)).fetchone()

    def _issue(self, keys: KeyFile, username: str, password: str, role: Role, write, action: str) -> None:
        """A new keyring for an account (new signing and box keys; the administrator key for administrators), wrapped
        under `password`; `write(c, ring)` makes the account change in the same transaction, which signs it and
        audits `action` last (the audit row seals the signed state)."""
        trust = self._admin_trust()
        ring = Keyring(self.session.db.key_copy(), signing.new_key(), trust.admin_key if role is Role.ADMIN else None,
                       trust.admin_pub, anchors.head(self.session.db.conn))
        ring.ensure_user_key()
        ident = self.session.codec.key
        if role in keyrings.CARE_ROLES and ident is not None:   # never an analyst's
            ring.set_identity(ident.raw, ident.epoch)
        try:
            kek = wrap_ring(keys, _user_entry(username), password.encode("utf-8"), ring, self.kdf or KdfParams.calibrated())
            for i in range(len(kek)):
                kek[i] = 0
            with self.session.db.transaction() as c:
                write(c, ring)
                integrity.sign_user(c, trust, username)
                audit.append(c, self.session.user.username, action, "user", username, role.value)
                keys.save()   # inside the transaction: a key file that cannot be written (disk full) rolls it back
        finally:
            ring.wipe()

    def _one_time(self, username: str, password: str, role: Role, action: str, active: bool) -> None:
        """Give an existing account new keys and a one-time password it must change at its next login."""
        validate_new_account(username, password)
        keys = self._keys()

        def update(c, ring: Keyring) -> None:
            integrity.retire_key(c, self.session.db.trust, username)   # old entries keep verifying, new ones cannot
            c.execute("UPDATE users SET role = ?, active = ?, sign_pub = ?, box_pub = ?, must_change = 1 WHERE "
                      "username = ?", (role.value, int(active), ring.user_pub, ring.box_pub, username))
        keys.data["failures"].pop(username, None)
        keys.data.get("grants", {}).pop(_user_entry(username), None)   # sealed to the old box key: never taken now
        keys.data.get("identity_grants", {}).pop(_user_entry(username), None)
        self._issue(keys, username, password, role, update, action)   # saves the key file with the account

    def reset_password(self, username: str, one_time_password: str) -> None:
        """For a user who forgot their password: new keys under a one-time password, changed at their next login."""
        self.session.require(Permission.MANAGE_USERS, "manage users")
        if username == self.session.user.username:
            raise ValidationError({"username": "change your own password instead (users passwd); a reset of your own "
                                               "account would end this session's keys"})
        row = self._existing(username)
        if not row[1]:
            raise ValidationError({"username": "the account is deactivated; reactivate it"})
        self._one_time(username, one_time_password, Role(row[0]), "password_reset", True)

    def reactivate_user(self, username: str, one_time_password: str) -> None:
        """A deactivated account back, with a one-time password (its old key-file entry was removed at deactivation)."""
        self.session.require(Permission.MANAGE_USERS, "manage users")
        row = self._existing(username)
        if row[1]:
            raise ValidationError({"username": "the account is active"})
        self._one_time(username, one_time_password, Role(row[0]), "user_reactivated", True)

    def set_role(self, username: str, role: Role, one_time_password: str | None = None) -> bool:
        """Change a role (signed). Making someone an administrator gives them the administrator key, which only a new
        keyring can carry: it needs a one-time password. An administrator is not demoted: their old keyring keeps the
        administrator key (deactivate the account and rotate keys instead; docs/security.md)."""
        self.session.require(Permission.MANAGE_USERS, "manage users")
        row = self._existing(username)
        old = Role(row[0])
        if old is role:
            return False
        if not row[1]:
            raise ValidationError({"username": "the account is deactivated; reactivate it first"})
        if old is Role.ADMIN:
            raise ValidationError({"role": "an administrator cannot be demoted: their keyring holds the administrator "
                                           "key. Deactivate the account, rotate keys, and add a new account"})
        if role is Role.ADMIN:
            if not one_time_password:
                raise ValidationError({"password": "making someone an administrator needs a one-time password"})
            self._one_time(username, one_time_password, role, "role_changed", True)
            return True
        trust = self._admin_trust()
        keys = self._keys()
        note = ""
        if role in keyrings.CARE_ROLES and old not in keyrings.CARE_ROLES:
            note = self._grant_identity(keys, trust, username)
        elif old in keyrings.CARE_ROLES and role not in keyrings.CARE_ROLES:
            keys.data.get("identity_grants", {}).pop(_user_entry(username), None)
            note = "; the identity key leaves their keyring at their next login (rotate keys to be certain)"
        with self.session.db.transaction() as c:
            c.execute("UPDATE users SET role = ? WHERE username = ?", (role.value, username))
            integrity.sign_user(c, trust, username)
            audit.append(c, self.session.user.username, "role_changed", "user", username,
                         f"{old.value} -> {role.value}{note}")
            keys.save()   # with the account change: a grant that cannot be written rolls the change back
        return True

    def _grant_identity(self, keys: KeyFile, trust: Trust, username: str) -> str:
        """Seal this session's identity key to a care account's countersigned box key (the caller saves the file)."""
        ident = self.session.codec.key
        pub = integrity.box_key(self.session.db.conn, trust, username)
        if ident is None or pub is None:
            return "; no identity key given yet (countersign the account once they have logged in)"
        keyrings.grant_identity(keys, trust, _user_entry(username), pub, ident.raw, ident.epoch)
        return "; identity key granted"

    def countersign(self, username: str) -> str:
        """Countersign the signing key an account registered at its first login after an upgrade (confirm with the
        user first that they have logged in since: the key could also have been written into the file). Returns the
        key's fingerprint."""
        self.session.require(Permission.MANAGE_USERS, "manage users")
        self._existing(username)
        trust = self._admin_trust()
        keys = self._keys()
        with self.session.db.transaction() as c:
            pub, role = c.execute("SELECT sign_pub, role FROM users WHERE username = ?", (username,)).fetchone()
            if not pub:
                raise ValidationError({"username": f"{username} has not logged in since the upgrade: no key to countersign"})
            # the grant follows the role an administrator signed (and last signed), never the column as found; the
            # countersignature covers the keys only, so a role altered in the file is not signed along with them
            care = keyrings.has_current_care_role(c, trust, username)
            integrity.sign_user_key(c, trust, username)
            fingerprint = signing.fingerprint(pub)
            note = self._grant_identity(keys, trust, username) if care else ""
            audit.append(c, self.session.user.username, "key_countersigned", "user", username, fingerprint + note)
            keys.save()
        return fingerprint

    def regenerate_recovery_key(self) -> str:
        """A new recovery key (shown once by the caller); the old one stops working. The new recovery keyring holds
        the administrator key and a box key, so it can sign and is reached by rotations (an upgraded store's old
        recovery key could do neither)."""
        self.session.require(Permission.MANAGE_USERS, "manage users")
        trust = self._admin_trust()
        recovery = new_recovery_key()
        rescue = Keyring(self.session.db.key_copy(), trust.admin_key, trust.admin_key, trust.admin_pub,
                         anchors.head(self.session.db.conn))
        rescue.ensure_user_key()
        if self.session.codec.key is not None:
            rescue.set_identity(self.session.codec.key.raw, self.session.codec.key.epoch)
        keys = self._keys()
        try:
            kek = wrap_ring(keys, RECOVERY_PREFIX, normalise_recovery_key(recovery), rescue,
                            self.kdf or KdfParams.calibrated())
            for i in range(len(kek)):
                kek[i] = 0
            keys.data.get("grants", {}).pop(RECOVERY_PREFIX, None)
            keys.data.get("identity_grants", {}).pop(RECOVERY_PREFIX, None)
            with self.session.db.transaction() as c:
                keyrings.register_recovery_box(c, trust, rescue)
                audit.append(c, self.session.user.username, "recovery_key_regenerated", "store", keys.store_id)
        finally:
            rescue.wipe()
        keys.save()
        return recovery

    def unlock_account(self, username: str) -> None:
        """Clear a locked-out account's failed-login count (audited)."""
        self.session.require(Permission.MANAGE_USERS, "manage users")
        self._existing(username)
        keys = self._keys()
        keys.data["failures"].pop(username, None)
        keys.save()
        self.session.log("account_unlocked", "user", username)

    def _existing(self, username: str):
        row = self._row(username)
        if row is None:
            raise ValidationError({"username": f"no user {username!r}"})
        return row

    def _admin_trust(self) -> Trust:
        trust = self.session.db.trust
        if trust is None or trust.admin_key is None:
            raise PermissionDenied("This session cannot sign account changes (a recovery key from before signatures); "
                                   "log in as an administrator.")
        return trust

    def deactivate_user(self, username: str) -> None:
        self.session.require(Permission.MANAGE_USERS, "manage users")
        if username == self.session.user.username:
            raise ValidationError({"username": "you cannot deactivate your own account"})
        keys = self._keys()
        trust = self._admin_trust()
        with self.session.db.transaction() as c:
            if c.execute("UPDATE users SET active = 0 WHERE username = ?", (username,)).rowcount == 0:
                raise ValidationError({"username": "no such user"})
            integrity.sign_user(c, trust, username)
            audit.append(c, self.session.user.username, "user_deactivated", "user", username)
        keys.remove(_user_entry(username))  # their wrapped key goes too: the password no longer opens anything
        keys.data.get("grants", {}).pop(_user_entry(username), None)   # and a grant from a rotation not yet taken
        keys.data.get("identity_grants", {}).pop(_user_entry(username), None)
        keys.save()

    def change_password(self, old_password: str, new_password: str) -> None:
        """Any user, for their own account: re-wrap the data key under the new password."""
        s = self.session
        s.ensure_open()
        validate_password_change(s.user, old_password, new_password)
        keys = self._keys()
        entry = _user_entry(s.user.username)
        ring, old_kek = open_ring(keys, entry, old_password.encode("utf-8"))  # WrongPassword if the old one is wrong
        for i in range(len(old_kek)):
            old_kek[i] = 0
        try:
            kek = wrap_ring(keys, entry, new_password.encode("utf-8"), ring, self.kdf or KdfParams.calibrated())
        finally:
            ring.wipe()
        keys.save()
        sealer = getattr(s, "on_lock", None)
        if isinstance(sealer, Sealer):   # the session re-seals under the new password from now on
            sealer.kek[:] = kek
            sealer.salt = keys.data["entries"][entry]["salt"]
        for i in range(len(kek)):
            kek[i] = 0
        with s.db.transaction() as c:
            c.execute("UPDATE users SET must_change = 0 WHERE username = ?", (s.user.username,))
            audit.append(c, s.user.username, "password_changed", "user", s.user.username)


def require_admin(session: Session) -> None:
    if not session.can(Permission.MANAGE_USERS):
        raise PermissionDenied("Only an administrator may do this.")
