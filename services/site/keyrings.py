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
from services.store import audit, identity, integrity, signing
from services.store import grants
from services.store.database import Database, DatabaseError, connect_raw
from services.store.keyfile import RECOVERY_PREFIX, KdfParams, KeyFile
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
                    role: Role, active: int, sign_pub: str | None, role_sig: str | None,
                    adopted: bool = False) -> tuple[list[str], identity.IdentityCodec]:
    """Whom this session trusts (the administrator key in the user's own keyring) and what it signs with; refuses a
    role no administrator signed; upgrades a keyring or a store from before signatures; settles the identity key.
    Returns warnings and the session's identity codec."""
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
    codec, ident_changed, ident_warnings = settle_identity(db, keys, entry, ring, role, trust)
    warnings += ident_warnings
    if changed or ident_changed:
        reseal(keys, entry, kek, ring)
    return warnings, codec


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


CARE_ROLES = frozenset({Role.ADMIN, Role.CLINICIAN, Role.NURSE})   # the roles the identity key is wrapped for


def care_accounts(conn, trust: Trust) -> list[tuple[str, str | None]]:
    """(username, countersigned box key or None) of every account an administrator signed, and last signed, as
    active in a care role."""
    return [(name, integrity.box_key(conn, trust, name))
            for (name,) in conn.execute("SELECT username FROM users ORDER BY username").fetchall()
            if has_current_care_role(conn, trust, name)]


def has_current_care_role(conn, trust: Trust, username: str) -> bool:
    """An administrator signed this account as active in a care role, and that signature is the latest one (not an
    older role put back from a copy by a demoted analyst)."""
    row = conn.execute("SELECT role, active, role_sig, key_sig FROM users WHERE username = ?", (username,)).fetchone()
    return bool(row) and row[0] in {r.value for r in CARE_ROLES} and row[1] == 1 and \
        integrity.role_is_signed(trust, username, row[0], 1, row[2]) and \
        integrity.is_current(conn, trust, f"user:{username}", row[2], row[3])


def grant_identity(keys: KeyFile, trust: Trust, entry: str, pub: str, key: bytes | bytearray, epoch: int) -> None:
    """Seal the identity key to one entry's box key (taken at that user's next login); the caller saves the file."""
    store = keys.data.setdefault("identity_grants", {})
    store[entry] = grants.seal(trust, entry, pub, epoch, key, kind=grants.IDENTITY)


def grant_identity_to_all(conn, keys: KeyFile, trust: Trust, key: bytes | bytearray, epoch: int,
                          own: tuple[str, str | None]) -> list[str]:
    """The identity key to every care account, the recovery key and `own` (the caller's entry and box key, so that it
    takes the key at its next login should the caller's session end before its keyring is re-sealed). Returns the
    care accounts that could not be reached (no countersigned box key)."""
    keys.data["identity_grants"] = {}
    missed = []
    for name, pub in care_accounts(conn, trust):
        if pub:
            grant_identity(keys, trust, f"user:{name}", pub, key, epoch)
        else:
            missed.append(name)
    rbox = recovery_box(conn, trust)
    if rbox:
        grant_identity(keys, trust, RECOVERY_PREFIX, rbox, key, epoch)
    if own[1] and own[0] not in keys.data["identity_grants"]:
        grant_identity(keys, trust, own[0], own[1], key, epoch)
    return missed


