"""Signing and checking the records only an administrator may produce: roles, account keys, settings and model
versions. One place for each record's signed fields, used when the record is written, when it is used, and by
`verify`."""
from __future__ import annotations

import hashlib

from services.store import signing
from services.store.signing import Trust


def _sha(text: str | bytes | None) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text or b"")
    return hashlib.sha256(data).hexdigest()


# --- accounts ----------------------------------------------------------------------------------------------------
def sign_user(conn, trust: Trust, username: str) -> None:
    """(Re)sign an account's role and active flag, and its signing key where it has one."""
    role, active, pub, box = conn.execute("SELECT role, active, sign_pub, box_pub FROM users WHERE username = ?",
                                          (username,)).fetchone()
    role_sig = trust.admin_sign(signing.USER_ROLE, username, role, int(active))
    key_sig = trust.admin_sign(signing.USER_KEY, username, pub, box) if pub else None
    conn.execute("UPDATE users SET role_sig = ?, key_sig = ? WHERE username = ?", (role_sig, key_sig, username))


def box_key(conn, trust: Trust, username: str) -> str | None:
    """The user's box key (for a key grant) only if an administrator countersigned it with their signing key."""
    row = conn.execute("SELECT sign_pub, box_pub, key_sig FROM users WHERE username = ?", (username,)).fetchone()
    if row and row[1] and trust.admin_signed(row[2], signing.USER_KEY, username, row[0], row[1]):
        return row[1]
    return None


def role_is_signed(trust: Trust, username: str, role: str, active: int, role_sig: str | None) -> bool:
    if type(active) is not int or active not in (0, 1) or not isinstance(role, str):
        return False   # e.g. active = 0.5: truthy for a login check, int() 0 for a signature check
    return trust.admin_signed(role_sig, signing.USER_ROLE, username, role, active)


def signed_active_accounts(conn, trust: Trust) -> set[str]:
    """Accounts an administrator signed as active (the `active` column alone can be written by anyone)."""
    return {u for u, role, active, sig in conn.execute("SELECT username, role, active, role_sig FROM users")
            if active == 1 and role_is_signed(trust, u, role, 1, sig)}


def retire_key(conn, trust: Trust, username: str) -> None:
    """An account gets new keys (a password reset by an administrator): its old signing key stays valid for the
    rows written so far, and no later one."""
    row = conn.execute("SELECT sign_pub FROM users WHERE username = ?", (username,)).fetchone()
    if not row or not row[0]:
        return
    to_row = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM audit_log").fetchone()[0]
    conn.execute("INSERT OR REPLACE INTO retired_keys (username, sign_pub, to_row, sig) VALUES (?,?,?,?)",
                 (username, row[0], to_row, trust.admin_sign(signing.RETIRED_KEY, username, row[0], to_row)))


class KeySet:
    """Which key may have signed audit row N for a user: the current key from the row where the last retired key
    stopped, each retired key (countersigned when retired) before its end."""

    def __init__(self, current: dict[str, bytes], retired: dict[str, list[tuple[bytes, int]]]) -> None:
        self.current, self.retired = current, retired

    def candidates(self, signer: str, row_id: int) -> list[bytes]:
        ends = [end for _, end in self.retired.get(signer, [])]
        keys = [k for k, end in self.retired.get(signer, []) if row_id < end]
        if signer in self.current and row_id >= max(ends, default=0):
            keys.append(self.current[signer])
        return keys

    def __contains__(self, signer: str) -> bool:
        return signer in self.current or signer in self.retired


def key_set(conn, trust: Trust) -> tuple[KeySet, dict[str, bytes]]:
    current, pending = user_keys(conn, trust)
    retired: dict[str, list[tuple[bytes, int]]] = {}
    for username, pub, to_row, sig in conn.execute("SELECT username, sign_pub, to_row, sig FROM retired_keys"):
        if trust.admin_signed(sig, signing.RETIRED_KEY, username, pub, int(to_row)):
            retired.setdefault(username, []).append((signing.unb64(pub), int(to_row)))
    return KeySet(current, retired), pending


