"""Keyrings in use: opening a user's keyring, whom the session trusts and what it signs with, the anchors it re-seals
at lock, and the first administrator login that signs a store made before signatures (services.store.keyring,
services.store.signing). Kept apart from account management so each stays small."""
from __future__ import annotations

import urllib.parse
from pathlib import Path

from cryptography.exceptions import InvalidTag

from models.domain import Role
from services.core.errors import KeyFileError, WardLensError
from services.site import anchors
from services.store import audit, integrity, signing
from services.store import grants
from services.store.database import Database, DatabaseError, connect_raw
from services.store.keyfile import KdfParams, KeyFile
from services.store.keyring import Keyring
from services.store.signing import Trust

RECOVERY_BOX = "recovery-box"   # store_id, the recovery keyring's box key


def wrap_ring(keys: KeyFile, entry: str, secret: bytes, ring: Keyring, kdf: KdfParams) -> bytearray:
    payload = ring.payload()
    try:
        return keys.wrap(entry, secret, payload, kdf)
    finally:
        for i in range(len(payload)):
            payload[i] = 0


def open_ring(keys: KeyFile, entry: str, secret: bytes) -> tuple[Keyring, bytearray]:
    payload, kek = keys.open(entry, secret)
    try:
        return Keyring.from_payload(payload), kek
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"The key file entry for {entry!r} is damaged ({exc}).") from exc
    finally:
        for i in range(len(payload)):
            payload[i] = 0


class RoleNotSigned(WardLensError):
    """The account's role in the store carries no valid administrator signature."""


class Sealer:
    """Keeps what the session needs to re-seal the user's own keyring at lock (the new audit anchor) without
    asking for the password again; wiped at lock."""

    def __init__(self, keys_path: Path, entry: str, kek: bytearray, ring: Keyring, store_id: str, user: str) -> None:
        self.keys_path, self.entry, self.kek, self.ring = keys_path, entry, kek, ring
        self.store_id, self.user = store_id, user
        self.salt = self._salt(KeyFile.load(keys_path))

    def _salt(self, keys: KeyFile) -> str | None:
        e = keys.data["entries"].get(self.entry)
        return e.get("salt") if isinstance(e, dict) else None

    def seal(self, conn) -> None:
        ring = self.ring
        if anchors.compare(conn, ring.anchor, "you") is not None:
            return   # the row this user saw is gone or changed: keep the old anchor so the alarm stays raised
        ring.anchor = anchors.head(conn)
        keys = KeyFile.load(self.keys_path)
        # Gone when the account was deactivated meanwhile; re-wrapped (new salt) by a reset, a new recovery key or a
        # password change elsewhere: then this session's keyring and key are stale and must not overwrite it.
        if keys.has(self.entry) and self._salt(keys) == self.salt:
            payload = ring.payload()
            try:
                keys.seal(self.entry, self.kek, payload)
            finally:
                for i in range(len(payload)):
                    payload[i] = 0
            keys.save()
        anchors.remember(self.store_id, self.user, ring.user_sign, ring.anchor,
                         lambda kept: anchors.compare(conn, kept, self.user))

    def wipe(self) -> None:
        for i in range(len(self.kek)):
            self.kek[i] = 0
        self.ring.wipe()


def establish_trust(db: Database, keys: KeyFile, entry: str, ring: Keyring, kek: bytearray, username: str,
                    role: Role, active: int, sign_pub: str | None, role_sig: str | None, adopted: bool = False) -> list[str]:
    """Whom this session trusts (the administrator key in the user's own keyring) and what it signs with; refuses a
    role no administrator signed; upgrades a keyring or a store from before signatures. Returns warnings."""
    warnings: list[str] = []
    conn = db.conn
    meta = conn.execute("SELECT value FROM meta WHERE key = 'admin_pub'").fetchone()
    try:
        store_pub = signing.unb64(meta[0]) if meta else None
    except ValueError:
        store_pub = b""   # present but not a key: altered; never "unsigned"
    changed = ring.legacy or adopted
    if ring.admin_pub is None and store_pub is not None:
        ring.admin_pub, changed = store_pub, True  # first login after the upgrade: trust on first use (security.md)
    changed |= ring.ensure_user_key()
    trust = Trust(keys.store_id, ring.admin_pub, username, ring.user_sign, ring.admin_sign)
    db.set_trust(trust)
    if store_pub is None and ring.admin_pub is not None:
        # The keyring knows the administrator key, so the store was signed: its key was removed from the file, which
        # must not turn the checks off (or let an administrator's login re-sign the store "as found").
        store_pub = b""
    if store_pub is None:
        if role is Role.ADMIN:
            sign_store(db, ring, trust)
            changed = True
        else:
            warnings.append("This store's roles and settings are not protected by signatures yet: an administrator "
                            "must log in once with this version of WardLens.")
    else:
        if store_pub != ring.admin_pub:
            warnings.append("The store names a different administrator key from the one your account trusts: it was "
                            "altered outside WardLens. Ask an administrator to run verify.")
        key_sig = conn.execute("SELECT key_sig FROM users WHERE username = ?", (username,)).fetchone()[0]
        if not integrity.role_is_signed(trust, username, role.value, active, role_sig) or \
                not integrity.is_current(conn, trust, f"user:{username}", role_sig, key_sig):
            keys.record_failure(username, "role not signed by an administrator")
            raise RoleNotSigned("Your account's role in this store is not signed by an administrator: it was changed "
                                "outside WardLens. Nothing was opened; ask an administrator to run verify.")
    if sign_pub != ring.user_pub:
        if sign_pub is None or trust.admin_key is not None:
            with db.transaction() as c:
                c.execute("UPDATE users SET sign_pub = ?, box_pub = ?, key_sig = NULL WHERE username = ?",
                          (ring.user_pub, ring.box_pub, username))
                if trust.admin_key is not None:   # an administrator countersigns their own new key at once
                    integrity.sign_user(c, trust, username)
                    if trust.admin_pub is not None and c.execute("SELECT 1 FROM meta WHERE key = 'signed_state'").fetchone():
                        integrity.seal_state(c, trust)
        else:
            warnings.append("The store holds another signing key for your account than yours: it was altered "
                            "outside WardLens. Your entries are signed with your own key; ask an administrator to run "
                            "verify.")
    if trust.admin_pub is not None and store_pub is not None:
        problem = integrity.state_problem(conn, trust)
        if problem:
            warnings.append(f"This store's signed records were altered outside WardLens: {problem}. Ask an "
                            "administrator to run verify.")
    warnings += anchor_problems(conn, ring, trust, username, db.path)
    if changed:
        reseal(keys, entry, kek, ring)
    return warnings


