"""Audit signatures on the server store: each person's Ed25519 key, as on the desk store.

The private key is sealed (AES-256-GCM) under a key derived with scrypt from the person's password and kept in
`signing_secrets`, a row only that login can read (row-level security, forced); the public key goes into
`signing_keys`, which everyone reads and nobody can change. A key signs the audit rows written after it was made until
that person's next key (a new one is made when the password was reset by an administrator, since the old seal no
longer opens). `verify` checks every row against the keys of the person it names, and the desk-store keys of rows
that came with `migrate-store`.
"""
from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.store import signing
from services.store.keyfile import KdfParams, derive
from services.store.signing import Trust

KDF: KdfParams | None = None   # None: calibrated to about half a second here (tests set KdfParams.fast())


def _aad(store_id: str, username: str) -> bytes:
    return f"wardlens-server-signing-key|{store_id}|{username}".encode()


def _kdf_text(p: KdfParams) -> str:
    return f"scrypt:{p.n}:{p.r}:{p.p}"


def _kdf(text: str) -> KdfParams:
    _, n, r, p = text.split(":")
    return KdfParams(int(n), int(r), int(p)).check()


def seal(conn, store_id: str, username: str, password: str, key) -> None:
    """Keep `key` sealed under `password` for this login (inside the caller's transaction)."""
    params = KDF or KdfParams.calibrated()
    salt = os.urandom(16)
    kek = derive(password.encode("utf-8"), salt, params)
    nonce = os.urandom(12)
    wrapped = nonce + AESGCM(kek).encrypt(nonce, signing.private_raw(key), _aad(store_id, username))
    conn.execute("INSERT INTO signing_secrets (username, wrapped, salt, kdf) VALUES (?,?,?,?) ON CONFLICT (username) "
                 "DO UPDATE SET wrapped = excluded.wrapped, salt = excluded.salt, kdf = excluded.kdf",
                 (username, wrapped, salt, _kdf_text(params)))


def _open(row, store_id: str, username: str, password: str):
    wrapped, salt, kdf = bytes(row[0]), bytes(row[1]), row[2]
    try:
        kek = derive(password.encode("utf-8"), salt, _kdf(kdf))
        raw = AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], _aad(store_id, username))
        return signing.key_from_raw(raw)
    except (InvalidTag, ValueError):
        return None


def session_trust(db, username: str, password: str) -> Trust:
    """This login's signing key (made on first use, or anew when the sealed one no longer opens), as a Trust."""
    with db.transaction() as c:
        store_id = c.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0]
        row = c.execute("SELECT wrapped, salt, kdf FROM signing_secrets WHERE username = ?", (username,)).fetchone()
        key = _open(row, store_id, username, password) if row else None
        latest = c.execute("SELECT sign_pub FROM signing_keys WHERE username = ? ORDER BY id DESC LIMIT 1",
                           (username,)).fetchone()
        if key is None or latest is None or latest[0] != signing.b64(signing.public_raw(key)):
            key = signing.new_key()
            seal(c, store_id, username, password, key)
            c.execute("INSERT INTO signing_keys (username, sign_pub) VALUES (?, ?)",
                      (username, signing.b64(signing.public_raw(key))))
    return Trust(store_id, None, username, key, None)


class ServerKeySet:
    """integrity.KeySet's interface over the server's keys: which key may have signed audit row N for a person."""

    def __init__(self, spans: dict[str, list[tuple[bytes, int, int | None]]]) -> None:
        self.spans = spans

    def candidates(self, signer: str, row_id: int) -> list[bytes]:
        return [k for k, start, end in self.spans.get(signer, []) if start <= row_id and (end is None or row_id < end)]

    def __contains__(self, signer: str) -> bool:
        return signer in self.spans


def key_set(conn) -> ServerKeySet:
    spans: dict[str, list[tuple[bytes, int, int | None]]] = {}
    server: dict[str, list[tuple[bytes, int]]] = {}
    for username, pub, start in conn.execute("SELECT username, sign_pub, from_row FROM signing_keys ORDER BY id"):
        server.setdefault(username, []).append((signing.unb64(pub), int(start)))
    for username, keys in server.items():
        for i, (pub, start) in enumerate(keys):
            spans.setdefault(username, []).append((pub, start, keys[i + 1][1] if i + 1 < len(keys) else None))
    # rows that came from a desk store (migrate-store): the desk's keys, recorded once when it moved up; never the
    # users or retired_keys tables, which administrators can write
    for username, pub, to_row in conn.execute("SELECT username, sign_pub, to_row FROM desk_keys"):
        spans.setdefault(username, []).append((signing.unb64(pub), 0, int(to_row)))
    return ServerKeySet(spans)


def writer_problems(conn, max_problems: int = 20) -> list[str]:
    """Rows the server wrote must name the login that wrote them (db_user, stamped by the server): an administrator's
    login cannot put a row in a nurse's name, nor anyone a row in the name of 'system' signed by someone else."""
    row = conn.execute("SELECT last_row FROM desk_history").fetchone()
    after = int(row[0]) if row else 0
    bad = conn.execute("SELECT id, username, db_user FROM audit_log WHERE id > ? AND username <> db_user AND NOT "
                       "(username = 'system' AND signer = db_user) ORDER BY id LIMIT ?", (after, max_problems)).fetchall()
    return [f"audit row {i} names {u!r} but was written by the login {d!r}" for i, u, d in bad]
