"""Ed25519 signatures that make records the work of the people they name.

Anyone who can open the store can write any row: the data key is shared by every role. What they cannot do is
sign. An administrator signing key (its private half inside administrators' keyrings only) signs roles, account
keys, site settings and model activations; each user's own key signs the audit entries they write. The public
half of the administrator key that a user trusts comes from that user's own keyring, authenticated by their
password, never from the store alone.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

USER_ROLE = "user-role"        # store_id, username, role, active
USER_KEY = "user-key"          # store_id, username, public signing key
SETTING = "setting"            # store_id, key, value, updated_at, updated_by
MODEL = "model-version"        # store_id, name, version, sha256 of onnx, sidecars and card, status
AUDIT = "audit"                # store_id, row hash
RETIRED_KEY = "retired-key"    # store_id, username, public signing key, first audit row it may no longer sign
ANCHOR = "anchor"              # store_id, username, seq, hash
SIGNED_FROM = "signed-from"    # store_id, the first audit row that must be signed
STATE = "signed-state"         # store_id, the audit row it follows, digest of every administrator-signed record


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def unb64(s: str) -> bytes:
    if not isinstance(s, str):
        raise ValueError("not base64 text")
    return base64.b64decode(s.encode("ascii"), validate=True)


def message(purpose: str, *fields: object) -> bytes:
    # Purpose-tagged and unit-separated: a signature over one kind of record can never verify as another.
    return f"wardlens/{purpose}/v1\x1e".encode() + "\x1f".join("" if f is None else str(f) for f in fields).encode()


def fingerprint(public_b64: str) -> str:
    """A short form of a public key that two people can compare by reading it aloud."""
    import hashlib
    digest = hashlib.sha256(unb64(public_b64)).hexdigest()[:20]
    return "-".join(digest[i:i + 4] for i in range(0, 20, 4))


def new_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def private_raw(key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def key_from_raw(raw: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(raw)


def sign(key: Ed25519PrivateKey, purpose: str, *fields: object) -> str:
    return b64(key.sign(message(purpose, *fields)))


def verifies(public: bytes | str | None, signature: str | None, purpose: str, *fields: object) -> bool:
    # Everything read from the file is suspect: a BLOB, a number or a broken base64 string is simply "not signed".
    if not public or not isinstance(signature, str) or not isinstance(public, (str, bytes)):
        return False
    try:
        pub = unb64(public) if isinstance(public, str) else public
        Ed25519PublicKey.from_public_bytes(pub).verify(unb64(signature), message(purpose, *fields))
        return True
    except (InvalidSignature, ValueError, TypeError, AttributeError, OverflowError):
        return False


@dataclass
class Trust:
    """What an open session can sign and whom it trusts; lives on the Database and on each of its connections.

    admin_pub None: the store has not been signed yet (made by an earlier release and no administrator has logged
    in since); checks that need it report that instead of passing."""
    store_id: str
    admin_pub: bytes | None = None
    signer: str | None = None                          # the user whose key signs this session's audit entries
    signer_key: Ed25519PrivateKey | None = None
    admin_key: Ed25519PrivateKey | None = None         # administrators (and the recovery key) only

    def sign_audit(self, row_hash: str) -> tuple[str | None, str | None]:
        if self.signer_key is None:
            return None, None
        return self.signer, sign(self.signer_key, AUDIT, self.store_id, row_hash)

    def admin_sign(self, purpose: str, *fields: object) -> str:
        if self.admin_key is None:
            from services.core.errors import PermissionDenied
            raise PermissionDenied("Only an administrator can sign this change.")
        return sign(self.admin_key, purpose, self.store_id, *fields)

    def admin_signed(self, signature: str | None, purpose: str, *fields: object) -> bool:
        return verifies(self.admin_pub, signature, purpose, self.store_id, *fields)
