"""Signing and checking the records only an administrator may produce: roles, account keys, settings and model
versions. One place for each record's signed fields, used when the record is written, when it is used, and by
`verify`."""
from __future__ import annotations

import hashlib
import json

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


def sign_user_key(conn, trust: Trust, username: str) -> None:
    """Countersign only an account's keys (its role signature stays as an administrator last made it)."""
    pub, box = conn.execute("SELECT sign_pub, box_pub FROM users WHERE username = ?", (username,)).fetchone()
    conn.execute("UPDATE users SET key_sig = ? WHERE username = ?",
                 (trust.admin_sign(signing.USER_KEY, username, pub, box) if pub else None, username))


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
                      sig: str | None, conn=None) -> bool:
    """Signed by an administrator, and (given `conn`) the latest signed version of it."""
    if trust is None or trust.admin_pub is None:
        return True  # a store not yet signed (see Trust): nothing to check against
    return trust.admin_signed(sig, signing.SETTING, key, value, updated_at, updated_by) and \
        (conn is None or is_current(conn, trust, f"setting:{key}", sig))


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


# --- the signed state: every administrator-signed record at once ------------------------------------------------------
# Each record's own signature says who made it, not that it is the latest: an older signed row put back from a copy
# (a role before a change, a retired model with its signature from when it was active) or a deleted setting would pass.
# After every administrator change the session signs a digest of all such records, bound to the audit row of that
# change; the digest must match the tables, and no administrator change may follow the row it is bound to.
ADMIN_ACTIONS = frozenset({"store_created", "store_signed", "user_added", "user_deactivated", "user_reactivated",
                           "password_reset", "role_changed", "key_countersigned", "setting_changed", "keys_rotated",
                           "recovery_key_regenerated", "identities_sealed"})


def is_admin_change(action: str) -> bool:
    return action in ADMIN_ACTIONS or (action.startswith("model ") and "refused" not in action)


def _fp(*values: object) -> str:
    return hashlib.sha256(repr(values).encode("utf-8", "backslashreplace")).hexdigest()[:32]


def _state_records(conn) -> dict[str, str]:
    """One short fingerprint per administrator-signed record, by record."""
    out = {f"user:{u}": _fp(r, k) for u, r, k in conn.execute("SELECT username, role_sig, key_sig FROM users")}
    out |= {f"setting:{k}": _fp(sig) for k, sig in conn.execute("SELECT key, sig FROM settings")}
    out |= {f"model:{i}": _fp(sig) for i, sig in conn.execute("SELECT id, sig FROM model_versions")}
    out |= {f"retired:{u}:{p}": _fp(t, sig) for u, p, t, sig in
            conn.execute("SELECT username, sign_pub, to_row, sig FROM retired_keys")}
    for key in ("signed_from", "recovery_box"):   # an older recovery box would let an old recovery key take a rotation
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        out[key] = _fp(row[0] if row else None)
    row = conn.execute("SELECT value FROM meta WHERE key = 'identity'").fetchone()
    if row:   # only once sealed: a store signed before the identity key raises no alarm for lacking it
        out["identity"] = _fp(row[0])
    return out


def seal_state(conn, trust: Trust) -> None:
    row = conn.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()[0]
    records = _state_records(conn)
    body = json.dumps({"row": row, "records": records}, sort_keys=True, separators=(",", ":"))
    conn.execute("INSERT INTO meta(key, value) VALUES ('signed_state', ?) ON CONFLICT(key) DO UPDATE SET "
                 "value = excluded.value", (json.dumps({"body": body, "sig": trust.admin_sign(signing.STATE, body)}),))


def _signed_state(conn, trust: Trust) -> dict | None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'signed_state'").fetchone()
    try:
        outer = json.loads(row[0]) if row and isinstance(row[0], str) else None
        if not isinstance(outer, dict) or not trust.admin_signed(outer.get("sig"), signing.STATE, outer.get("body")):
            return None
        state = json.loads(outer["body"])
        return state if isinstance(state.get("records"), dict) and isinstance(state.get("row"), int) else None
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def is_current(conn, trust: Trust | None, record: str, *signed: object) -> bool:
    """Whether a record's signature is the one in the last signed state (not an older one put back). True where the
    store is not signed yet; False where the state is missing or altered."""
    if trust is None or trust.admin_pub is None:
        return True
    state = _signed_state(conn, trust)
    return state is not None and state["records"].get(record) == _fp(*signed)


def in_signed_state(conn, trust: Trust | None, record: str) -> bool:
    """Whether the last signed state names `record` (e.g. that the store's identifying fields were sealed)."""
    state = _signed_state(conn, trust) if trust is not None and trust.admin_pub is not None else None
    return state is not None and record in state["records"]


def state_problem(conn, trust: Trust) -> str | None:
    """A sentence when the administrator-signed records are not the latest signed set, else None."""
    state = _signed_state(conn, trust)
    if state is None:
        return "the administrator-signed summary of roles, settings and models is missing or altered"
    now = _state_records(conn)
    changed = sorted(k for k in set(now) | set(state["records"]) if now.get(k) != state["records"].get(k))
    if changed:
        return (f"{', '.join(changed[:5])} differ from what an administrator last signed (an older signed record put "
                "back, or one deleted or added)")
    later = [r for r, a in conn.execute("SELECT id, action FROM audit_log WHERE id > ?", (state["row"],))
             if is_admin_change(a)]
    if later:
        return f"an administrator change (audit row {later[0]}) came after the last signed summary: it was rolled back"
    return None


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
    for found in (problem, state_problem(conn, trust)):
        if found:
            problems.append(found)
    chain = verify_chain(conn, max_problems, keys=keys, pending=untrusted, required_from=first)
    return problems + chain.problems, notes + chain.notes
