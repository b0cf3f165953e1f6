"""Audit heads remembered outside the store, so that truncating the log or putting an older copy of the store in
place (with its own key file) is noticed.

Two anchors, both written at lock and checked at unlock and by `verify`:
- in the user's own keyring (services.store.keyring), authenticated by their password: catches a store truncated
  or rewound without its key file;
- on this computer, in the user's data folder (`anchors/<store id>.json`), signed with the user's key: catches a
  store rewound together with its key file (an old backup copied over both).
Neither holds against someone who can write both the store's files and the user's data folder of every desk
(docs/security.md)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from services.core.outputs import exclusive_temp
from services.core.paths import user_data_dir
from services.store import signing


def backup_index_path(store_path: Path | str) -> Path:
    """`<store>.backups.json`: where each verified backup of this store was written, with its digest and its head."""
    return Path(str(store_path) + ".backups.json")


def read_index(store_path: Path | str) -> list[dict]:
    try:
        data = json.loads(backup_index_path(store_path).read_text(encoding="utf-8"))
        return [e for e in data.get("backups", []) if isinstance(e, dict) and "path" in e]
    except (OSError, ValueError, AttributeError):
        return []


def signed_head(conn, trust) -> dict | None:
    """The newest audit row, signed by this session's user: what a backup records as the point it was made at."""
    at = head(conn)
    if not at or trust is None or trust.signer_key is None:
        return None
    return {**at, "signer": trust.signer,
            "sig": signing.sign(trust.signer_key, signing.ANCHOR, trust.store_id, f"backup:{trust.signer}", at["seq"],
                                at["hash"])}


def check_backup_heads(conn, store_path: Path, store_id: str, keys: dict[str, bytes]) -> list[str]:
    """A store whose log lacks the row a backup of it was made at has been rewound past that backup."""
    problems = []
    for entry in read_index(store_path):
        h = entry.get("head")
        if not isinstance(h, dict):
            continue
        try:
            signer, seq, hsh = str(h["signer"]), int(h["seq"]), str(h["hash"])
        except (KeyError, TypeError, ValueError, OverflowError):
            continue
        if signing.verifies(keys.get(signer), h.get("sig"), signing.ANCHOR, store_id, f"backup:{signer}", seq, hsh):
            problem = compare(conn, {"seq": seq, "hash": hsh}, f"the backup {Path(str(entry['path'])).name}")
            if problem:
                problems.append(problem)
    return problems


def _path(store_id: str) -> Path:
    return user_data_dir() / "anchors" / f"{store_id}.json"


def forget(store_id: str) -> None:
    """Drop what this workstation remembers of a store that no longer exists (the throwaway store of `score`)."""
    try:
        _path(store_id).unlink()
    except FileNotFoundError:
        pass


def head(conn) -> dict:
    row = conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    return {"seq": int(row[0]), "hash": row[1]} if row else {}


def compare(conn, anchor: dict, who: str) -> str | None:
    """A sentence when the store's audit log does not contain the row `anchor` names, else None."""
    if not anchor:
        return None
    try:
        seq = int(anchor["seq"])
        row = conn.execute("SELECT hash FROM audit_log WHERE id = ?", (seq,)).fetchone() if 0 < seq < 2**62 else None
    except (KeyError, TypeError, ValueError, OverflowError):
        return f"the audit anchor {who} holds is malformed"
    if row is None:
        return (f"the audit log ends before row {anchor['seq']}, which {who} saw: rows were deleted or an older "
                "copy of the store was put in place")
    if row[0] != anchor["hash"]:
        return f"audit row {anchor['seq']} is not the row {who} saw: the log was rewritten"
    return None


def _read(store_id: str) -> dict:
    try:
        data = json.loads(_path(store_id).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def check_workstation(conn, store_id: str, keys: dict[str, bytes]) -> list[str]:
    """Every anchor this computer holds for the store, checked against the log (signatures first)."""
    problems = []
    for user, a in _read(store_id).items():
        try:
            anchor = {"seq": int(a["seq"]), "hash": str(a["hash"])}
            signed = signing.verifies(keys.get(user), a.get("sig"), signing.ANCHOR, store_id, user, anchor["seq"],
                                      anchor["hash"])
        except (KeyError, TypeError, ValueError, AttributeError):
            signed = False
        if not signed:
            continue  # unsigned or by an unknown key: written by someone else, it proves nothing either way
        problem = compare(conn, anchor, f"{user} (on this computer)")
        if problem:
            problems.append(problem)
    return problems


def remember(store_id: str, user: str, key, anchor: dict, conn_check=None) -> None:
    """Best effort: a desk that cannot write its data folder still works (the keyring anchor remains)."""
    if not anchor or key is None:
        return
    path = _path(store_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = _read(store_id)
        keep = data.get(user)
        if isinstance(keep, dict) and keep.get("seq") is not None and conn_check is not None and \
                conn_check(keep) is not None:
            return   # the row this desk saw is gone or changed: its anchor stays, and so does the alarm
        data[user] = {**anchor, "sig": signing.sign(key, signing.ANCHOR, store_id, user, anchor["seq"], anchor["hash"])}
        fd, tmp = exclusive_temp(path.parent, path.name)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError:
        pass


def forget(store_id: str) -> None:
    """After a restore made through WardLens (itself audited in the restored store): the older log is expected."""
    try:
        _path(store_id).unlink(missing_ok=True)
    except OSError:
        pass