def reseal(keys: KeyFile, entry: str, kek: bytearray, ring: Keyring) -> None:
    """Write the keyring back under the same password (and drop the grant it took, if any)."""
    payload = ring.payload()
    try:
        keys.seal(entry, kek, payload)
    finally:
        for i in range(len(payload)):
            payload[i] = 0
    keys.data.get("grants", {}).pop(entry, None)
    keys.save()


def _opens(path: Path, key: bytes | bytearray) -> bool:
    try:
        conn = connect_raw(f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro", key, uri=True)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return True
        finally:
            conn.close()
    except DatabaseError:
        return False


def adopt_grant(path: Path, keys: KeyFile, entry: str, ring: Keyring) -> bool:
    """Take the data key an administrator sealed to this keyring at a rotation, if the store now opens with it.
    A grant that is not signed by the administrator this user trusts, or whose key does not open the store (a
    rotation that did not complete), is ignored."""
    grant = keys.data.get("grants", {}).get(entry) if isinstance(keys.data.get("grants"), dict) else None
    if not grant or ring.box is None or ring.admin_pub is None:
        return False
    try:
        key = grants.open_grant(keys.store_id, ring.admin_pub, entry, grant, ring.box)
    except (ValueError, InvalidTag):
        return False
    try:
        if len(key) != len(ring.data_key) or not _opens(path, key):
            return False
        ring.data_key[:] = key
        return True
    finally:
        for i in range(len(key)):
            key[i] = 0


def register_recovery_box(conn, trust: Trust, rescue: Keyring) -> None:
    """The recovery keyring's box key, signed, so that a rotation can seal the new data key to it as well."""
    pub = rescue.box_pub
    conn.execute("INSERT INTO meta(key, value) VALUES ('recovery_box', ?) ON CONFLICT(key) DO UPDATE SET "
                 "value = excluded.value", (f"{pub} {trust.admin_sign(RECOVERY_BOX, pub)}",))


def recovery_box(conn, trust: Trust) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'recovery_box'").fetchone()
    if not row or not isinstance(row[0], str) or not integrity.is_current(conn, trust, "recovery_box", row[0]):
        return None
    pub, _, sig = row[0].partition(" ")
    return pub if trust.admin_signed(sig, RECOVERY_BOX, pub) else None


def anchor_problems(conn, ring: Keyring, trust: Trust, username: str, store_path: Path) -> list[str]:
    keys, pending = integrity.user_keys(conn, trust)
    found = [anchors.compare(conn, ring.anchor, "you")] if ring.anchor else []
    found += anchors.check_workstation(conn, trust.store_id, {**pending, **keys})
    found += anchors.check_backup_heads(conn, store_path, trust.store_id, {**pending, **keys})
    return [f"The store's audit log is not the one seen before: {p}." for p in found if p]


def sign_store(db: Database, ring: Keyring, trust: Trust) -> None:
    """The first administrator login after an upgrade: make the administrator key and sign every account, setting
    and model version as they stand (they are trusted as found: docs/security.md, 'upgrading')."""
    admin_key = signing.new_key()
    ring.admin_sign, ring.admin_pub = admin_key, signing.public_raw(admin_key)
    trust.admin_key, trust.admin_pub = admin_key, ring.admin_pub
    with db.transaction() as c:
        c.execute("INSERT INTO meta(key, value) VALUES ('admin_pub', ?)", (signing.b64(ring.admin_pub),))
        c.execute("UPDATE users SET sign_pub = ?, box_pub = ? WHERE username = ?",
                  (ring.user_pub, ring.box_pub, trust.signer))
        for (name,) in c.execute("SELECT username FROM users").fetchall():
            integrity.sign_user(c, trust, name)
        for key, value, at, by in c.execute("SELECT key, value, updated_at, updated_by FROM settings").fetchall():
            c.execute("UPDATE settings SET sig = ? WHERE key = ?", (integrity.setting_sig(trust, key, value, at, by), key))
        for (vid,) in c.execute("SELECT id FROM model_versions").fetchall():
            integrity.sign_model(c, trust, vid)
        integrity.mark_signed_from(c, trust)
        audit.append(c, trust.signer or "", "store_signed", "store", trust.store_id,
                     "roles, settings and model versions signed as found at the upgrade")
