"""What one key-file entry holds once its password opens it: the keyring.

Version 1 entries (WardLens 0.2 and earlier) held only the 32-byte data key; they are read as a keyring without
keys and upgraded at that user's next login. Version 2 holds, as JSON inside the AES-GCM envelope:
- data_key: the SQLCipher key (every role);
- user_sign: the user's own Ed25519 signing key (their audit entries);
- admin_sign: the administrator signing key (administrators and the recovery key only);
- admin_pub: the administrator public key this user trusts (the anchor: a store cannot swap it);
- box: the user's X25519 key, to which an administrator seals a new data key when rotating (services.store.grants);
- anchor: the last audit row this user saw ({"seq", "hash"}), so truncation or rewind of the log is noticed;
- identity, identity_epoch: the identity key identifying fields are sealed under (services.store.identity): care roles,
  administrators and the recovery key only, never an analyst.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from services.store.signing import b64, key_from_raw, new_key, private_raw, public_raw, unb64

VERSION = 2


@dataclass
class Keyring:
    data_key: bytearray
    user_sign: Ed25519PrivateKey | None = None
    admin_sign: Ed25519PrivateKey | None = None
    admin_pub: bytes | None = None
    anchor: dict = field(default_factory=dict)
    box: X25519PrivateKey | None = None
    identity: bytearray | None = None
    identity_epoch: int = 0
    legacy: bool = False   # read from a version 1 entry: re-sealed as version 2 at this login

    @classmethod
    def from_payload(cls, payload: bytes | bytearray) -> "Keyring":
        if len(payload) == 32:
            return cls(bytearray(payload), legacy=True)
        obj = json.loads(bytes(payload).decode("utf-8"))
        if not isinstance(obj, dict) or obj.get("v") != VERSION:
            raise ValueError("unknown keyring version")
        anchor = obj.get("anchor") or {}
        if not isinstance(anchor, dict):
            raise ValueError("malformed anchor")
        return cls(bytearray(unb64(obj["data_key"])),
                   key_from_raw(unb64(obj["user_sign"])) if obj.get("user_sign") else None,
                   key_from_raw(unb64(obj["admin_sign"])) if obj.get("admin_sign") else None,
                   unb64(obj["admin_pub"]) if obj.get("admin_pub") else None,
                   {"seq": int(anchor["seq"]), "hash": str(anchor["hash"])} if anchor else {},
                   X25519PrivateKey.from_private_bytes(unb64(obj["box"])) if obj.get("box") else None,
                   bytearray(unb64(obj["identity"])) if obj.get("identity") else None,
                   int(obj.get("identity_epoch") or 0))

    def payload(self) -> bytearray:
        obj = {"v": VERSION, "data_key": b64(bytes(self.data_key)),
               "user_sign": b64(private_raw(self.user_sign)) if self.user_sign else None,
               "admin_sign": b64(private_raw(self.admin_sign)) if self.admin_sign else None,
               "admin_pub": b64(self.admin_pub) if self.admin_pub else None,
               "anchor": self.anchor or None,
               "box": b64(self.box.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())) if self.box else None,
               "identity": b64(bytes(self.identity)) if self.identity else None,
               "identity_epoch": self.identity_epoch if self.identity else None}
        return bytearray(json.dumps(obj, sort_keys=True).encode("utf-8"))

    @property
    def user_pub(self) -> str | None:
        return b64(public_raw(self.user_sign)) if self.user_sign else None

    @property
    def box_pub(self) -> str | None:
        from services.store.grants import box_pub
        return box_pub(self.box) if self.box else None

    def ensure_user_key(self) -> bool:
        """Give a legacy keyring its own signing and box keys; True when any was made."""
        made = False
        if self.user_sign is None:
            self.user_sign, made = new_key(), True
        if self.box is None:
            self.box, made = X25519PrivateKey.generate(), True
        return made

    def set_identity(self, key: bytes | bytearray | None, epoch: int = 0) -> None:
        self.drop_identity()
        if key is not None:
            self.identity, self.identity_epoch = bytearray(key), int(epoch)

    def drop_identity(self) -> None:
        if self.identity is not None:
            for i in range(len(self.identity)):
                self.identity[i] = 0
        self.identity, self.identity_epoch = None, 0

    def wipe(self) -> None:
        for i in range(len(self.data_key)):
            self.data_key[i] = 0
        self.drop_identity()
