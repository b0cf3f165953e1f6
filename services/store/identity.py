"""Identifying fields under the identity key, so that a role without it (the analyst) cannot read them from the file.

The identity key is a second 32-byte key, kept in the keyrings of care roles, administrators and the recovery key and
never in an analyst's (services.store.keyring). From it (HKDF-SHA256) come an AES-256-GCM key for the fields and an
HMAC-SHA256 key for the blind index of hospital numbers (exact lookup and uniqueness without the number in clear).

What it covers: a patient's hospital number, names and birth date (one sealed blob per patient, bound to the patient's
row id, so a blob moved to another patient does not open); and free text that may name someone: X-ray file names,
waiting-list and intervention notes, alert messages (each bound to the row's owner). docs/security.md lists what stays
readable (clinical fields, encounter numbers, dates of stay).

A store upgraded from before the identity key keeps these fields as plain columns until an administrator logs in
once (services.site.keyrings.seal_identities); `IdentityCodec` hides which of the two a store uses.
"""
from __future__ import annotations

import hmac
import os
import threading
import unicodedata
from bisect import bisect_left
from dataclasses import dataclass
from typing import Callable, Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from services.core.errors import WardLensError
from services.store.signing import b64, unb64

BLIND = "b1:"     # a blind-indexed hospital number in patients.mrn
SEALED = "e1:"    # a sealed free-text value
SEP = "\x1f"      # between the sealed fields of a patient (control characters never reach them: _clean)
META = "identity"           # meta row: "<epoch> <check>" once the store's identifying fields are sealed
GEN = "identity_gen"        # meta row: bumped by triggers on every change of a patient's identifying columns

# (table, column, owner column, which rows): free text that may name someone, sealed and bound to the row's owner
TEXT_FIELDS: tuple[tuple[str, str, str, str], ...] = (
    ("xray_studies", "source_name", "patient_id", "1"), ("waiting_admissions", "note", "patient_id", "1"),
    ("interventions", "note", "encounter_id", "1"), ("alerts", "message", "entity_id", "kind = 'risk'"))


class IdentityUnavailable(WardLensError):
    """This session holds no identity key (an analyst, or an account not yet given the key)."""


def _clean(text: str | None) -> str:
    return "".join(ch for ch in (text or "") if ch >= " " and not "\ud800" <= ch <= "\udfff")


def normal_number(mrn: str) -> str:
    return _clean(unicodedata.normalize("NFC", str(mrn))).strip()


def new_identity_key() -> bytearray:
    return bytearray(os.urandom(32))


class IdentityKey:
    def __init__(self, key: bytes | bytearray, epoch: int) -> None:
        self.epoch = int(epoch)
        self._raw = bytearray(key)
        self._aead = AESGCM(HKDF(hashes.SHA256(), 32, None, b"wardlens identity fields v1").derive(bytes(key)))
        self._mac = bytearray(HKDF(hashes.SHA256(), 32, None, b"wardlens identity index v1").derive(bytes(key)))

    @property
    def raw(self) -> bytearray:
        return self._raw

    def check(self) -> str:
        """A value stored in the store's meta row: tells a right key from a wrong one without revealing it."""
        return b64(hmac.digest(bytes(self._mac), b"wardlens identity key check", "sha256")[:16])

    def blind(self, mrn: str) -> str:
        return BLIND + hmac.digest(bytes(self._mac), normal_number(mrn).encode("utf-8"), "sha256")[:16].hex()

    def seal(self, aad: str, text: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, text.encode("utf-8"), f"{aad}|{self.epoch}".encode("utf-8"))

    def open(self, aad: str, blob: bytes) -> str:
        blob = bytes(blob)
        return self._aead.decrypt(blob[:12], blob[12:], f"{aad}|{self.epoch}".encode("utf-8")).decode("utf-8")

    def wipe(self) -> None:
        for buf in (self._raw, self._mac):
            for i in range(len(buf)):
                buf[i] = 0
        self._aead = None   # the cipher object keeps its own copy: dropped, so any later use fails instead of going on


