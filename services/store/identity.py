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
    return unicodedata.normalize("NFC", str(mrn)).strip()


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


@dataclass(frozen=True)
class Ident:
    """Who a patient is, as the care team sees it."""
    mrn: str
    given: str | None
    family: str | None
    birth: str | None

    @property
    def search(self) -> str:
        return f"{self.family or ''} {self.given or ''}".strip().lower()

    @property
    def label(self) -> str:
        return f"{self.family or ''}, {self.given or ''}".strip(", ")


UNREADABLE = Ident("?", None, None, None)   # a sealed blob that does not open (altered or moved): shown as such


class IdentityCodec:
    """How this store keeps identifying fields: sealed under the identity key, or (a store upgraded from before the
    key, until an administrator logs in) as plain columns. `key` is None for a session without the identity key."""

    def __init__(self, key: IdentityKey | None, sealed: bool) -> None:
        self.key, self.sealed = key, sealed

    @classmethod
    def for_store(cls, conn, key: IdentityKey | None) -> "IdentityCodec":
        return cls(key, stored_epoch(conn) is not None)

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
        except (InvalidTag, ValueError, UnicodeDecodeError):
            return UNREADABLE
        return Ident(m, g or None, f or None, b or None)

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
            return "(unreadable: altered outside WardLens)"


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


def generation(conn) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (GEN,)).fetchone()
    return int(row[0]) if row else 0


def reseal_all(c, old: IdentityCodec, new: IdentityCodec) -> int:
    """Every identifying field from `old` to `new` (sealing a plain store, or a rotation), inside the caller's
    transaction. Returns how many patients were written."""
    rows = c.execute("SELECT id, mrn, given_name, family_name, birth_date, ident FROM patients").fetchall()
    out = []
    for pid, mrn, given, family, birth, ident in rows:
        who = old.read_patient(pid, mrn, given, family, birth, ident)
        cols = new.patient_columns(pid, who.mrn, who.given, who.family, who.birth)
        out.append((cols["mrn"], cols["given_name"], cols["family_name"], cols["birth_date"], cols["ident"],
                    cols["search_name"], pid))
    c.executemany("UPDATE patients SET mrn = ?, given_name = ?, family_name = ?, birth_date = ?, ident = ?, "
                  "search_name = ? WHERE id = ?", out)
    for table, column, owner, which in TEXT_FIELDS:
        vals = c.execute(f"SELECT rowid, {owner}, {column} FROM {table} WHERE {which}").fetchall()
        c.executemany(f"UPDATE {table} SET {column} = ? WHERE rowid = ?",
                      [(new.text_in(table, column, o, old.text_out(table, column, o, v)), rid) for rid, o, v in vals])
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
    number prefix search (the store cannot order or search what it holds sealed). Built once (about 0.1 s per
    70,000 patients), patched by this session's own changes, rebuilt when the store's generation counter shows a
    change made elsewhere (another process, or a bulk import)."""

    def __init__(self, codec: IdentityCodec) -> None:
        self.codec = codec
        self._lock = threading.RLock()
        self._by_id: dict[int, Ident] = {}
        self._gen = -1
        self._order: list[int] | None = None
        self._names: list[tuple[str, str, int]] = []
        self._numbers: list[tuple[str, int]] = []
        self._rank: dict[int, int] = {}

    def refresh(self, conn) -> None:
        with self._lock:
            gen = generation(conn)
            if gen == self._gen:
                return
            codec, by_id = self.codec, {}
            for pid, mrn, given, family, birth, ident in conn.execute(
                    "SELECT id, mrn, given_name, family_name, birth_date, ident FROM patients"):
                by_id[pid] = codec.read_patient(pid, mrn, given, family, birth, ident)
            self._by_id, self._gen, self._order = by_id, gen, None

    def patched(self, changes: Iterable[tuple[int, Ident]], gen_before: int, gen_after: int) -> None:
        """This session's own change (the generation read inside its transaction, before and after): patched in
        place when nothing else changed meanwhile, else the directory reloads at its next use."""
        with self._lock:
            if self._gen != gen_before:
                self._gen = -1
                return
            for pid, who in changes:
                self._by_id[pid] = who
            self._gen, self._order = gen_after, None

    def _index(self) -> None:
        if self._order is not None:
            return
        names = sorted((who.search, who.mrn, pid) for pid, who in self._by_id.items())
        self._names = names
        self._order = [pid for _, _, pid in names]
        self._rank = {pid: i for i, pid in enumerate(self._order)}
        self._numbers = sorted((who.mrn, pid) for pid, who in self._by_id.items())

    def get(self, pid: int) -> Ident | None:
        with self._lock:
            return self._by_id.get(pid)

    def order(self) -> list[int]:
        with self._lock:
            self._index()
            return self._order or []

    def rank_key(self) -> Callable[[int], int]:
        with self._lock:
            self._index()
            rank, last = self._rank, len(self._rank)
        return lambda pid: rank.get(pid, last)

    def name_prefix(self, prefix: str) -> set[int]:
        with self._lock:
            self._index()
            return _prefixed(self._names, prefix, lambda t: t[0], lambda t: t[2])

    def number_prefix(self, prefix: str) -> set[int]:
        with self._lock:
            self._index()
            return _prefixed(self._numbers, normal_number(prefix), lambda t: t[0], lambda t: t[1])


def _prefixed(items: list, prefix: str, key, value) -> set[int]:
    i = bisect_left(items, (prefix,))
    out = set()
    while i < len(items) and key(items[i]).startswith(prefix):
        out.add(value(items[i]))
        i += 1
    return out