def user_keys(conn, trust: Trust) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The signing keys an administrator countersigned, by user; and the keys registered by their users after an
    upgrade that no administrator has countersigned (never trusted as a countersigned key is)."""
    keys: dict[str, bytes] = {}
    untrusted: dict[str, bytes] = {}
    for username, pub, box, key_sig in conn.execute("SELECT username, sign_pub, box_pub, key_sig FROM users "
                                                    "ORDER BY username"):
        try:
            raw = signing.unb64(pub) if pub else None
        except ValueError:
            raw = None
        if raw and trust.admin_signed(key_sig, signing.USER_KEY, username, pub, box):
            keys[username] = raw
        elif raw:
            untrusted[username] = raw
    if trust.admin_pub:
        keys["recovery"] = trust.admin_pub  # the recovery key signs with the administrator key itself
    return keys, untrusted


# --- settings ----------------------------------------------------------------------------------------------------
def setting_sig(trust: Trust, key: str, value: str, updated_at: str, updated_by: str) -> str:
    return trust.admin_sign(signing.SETTING, key, value, updated_at, updated_by)


def setting_is_signed(trust: Trust | None, key: str, value: str, updated_at: str, updated_by: str,
                      sig: str | None) -> bool:
    if trust is None or trust.admin_pub is None:
        return True  # a store not yet signed (see Trust): nothing to check against
    return trust.admin_signed(sig, signing.SETTING, key, value, updated_at, updated_by)


# --- model versions ----------------------------------------------------------------------------------------------
def _model_fields(name: str, version: str, sha256: str, sidecars: str, card: str, status: str) -> tuple:
    return name, version, sha256, _sha(sidecars), _sha(card), status


def sign_model(conn, trust: Trust, version_id: int) -> None:
    row = conn.execute("SELECT name, version, sha256, sidecars, card, status FROM model_versions WHERE id = ?",
                       (version_id,)).fetchone()
    conn.execute("UPDATE model_versions SET sig = ? WHERE id = ?",
                 (trust.admin_sign(signing.MODEL, *_model_fields(*row)), version_id))


def model_is_signed(trust: Trust | None, name: str, version: str, sha256: str, sidecars: str, card: str, status: str,
                    sig: str | None) -> bool:
    if trust is None or trust.admin_pub is None:
        return True
    return trust.admin_signed(sig, signing.MODEL, *_model_fields(name, version, sha256, sidecars, card, status))


# --- where signing began ---------------------------------------------------------------------------------------------
def mark_signed_from(conn, trust: Trust) -> None:
    """From the next audit row on, every row must be signed (stripping all signatures would otherwise pass)."""
    row = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM audit_log").fetchone()[0]
    conn.execute("INSERT INTO meta(key, value) VALUES ('signed_from', ?) ON CONFLICT(key) DO UPDATE SET "
                 "value = excluded.value", (f"{row} {trust.admin_sign(signing.SIGNED_FROM, row)}",))


def signed_from(conn, trust: Trust) -> tuple[int, str | None]:
    """The first row that must be signed; 1 (every row) with a problem when the record is missing or altered."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'signed_from'").fetchone()
    text = row[0] if row and isinstance(row[0], str) else ""
    first, _, sig = text.partition(" ")
    if first.isdigit() and trust.admin_signed(sig, signing.SIGNED_FROM, int(first)):
        return int(first), None
    return 1, "the record of the audit row from which every row is signed is missing or altered"


# --- everything, for verify ------------------------------------------------------------------------------------------
def check_signatures(conn, trust: Trust, max_problems: int = 20) -> tuple[list[str], list[str]]:
    """(problems, notes): every signed record of the store checked against the administrator key `trust` holds."""
    from services.store.audit import verify_chain
    if trust.admin_pub is None:
        return [], ["the store is not signed yet: an administrator must log in once with this version"]
    problems: list[str] = []
    for username, role, active, sig in conn.execute("SELECT username, role, active, role_sig FROM users"):
        if not role_is_signed(trust, username, role, active, sig):
            problems.append(f"the account {username!r} ({role}, {'active' if active else 'inactive'}) is not signed by "
                            "an administrator (role or status altered)")
    for key, value, at, by, sig in conn.execute("SELECT key, value, updated_at, updated_by, sig FROM settings"):
        if not setting_is_signed(trust, key, value, at, by, sig):
            problems.append(f"the setting {key!r} is not signed by an administrator (altered); its default is used")
    for vid, name, version, sha, side, card, status, sig in conn.execute(
            "SELECT id, name, version, sha256, sidecars, card, status, sig FROM model_versions"):
        if not model_is_signed(trust, name, version, sha, side, card, status, sig):
            problems.append(f"model version {version} ({status}) is not signed by an administrator (inserted or "
                            "altered outside WardLens); it is never loaded")
    keys, untrusted = key_set(conn, trust)
    notes = [f"the signing key of {u!r} awaits an administrator's countersignature (registered at that user's first "
             "login after the upgrade)" for u in untrusted]
    first, problem = signed_from(conn, trust)
    if problem:
        problems.append(problem)
    chain = verify_chain(conn, max_problems, keys=keys, pending=untrusted, required_from=first)
    return problems + chain.problems, notes + chain.notes