@dataclass(frozen=True)
class Ident:
    """Who a patient is, as the care team sees it."""
    mrn: str
    given: str | None
    family: str | None
    birth: str | None

    @property
    def search(self) -> str:
        return search_key(self.family, self.given)

    @property
    def label(self) -> str:
        return f"{self.family or ''}, {self.given or ''}".strip(", ")


def search_key(family: str | None, given: str | None) -> str:
    """What the list orders by and name search matches: "family given", lower case."""
    return f"{family or ''} {given or ''}".strip().lower()


UNREADABLE_TEXT = "(unreadable: altered outside WardLens)"
UNREADABLE = Ident("?", None, None, None)   # a sealed blob that does not open (altered or moved): shown as such


class IdentityCodec:
    """How this store keeps identifying fields: sealed under the identity key, or (a store upgraded from before the
    key, until an administrator logs in) as plain columns. `key` is None for a session without the identity key."""

    def __init__(self, key: IdentityKey | None, sealed: bool) -> None:
        self.key, self.sealed = key, sealed

    @property
    def readable(self) -> bool:
        return not self.sealed or self.key is not None

    def _need(self) -> IdentityKey:
        if self.key is None:
            raise IdentityUnavailable("Names and hospital numbers are sealed under the identity key, which your "
                                      "account does not hold.")
        return self.key

    def number_key(self, mrn: str) -> str:
        """What patients.mrn holds for a hospital number: its blind index when sealed, else the number."""
        return self._need().blind(mrn) if self.sealed else normal_number(mrn)

    def patient_columns(self, pid: int, mrn: str, given: str | None, family: str | None, birth: str | None) -> dict:
        mrn, given, family = normal_number(mrn), _clean(given) or None, _clean(family) or None
        if not self.sealed:
            return {"mrn": mrn, "given_name": given, "family_name": family, "birth_date": birth, "ident": None,
                    "search_name": ""}
        k = self._need()
        text = SEP.join((mrn, given or "", family or "", birth or ""))
        return {"mrn": k.blind(mrn), "given_name": None, "family_name": None, "birth_date": None,
                "ident": k.seal(f"patient:{int(pid)}", text), "search_name": ""}

    def read_patient(self, pid: int, mrn: str, given, family, birth, ident) -> Ident:
        if not self.sealed:
            return Ident(str(mrn), given, family, birth)
        k = self._need()
        if ident is None:
            return UNREADABLE
        try:
            m, g, f, b = k.open(f"patient:{int(pid)}", ident).split(SEP)
        except (InvalidTag, ValueError, UnicodeDecodeError, TypeError):
            return UNREADABLE
        if k.blind(m) != mrn:   # the number the store matches on must be this blob's: rows swapped in the file
            return UNREADABLE
        return Ident(m, g or None, f or None, b or None)

    def read_all(self, rows: Iterable[tuple]) -> dict[int, Ident]:
        """read_patient over (id, mrn, given, family, birth, ident) rows, inlined: the directory reads every patient
        at first use (about 0.15 s per 70,000)."""
        if not self.sealed:
            return {pid: Ident(str(m), g, f, b) for pid, m, g, f, b, _ in rows}
        k = self._need()
        decrypt, tail, blind, out = k._aead.decrypt, b"|%d" % k.epoch, k.blind, {}
        for pid, key, _, _, _, blob in rows:
            try:
                blob = bytes(blob)
                m, g, f, b = decrypt(blob[:12], blob[12:], b"patient:%d%s" % (pid, tail)).decode("utf-8").split(SEP)
                out[pid] = Ident(m, g or None, f or None, b or None) if blind(m) == key else UNREADABLE
            except (InvalidTag, ValueError, UnicodeDecodeError, TypeError):
                out[pid] = UNREADABLE
        return out

    def text_in(self, table: str, column: str, owner: object, text: str) -> str:
        if not self.sealed or not text:
            return text
        return SEALED + b64(self._need().seal(f"{table}.{column}:{owner}", text))

    def text_out(self, table: str, column: str, owner: object, stored: str | None) -> str:
        """A free-text value for display; '' for a sealed one this session cannot (or may not) open."""
        if not stored or not stored.startswith(SEALED):
            return stored or ""
        if self.key is None:
            return ""
        try:
            return self.key.open(f"{table}.{column}:{owner}", unb64(stored[len(SEALED):]))
        except (InvalidTag, ValueError, UnicodeDecodeError):
            return UNREADABLE_TEXT


