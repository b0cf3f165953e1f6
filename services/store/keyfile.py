"""The key file beside the store: copies of the random data key, each wrapped by a user's password
(or the recovery key) through scrypt and AES-256-GCM. No usable key is ever written to disk.

The file also carries the failed-login counters used for throttling (they must survive a restart and
cannot live in the store, which is unreadable until a login succeeds) and the failed-login events that
are moved into the audit log at the next successful unlock.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.core.errors import KeyFileError, LoginThrottled, WrongPassword
from services.core.outputs import exclusive_temp

FORMAT = "wardlens-keys"
FORMAT_VERSION = 1
KEY_BYTES = 32
RECOVERY_PREFIX = "recovery"

# Throttling: free attempts, then an exponential wait, then a lockout window.
FREE_ATTEMPTS = 3
MAX_WAIT_S = 300.0
LOCKOUT_AFTER = 10
LOCKOUT_S = 900.0


@dataclass(frozen=True)
class KdfParams:
    n: int = 2**17
    r: int = 8
    p: int = 2

    @staticmethod
    def calibrated(target_s: float = 0.5) -> "KdfParams":
        """Scale scrypt's parallelism until one derivation takes about `target_s` here.

        Memory stays at 128 MiB (n=2^17, r=8); p multiplies the time linearly.
        """
        base = KdfParams(2**17, 8, 1)
        start = time.perf_counter()
        derive(b"calibration", os.urandom(16), base)
        one = max(time.perf_counter() - start, 1e-3)
        return KdfParams(base.n, base.r, max(1, round(target_s / one)))

    def check(self) -> "KdfParams":
        """Bounds on parameters read from a file: a planted kdf_p=100000 must not hang the unlock, nor a huge n
        exhaust memory, nor a tiny n make a password cheap to guess."""
        n, r, p = self.n, self.r, self.p
        if not (2**10 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 64
                and 128 * r * n <= 512 * 2**20 and n * r * p <= 2**17 * 8 * 64):
            raise ValueError(f"scrypt parameters out of bounds (n={n}, r={r}, p={p})")
        return self

    @staticmethod
    def fast() -> "KdfParams":
        """Cheap parameters for tests only: the code path is the same, the cost is not."""
        return KdfParams(2**10, 8, 1)


def derive(secret: bytes, salt: bytes, params: KdfParams) -> bytes:
    return hashlib.scrypt(secret, salt=salt, n=params.n, r=params.r, p=params.p,
                          maxmem=256 * params.r * params.n + (1 << 20), dklen=KEY_BYTES)


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _unb64(s: str) -> bytes:
    return base64.b64decode(s.encode("ascii"), validate=True)


def new_data_key() -> bytearray:
    return bytearray(secrets.token_bytes(KEY_BYTES))


def new_recovery_key() -> str:
    """Shown once at store creation: 160 random bits as eight groups of base32."""
    raw = base64.b32encode(secrets.token_bytes(20)).decode("ascii")
    return "-".join(raw[i:i + 4] for i in range(0, len(raw), 4))


def normalise_recovery_key(text: str) -> bytes:
    return "".join(ch for ch in text.upper() if ch.isalnum()).encode("ascii")


def key_file_path(store_path: Path | str) -> Path:
    return Path(str(store_path) + ".keys")


class KeyFile:
    """Reads and atomically rewrites the JSON key file."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    # --- creation and loading -------------------------------------------------------------------
    @classmethod
    def create(cls, path: Path, store_id: str) -> "KeyFile":
        return cls(path, {"format": FORMAT, "version": FORMAT_VERSION, "store_id": store_id,
                          "cipher": "AES-256-GCM", "kdf": "scrypt", "entries": {}, "failures": {},
                          "pending_audit": []})

    @classmethod
    def load(cls, path: Path) -> "KeyFile":
        if not path.exists():
            raise KeyFileError(f"The key file {path.name} is missing beside the store. Restore it from a backup.")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise KeyFileError(f"The key file {path.name} is damaged ({exc.__class__.__name__}). Restore it from a backup.") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("entries"), dict):
            raise KeyFileError(f"{path.name} is not a WardLens key file.")
        version = data.get("version", 0)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise KeyFileError(f"{path.name} was written by a newer WardLens. Update the application.")
        if not isinstance(data.get("store_id"), str):
            raise KeyFileError(f"The key file {path.name} is damaged (no store id). Restore it from a backup.")
        # Throttling records are advisory and unauthenticated (docs/security.md): malformed ones are dropped, never
        # allowed to raise during a login.
        failures = data.get("failures")
        data["failures"] = {str(k): v for k, v in failures.items() if isinstance(v, dict)} \
            if isinstance(failures, dict) else {}
        pending = data.get("pending_audit")
        data["pending_audit"] = [ev for ev in pending if isinstance(ev, dict)][-1000:] if isinstance(pending, list) else []
        return cls(path, data)

    def save(self) -> None:
        # A fresh exclusive temporary (0600, never through a planted link), then an atomic rename.
        fd, tmp = exclusive_temp(self.path.absolute().parent, self.path.name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.data, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    @property
    def store_id(self) -> str:
        return str(self.data["store_id"])

    # --- wrapping -------------------------------------------------------------------------------
    def _aad(self, entry: str) -> bytes:
        # Binding the entry name and store id stops an entry being copied to another user or store.
        return f"{self.store_id}|{entry}".encode("utf-8")

    def wrap(self, entry: str, secret: bytes, payload: bytes | bytearray, params: KdfParams) -> bytearray:
        """Wrap `payload` (a keyring, services.store.keyring) under a key derived from `secret`; returns that key
        so that the session can re-seal its own entry later (new anchor) without deriving again."""
        salt = os.urandom(16)
        kek = bytearray(derive(secret, salt, params))
        self.data["entries"][entry] = {"salt": _b64(salt), **{f"kdf_{k}": v for k, v in asdict(params).items()}}
        self.seal(entry, kek, payload)
        return kek

    def seal(self, entry: str, kek: bytes | bytearray, payload: bytes | bytearray) -> None:
        """Re-encrypt an existing entry's payload under the key its password derived (fresh nonce)."""
        nonce = os.urandom(12)
        e = self.data["entries"][entry]
        e["nonce"] = _b64(nonce)
        e["wrapped"] = _b64(AESGCM(bytes(kek)).encrypt(nonce, bytes(payload), self._aad(entry)))

    def _params(self, e: dict) -> KdfParams:
        return KdfParams(int(e["kdf_n"]), int(e["kdf_r"]), int(e["kdf_p"])).check()

    def _decoy(self) -> KdfParams:
        """The parameters a real entry uses, for a name that has none: an unknown user costs the same derivation
        as a known one, so the answer's timing does not tell which user names exist."""
        for e in self.data["entries"].values():
            try:
                return self._params(e)
            except (KeyError, ValueError, TypeError):
                continue
        return KdfParams()

    def unwrap(self, entry: str, secret: bytes) -> bytearray:
        payload, kek = self.open(entry, secret)
        for i in range(len(kek)):
            kek[i] = 0
        return payload

    def data_key(self, entry: str, secret: bytes) -> bytearray:
        """Only the SQLCipher key of an entry (a keyring or a release-0.2 bare key), for checking copies."""
        from services.store.keyring import Keyring
        payload = self.unwrap(entry, secret)
        try:
            ring = Keyring.from_payload(payload)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise KeyFileError(f"The key file entry for {entry!r} is damaged ({exc}).") from exc
        finally:
            for i in range(len(payload)):
                payload[i] = 0
        return ring.data_key

    def open(self, entry: str, secret: bytes) -> tuple[bytearray, bytearray]:
        """The entry's payload and the key that sealed it (wipe both when done)."""
        e = self.data["entries"].get(entry)
        if e is None:
            derive(secret, b"\x00" * 16, self._decoy())  # same work, result discarded
            raise WrongPassword()
        try:
            if not isinstance(e, dict):
                raise TypeError("entry is not an object")
            params = self._params(e)
            salt, nonce, wrapped = _unb64(e["salt"]), _unb64(e["nonce"]), _unb64(e["wrapped"])
            if len(salt) < 16 or len(nonce) != 12 or len(wrapped) > 65536:
                raise ValueError("salt, nonce or wrapped key of the wrong size")
            kek = bytearray(derive(secret, salt, params))
            key = AESGCM(bytes(kek)).decrypt(nonce, wrapped, self._aad(entry))
        except InvalidTag:
            raise WrongPassword() from None
        except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as exc:
            raise KeyFileError(f"The key file entry for {entry!r} is damaged ({exc}). Restore the key file from a "
                               "backup or ask an administrator to reset this account.") from exc
        return bytearray(key), kek

    def remove(self, entry: str) -> None:
        self.data["entries"].pop(entry, None)

    def has(self, entry: str) -> bool:
        return entry in self.data["entries"]

    # --- throttling -----------------------------------------------------------------------------
    def check_throttle(self, username: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        f = self.data["failures"].get(username)
        if not f:
            return
        try:
            count, last = int(f.get("count", 0)), float(f.get("last", 0.0))
        except (TypeError, ValueError, OverflowError):
            count, last = LOCKOUT_AFTER, now  # a record altered into nonsense counts as a lockout, not as none
        last = min(last, now)  # a planted time in the future must not extend a wait forever
        if count >= LOCKOUT_AFTER:
            wait = LOCKOUT_S - (now - last)
        elif count >= FREE_ATTEMPTS:
            wait = min(MAX_WAIT_S, 2.0 ** (count - FREE_ATTEMPTS + 1)) - (now - last)
        else:
            return
        if wait > 0:
            raise LoginThrottled(wait)

    def record_failure(self, username: str, reason: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        f = self.data["failures"].setdefault(username, {"count": 0, "last": 0.0})
        try:
            f["count"] = int(f.get("count", 0)) + 1
        except (TypeError, ValueError, OverflowError):
            f["count"] = LOCKOUT_AFTER
        f["last"] = now
        pending = self.data["pending_audit"]
        pending.append({"ts": now, "username": username, "reason": reason, "count": f["count"]})
        del pending[:-1000]  # bounded: an attacker must not be able to grow the file without limit
        self.save()

    def record_success(self, username: str) -> list[dict[str, Any]]:
        """Reset the user's counter; return (and clear) the failed-login events to audit."""
        self.data["failures"].pop(username, None)
        pending = list(self.data["pending_audit"])
        self.data["pending_audit"] = []
        self.save()
        return pending

    # --- demo logins ----------------------------------------------------------------------------
    @property
    def demo_logins(self) -> list[dict[str, str]]:
        return list(self.data.get("demo_logins", []))

    def set_demo_logins(self, logins: list[dict[str, str]]) -> None:
        self.data["demo_logins"] = logins
