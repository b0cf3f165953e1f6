"""Rotating the data key (an administrator action): after it, no earlier key file and no earlier password opens the
store. The new key is sealed to every active account's box key and to the recovery key's (services.store.grants);
each user takes theirs at their next login. Deactivated accounts' entries are removed; they get nothing.

Order, so that a crash at any point leaves a store that opens: (1) the key file gains the grants, (2) the store is
re-encrypted (SQLCipher rekey, one statement), (3) the administrator's own keyring takes the new key. Until (2)
the grants do not open the store and are ignored; after it, everyone, the administrator included, opens with
their grant."""
from __future__ import annotations

from dataclasses import dataclass, field

from models.domain import Permission
from services.core.errors import PermissionDenied, ValidationError
from services.site.keyrings import Sealer, recovery_box, reseal
from services.site.session import Session
from services.store import grants, integrity
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
    new_key = new_data_key()
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
        keys.save()                                                                    # (1)
        session.log("keys_rotated", "store", "", f"epoch {result.epoch}: granted {len(result.granted)}, removed "
                    f"{', '.join(result.removed) or 'none'}, without grant {', '.join(missing) or 'none'}")
        session.db.rekey(new_key)                                                      # (2)
        sealer.ring.data_key[:] = new_key
        keys = KeyFile.load(key_file_path(session.store_path))
        reseal(keys, sealer.entry, sealer.kek, sealer.ring)   # (3) own entry and its grant, in one save, whatever else
    finally:
        for i in range(len(new_key)):
            new_key[i] = 0
    return result
