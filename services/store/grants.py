"""Key grants: a new data key sealed to one user's public box key (X25519, HKDF-SHA256, AES-256-GCM) and signed by
an administrator. They let an administrator rotate the data key without knowing anyone's password: each user takes
their grant at their next login and re-seals their keyring under their own password."""
from __future__ import annotations

import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.store import signing
from services.store.signing import b64, unb64

GRANT = "key-grant"   # store_id, entry, epoch, ephemeral public key, nonce, ciphertext
IDENTITY = "identity-grant"   # the same for the identity key (services.store.identity): care roles only


def box_pub(key: X25519PrivateKey) -> str:
    return b64(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def _kek(shared: bytes, store_id: str, entry: str, kind: str = GRANT) -> bytes:
    label = "wardlens-grant" if kind == GRANT else f"wardlens-{kind}"
    return HKDF(hashes.SHA256(), 32, None, f"{label}|{store_id}|{entry}".encode()).derive(shared)


def seal(trust: signing.Trust, entry: str, recipient_pub: str, epoch: int, data_key: bytes | bytearray,
         kind: str = GRANT) -> dict:
    eph = X25519PrivateKey.generate()
    shared = eph.exchange(X25519PublicKey.from_public_bytes(unb64(recipient_pub)))
    nonce = os.urandom(12)
    ct = AESGCM(_kek(shared, trust.store_id, entry, kind)).encrypt(nonce, bytes(data_key), entry.encode())
    grant = {"epoch": epoch, "eph": box_pub(eph), "nonce": b64(nonce), "ct": b64(ct)}
    grant["sig"] = trust.admin_sign(kind, entry, epoch, grant["eph"], grant["nonce"], grant["ct"])
    return grant


def open_grant(store_id: str, admin_pub: bytes | None, entry: str, grant: dict, box: X25519PrivateKey,
               kind: str = GRANT) -> bytearray:
    """The data key in a grant; ValueError unless an administrator this user trusts signed it for this entry."""
    try:
        fields = (int(grant["epoch"]), str(grant["eph"]), str(grant["nonce"]), str(grant["ct"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError("malformed key grant") from exc
    if not signing.verifies(admin_pub, grant.get("sig"), kind, store_id, entry, *fields):
        raise ValueError("key grant not signed by an administrator")
    shared = box.exchange(X25519PublicKey.from_public_bytes(unb64(fields[1])))
    return bytearray(AESGCM(_kek(shared, store_id, entry, kind)).decrypt(unb64(fields[2]), unb64(fields[3]), entry.encode()))
