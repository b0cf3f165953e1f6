"""Rotating the data key (an administrator action): after it, no earlier key file and no earlier password opens the
store. The new key is sealed to every active account's box key and to the recovery key's (services.store.grants);
each user takes theirs at their next login. Deactivated accounts' entries are removed; they get nothing.

The identity key (services.store.identity) is rotated with it: a new one, granted to care accounts and the recovery
key only, and every identifying field re-sealed under it.

Order, so that a crash at any point leaves a store that opens and reads: (1) the key file gains the grants (data key
and identity key), (2) the identifying fields are re-sealed under the new identity key in one transaction (the store's
meta row names its epoch; a grant for that epoch is taken at the next login), (3) the store is re-encrypted (SQLCipher
rekey, one statement), (4) the administrator's own keyring takes both keys. Until (3) the data-key grants do not open
the store and are ignored; after it, everyone, the administrator included, opens with their grant."""
from __future__ import annotations

from dataclasses import dataclass, field

from models.domain import Permission
from services.core.errors import PermissionDenied, ValidationError
from services.site.keyrings import Sealer, grant_identity_to_all, recovery_box, reseal
from services.site.session import Session
from services.store import audit, grants, integrity
from services.store.identity import META, IdentityCodec, IdentityKey, new_identity_key, reseal_all
from services.store.keyfile import RECOVERY_PREFIX, KeyFile, key_file_path, new_data_key


@dataclass
class Rotation:
    epoch: int
    granted: list[str] = field(default_factory=list)       # accounts that will open with the new key
    removed: list[str] = field(default_factory=list)       # key-file entries dropped (deactivated or unknown)
    without_grant: list[str] = field(default_factory=list)  # accounts that must be given a new password


def _unreachable(conn, trust, keys: KeyFile, me: str) -> list[str]:
    missing = [u for u in sorted(integrity.signed_active_accounts(conn, trust))
               if u != me and integrity.box_key(conn, trust, u) is None]
    if recovery_box(conn, trust) is None and keys.has(RECOVERY_PREFIX):
        missing.append("the recovery key")
    return missing


def unreachable(session: Session) -> list[str]:
    """Who would lose access at a rotation now (asked before the GUI closes the session to rotate)."""
    trust = session.db.trust
    if trust is None or trust.admin_key is None:
        return []
    return _unreachable(session.db.conn, trust, KeyFile.load(key_file_path(session.store_path)), session.user.username)


def rotate_data_key(session: Session, force: bool = False) -> Rotation:
    session.require(Permission.MANAGE_USERS, "rotate the store's keys")
    sealer, trust, conn = session.on_lock, session.db.trust, session.db.conn
    if not isinstance(sealer, Sealer) or trust is None or trust.admin_key is None or session.user.username == "recovery":
        raise PermissionDenied("Rotating keys needs an administrator's own login (not the recovery key).")
    keys = KeyFile.load(key_file_path(session.store_path))
    me = session.user.username
    missing = _unreachable(conn, trust, keys, me)
    if missing and not force:
        raise ValidationError({"accounts": "these would lose access (no countersigned box key; they have not logged in "
                                           "since the upgrade): " + ", ".join(missing) + ". Rotate with force to "
                                           "proceed, then give them new passwords."})
    result = Rotation(int(keys.data.get("key_epoch", 0)) + 1, without_grant=missing)
    old_codec = session.codec
    if old_codec.key is None:
        raise PermissionDenied("Rotating keys needs the store's identity key, which this session does not hold.")
    new_key, new_ident = new_data_key(), new_identity_key()
    ident = IdentityKey(new_ident, old_codec.key.epoch + 1)
    try:
        active = integrity.signed_active_accounts(conn, trust)   # never the unsigned `active` column alone
        sealed: dict[str, dict] = {}
        for entry in list(keys.data["entries"]):
            user = entry.removeprefix("user:")
            if entry.startswith("user:") and user not in active:
                keys.remove(entry)
                result.removed.append(user)
                continue
            pub = recovery_box(conn, trust) if entry == RECOVERY_PREFIX else \
                integrity.box_key(conn, trust, user) if user != me else sealer.ring.box_pub
            if pub:
                sealed[entry] = grants.seal(trust, entry, pub, result.epoch, new_key)
                if user != me:
                    result.granted.append(user if entry != RECOVERY_PREFIX else "the recovery key")
            elif entry != f"user:{me}":
                keys.remove(entry)   # cannot be reached: the old entry would only hold a dead key
        keys.data["grants"], keys.data["key_epoch"] = sealed, result.epoch
        # the new identity key to every care account, the recovery key and this administrator's own entry (taken at
        # the next login should this session end before (4)); analysts never get it
        grant_identity_to_all(conn, keys, trust, new_ident, ident.epoch, own=(sealer.entry, sealer.ring.box_pub))
        keys.save()                                                                    # (1)
        with session.db.transaction() as c:                                            # (2) names under the new key
            reseal_all(c, old_codec, IdentityCodec(ident, True))
            c.execute("UPDATE meta SET value = ? WHERE key = ?", (f"{ident.epoch} {ident.check()}", META))
            audit.append(c, me, "keys_rotated", "store", "", f"epoch {result.epoch}: granted {len(result.granted)}, "
                         f"removed {', '.join(result.removed) or 'none'}, without grant {', '.join(missing) or 'none'}")
        session.set_identity(IdentityCodec(ident, True))
        session.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")   # no page under the old identity key in the WAL
        session.db.rekey(new_key)                                                      # (3)
        sealer.ring.data_key[:] = new_key
        sealer.ring.set_identity(new_ident, ident.epoch)
        keys = KeyFile.load(key_file_path(session.store_path))
        keys.data.get("identity_grants", {}).pop(sealer.entry, None)
        reseal(keys, sealer.entry, sealer.kek, sealer.ring)   # (4) own entry and its grant, in one save, whatever else
    finally:
        for buf in (new_key, new_ident):
            for i in range(len(buf)):
                buf[i] = 0
    return result