def seal_identities(db: Database, keys: KeyFile, entry: str, ring: Keyring, trust: Trust) -> list[str]:
    """An administrator's first login on a store from before the identity key: seal every identifying field under a
    new identity key, keep it in this keyring and grant it to every care account. Returns warnings."""
    if identity.sealed_rows(db.conn):   # sealed data without the marker: the marker was removed, never re-seal
        return ["The store holds sealed names but says it does not: it was altered outside WardLens. Nothing was "
                "re-sealed; run verify."]
    key = identity.new_identity_key()
    ik = identity.IdentityKey(key, 1)
    try:
        # The key reaches the key file first (this administrator's own entry as a grant, the care accounts, the
        # recovery key): a crash or a full disk after the store is sealed must not leave a key that exists nowhere.
        missed = grant_identity_to_all(db.conn, keys, trust, key, 1, own=(entry, ring.box_pub))
        keys.save()
        with db.transaction() as c:
            n = identity.reseal_all(c, identity.IdentityCodec(None, False), identity.IdentityCodec(ik, True))
            c.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                      (identity.META, f"1 {ik.check()}"))
            audit.append(c, trust.signer or "", "identities_sealed", "store", trust.store_id,
                         f"names, numbers, birth dates and notes of {n} patients sealed under the identity key")
        db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")   # no page with names in clear left in the WAL
        ring.set_identity(key, 1)
        keys.data.get("identity_grants", {}).pop(entry, None)   # this keyring holds it now (resealed by the caller)
    finally:
        ik.wipe()
        for i in range(len(key)):
            key[i] = 0
    if missed:
        return [f"Names and hospital numbers are now sealed; {', '.join(missed)} will see them after you countersign "
                "their accounts (People page) once they have logged in."]
    return []


def settle_identity(db: Database, keys: KeyFile, entry: str, ring: Keyring, role: Role,
                    trust: Trust) -> tuple[identity.IdentityCodec, bool, list[str]]:
    """The identity key this login holds for the store: taken from an administrator's grant when the keyring lacks
    the store's current one, dropped from an analyst's keyring; an administrator's login seals a store from before the
    key. Returns (the session's codec, whether the keyring changed, warnings)."""
    conn, changed, warnings = db.conn, False, []
    stored = identity.stored_epoch(conn)
    if role not in CARE_ROLES:
        if ring.identity is not None:   # a demoted account: the key goes (rotate keys to be certain it is useless)
            ring.drop_identity()
            changed = True
        return identity.IdentityCodec(None, stored is not None or ring.identity_epoch > 0), changed, warnings
    if stored is None and (integrity.in_signed_state(conn, trust, "identity") or identity.sealed_rows(conn)):
        warnings.append("The store no longer says its names are sealed: it was altered outside WardLens. Ask an "
                        "administrator to run verify.")
        if ring.identity is None:
            return identity.IdentityCodec(None, True), changed, warnings
    if stored is None and ring.identity is None:
        if trust.admin_key is not None and trust.admin_pub is not None:
            warnings += seal_identities(db, keys, entry, ring, trust)
            changed, stored = True, identity.stored_epoch(conn)
        else:
            warnings.append("Names and hospital numbers in this store are not yet sealed under the identity key: an "
                            "administrator must log in once with this version of WardLens.")
            return identity.IdentityCodec(None, False), changed, warnings
    if stored is None:   # the keyring holds a key, so the store was sealed: its meta row was removed from the file
        if not warnings:
            warnings.append("The store no longer says its names are sealed: it was altered outside WardLens. Names "
                            "are read and written sealed all the same; ask an administrator to run verify.")
        stored = (ring.identity_epoch, "")
    epoch, check = stored
    if ring.identity is None or ring.identity_epoch != epoch:
        grant = (keys.data.get("identity_grants") or {}).get(entry) if isinstance(keys.data.get("identity_grants"),
                                                                                  dict) else None
        got = None
        if grant and ring.box is not None and ring.admin_pub is not None:
            try:
                got = grants.open_grant(keys.store_id, ring.admin_pub, entry, grant, ring.box, kind=grants.IDENTITY)
            except (ValueError, InvalidTag):
                got = None
        if got is not None and identity.IdentityKey(got, epoch).check() == check:
            ring.set_identity(got, epoch)
            keys.data["identity_grants"].pop(entry, None)
            changed = True
        if got is not None:
            for i in range(len(got)):
                got[i] = 0
    if ring.identity is None or ring.identity_epoch != epoch:
        warnings.append("Names and hospital numbers are sealed under an identity key your account has not been given: "
                        "ask an administrator to countersign your account (People page). Until then patients show "
                        "as pseudonyms.")
        return identity.IdentityCodec(None, True), changed, warnings
    key = identity.IdentityKey(ring.identity, epoch)
    if check and key.check() != check:
        key.wipe()
        warnings.append("Your identity key does not match this store's: names cannot be shown. Ask an administrator.")
        return identity.IdentityCodec(None, True), changed, warnings
    return identity.IdentityCodec(key, True), changed, warnings