def stored_epoch(conn) -> tuple[int, str] | None:
    """(epoch, check) of the identity key the store's fields are sealed under; None while they are plain."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (META,)).fetchone()
    if not row:
        return None
    epoch, _, check = str(row[0]).partition(" ")
    try:
        return int(epoch), check
    except ValueError:
        return -1, check   # altered: no key matches it, so nothing is written in clear either


def sealed_rows(conn) -> bool:
    """Whether any patient is held sealed: the data itself says the store is sealed, whatever its meta row says."""
    return conn.execute("SELECT 1 FROM patients WHERE ident IS NOT NULL OR mrn LIKE 'b1:%' LIMIT 1").fetchone() \
        is not None


def generation(conn) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (GEN,)).fetchone()
    return int(row[0]) if row else 0


def reseal_all(c, old: IdentityCodec, new: IdentityCodec) -> int:
    """Every identifying field from `old` to `new` (sealing a plain store, or a rotation), inside the caller's
    transaction. Returns how many patients were written."""
    rows = c.execute("SELECT id, mrn, given_name, family_name, birth_date, ident FROM patients").fetchall()
    out, bad = [], []
    for pid, mrn, given, family, birth, ident in rows:
        who = old.read_patient(pid, mrn, given, family, birth, ident)
        if who is UNREADABLE:
            bad.append(pid)
            continue
        cols = new.patient_columns(pid, who.mrn, who.given, who.family, who.birth)
        out.append((cols["mrn"], cols["given_name"], cols["family_name"], cols["birth_date"], cols["ident"],
                    cols["search_name"], pid))
    if bad:   # re-sealing them under a new key would make the damage permanent and hide it: stop, name them
        raise IdentityUnavailable(f"{len(bad)} patients' sealed identities do not open (altered outside WardLens), "
                                  f"e.g. patient id {', '.join(map(str, bad[:5]))}: nothing was changed. Run verify "
                                  "and restore a backup, or correct those records, before rotating keys.")
    c.executemany("UPDATE patients SET mrn = ?, given_name = ?, family_name = ?, birth_date = ?, ident = ?, "
                  "search_name = ? WHERE id = ?", out)
    c.execute("DELETE FROM identity_cache")   # a snapshot under the old key must not outlive it (a kept copy would read it)
    for table, column, owner, which in TEXT_FIELDS:
        vals = c.execute(f"SELECT id, {owner}, {column} FROM {table} WHERE {which}").fetchall()
        moved = []
        for rid, o, v in vals:
            text = old.text_out(table, column, o, v)
            if text == UNREADABLE_TEXT:   # altered: never re-sealed as if it were the note
                raise IdentityUnavailable(f"A sealed {table.replace('_', ' ')} {column} (row {rid}) does not open "
                                          "(altered outside WardLens): nothing was changed. Run verify.")
            moved.append((new.text_in(table, column, o, text), rid))
        c.executemany(f"UPDATE {table} SET {column} = ? WHERE id = ?", moved)
    return len(out)


def identity_problems(conn, codec: IdentityCodec) -> list[str]:
    """For verify: in a sealed store, patients whose sealed identity does not open under this session's key (altered or
    moved between rows) and identifying columns written in clear (outside WardLens)."""
    if not codec.sealed:
        return []
    out = []
    clear = conn.execute("SELECT count(*) FROM patients WHERE given_name IS NOT NULL OR family_name IS NOT NULL OR "
                         "birth_date IS NOT NULL OR ident IS NULL OR mrn NOT LIKE 'b1:%'").fetchone()[0]
    if clear:
        out.append(f"{clear} patients have identifying fields in clear or no sealed identity (written outside WardLens)")
    if codec.key is not None:
        bad = [pid for pid, mrn, g, f, b, ident in conn.execute(
            "SELECT id, mrn, given_name, family_name, birth_date, ident FROM patients WHERE ident IS NOT NULL")
            if codec.read_patient(pid, mrn, g, f, b, ident) is UNREADABLE]
        if bad:
            out.append(f"{len(bad)} patients' sealed identities do not open (altered, or moved between records), "
                       f"e.g. patient id {', '.join(map(str, bad[:5]))}")
    return out


class Directory:
    """Who every patient is, in memory, for a session that may see it: lookups, the list's name order and name and
    number prefix search (the store cannot order or search what it holds sealed).

    Built from every patient's sealed blob (about 0.4 s per 70,000 patients) when the store's generation counter
    (bumped by triggers on every identifying change) differs from what this directory holds; once built, a sealed
    snapshot of it is kept in the store (table identity_cache, under the identity key, bound to the generation) so
    the next login reads one blob instead (about 0.05 s). Patched in place by this session's own changes. The list
    reads names from here; a patient's record and report read that patient's own blob (Session.identity_exact)."""

    def __init__(self, codec: IdentityCodec) -> None:
        self.codec = codec
        self._lock = threading.RLock()
        self._gen = -1
        self._raw: dict[int, str] = {}        # pid -> "mrn SEP given SEP family SEP birth", parsed on demand
        self._by_id: dict[int, Ident] = {}    # parsed (or patched) entries
        self._order: list[int] = []           # by (search name, number)
        self._search: list[str] = []          # search names, parallel to _order (bisect for name prefixes)
        self._numbers: list[str] = []         # numbers in order, and their patients
        self._num_pids: list[int] = []
        self._rank: dict[int, int] = {}
        self._stale_index = False

    # --- loading --------------------------------------------------------------------------------
    def refresh(self, conn) -> None:
        with self._lock:
            gen = generation(conn)
            if gen == self._gen:
                return
            if not self._load_snapshot(conn, gen):
                cols = "id, mrn, NULL, NULL, NULL, ident" if self.codec.sealed else \
                    "id, mrn, given_name, family_name, birth_date, NULL"
                self._set(self.codec.read_all(conn.execute(f"SELECT {cols} FROM patients")), gen)
                self._save_snapshot(conn, gen)

    def _set(self, by_id: dict[int, Ident], gen: int) -> None:
        self._by_id, self._raw, self._gen = by_id, {}, gen
        names = sorted([(w.search, w.mrn, pid) for pid, w in by_id.items()])
        self._order = [pid for _, _, pid in names]
        self._search = [n for n, _, _ in names]
        numbers = sorted([(mrn, pid) for _, mrn, pid in names])
        self._numbers, self._num_pids = [m for m, _ in numbers], [p for _, p in numbers]
        self._rank = dict(zip(self._order, range(len(self._order))))
        self._stale_index = False

    def _aad(self, gen: int) -> str:
        return f"directory:{gen}"

    def _save_snapshot(self, conn, gen: int) -> None:
        if not self.codec.sealed or self.codec.key is None:
            return
        records = RS.join(SEP.join((w.mrn, w.given or "", w.family or "", w.birth or ""))
                          for w in (self._by_id[p] for p in self._order))
        body = GS.join((RS.join(map(str, self._order)), records, RS.join(map(str, self._num_pids))))
        blob = self.codec.key.seal(self._aad(gen), body)
        if getattr(conn, "in_transaction", False):
            return   # never commit a caller's transaction for a cache
        try:
            # Its own write transaction: the generation and the key's epoch are checked under the write lock, so a
            # snapshot under a key a rotation has just replaced can never land after the rotation removed the old one.
            conn.execute("BEGIN IMMEDIATE")
            try:
                current = stored_epoch(conn)
                if generation(conn) == gen and current is not None and current[0] == self.codec.key.epoch:
                    conn.execute("INSERT INTO identity_cache (id, gen, blob) VALUES (1, ?, ?) ON CONFLICT(id) DO "
                                 "UPDATE SET gen = excluded.gen, blob = excluded.blob", (gen, blob))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except Exception:  # noqa: BLE001 - a cache: a store that cannot take it (read-only, busy) just rebuilds
            pass

    def _load_snapshot(self, conn, gen: int) -> bool:
        if not self.codec.sealed or self.codec.key is None:
            return False
        try:
            row = conn.execute("SELECT gen, blob FROM identity_cache WHERE id = 1").fetchone()
        except Exception:  # noqa: BLE001 - a cache: unreadable means rebuild
            return False
        if not row or row[0] != gen:
            return False
        try:
            pids, records, by_number = self.codec.key.open(self._aad(gen), row[1]).split(GS)
            order = [int(x) for x in pids.split(RS)] if pids else []
            recs = records.split(RS) if records else []
            num_pids = [int(x) for x in by_number.split(RS)] if by_number else []
        except (InvalidTag, ValueError, UnicodeDecodeError, TypeError):
            return False
        if len(order) != len(recs) or len(num_pids) != len(order):
            return False
        self._gen, self._by_id, self._order = gen, {}, order
        self._raw = dict(zip(order, recs))
        self._search = [_search_of(r) for r in recs]
        self._num_pids = num_pids
        self._numbers = [self._raw[p].partition(SEP)[0] for p in num_pids]
        self._rank = dict(zip(order, range(len(order))))
        self._stale_index = False
        return True

    def patched(self, changes: Iterable[tuple[int, Ident]], gen_before: int, gen_after: int) -> None:
        """This session's own change (the generation read inside its transaction, before and after): patched in
        place when nothing else changed meanwhile, else the directory reloads at its next use."""
        with self._lock:
            if self._gen != gen_before:
                self._gen = -1
                return
            for pid, who in changes:
                self._raw.pop(pid, None)
                self._by_id[pid] = who
            self._gen, self._stale_index = gen_after, True

    def _index(self) -> None:
        if self._stale_index:
            self._set({pid: self._get(pid) for pid in set(self._raw) | set(self._by_id)}, self._gen)

    # --- reading --------------------------------------------------------------------------------
    def _get(self, pid: int) -> Ident | None:
        who = self._by_id.get(pid)
        if who is None and pid in self._raw:
            m, g, f, b = self._raw.pop(pid).split(SEP)
            who = self._by_id[pid] = Ident(m, g or None, f or None, b or None)
        return who

    def get(self, pid: int) -> Ident | None:
        with self._lock:
            return self._get(pid)

    def order(self) -> list[int]:
        with self._lock:
            self._index()
            return self._order

    def rank_key(self) -> Callable[[int], int]:
        with self._lock:
            self._index()
            rank, last = self._rank, len(self._rank)
        return lambda pid: rank.get(pid, last)

    def name_prefix(self, prefix: str) -> set[int]:
        with self._lock:
            self._index()
            return _prefixed(self._search, self._order, prefix)

    def number_prefix(self, prefix: str) -> set[int]:
        with self._lock:
            self._index()
            return _prefixed(self._numbers, self._num_pids, normal_number(prefix))


def _prefixed(keys: list[str], pids: list[int], prefix: str) -> set[int]:
    """The patients whose key (sorted `keys`, parallel to `pids`) starts with `prefix`."""
    i, out = bisect_left(keys, prefix), set()
    while i < len(keys) and keys[i].startswith(prefix):
        out.add(pids[i])
        i += 1
    return out


RS, GS = "\x1e", "\x1d"   # record and group separators of the snapshot (never inside a field: _clean)


def _search_of(record: str) -> str:
    _, given, family, _ = record.split(SEP)
    return search_key(family, given)
