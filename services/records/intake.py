"""Writing records that come from a hospital's systems (FHIR, HL7 v2) into the store, idempotently: the one place that
matches a patient or an encounter to what the store already holds and says whether it was imported, updated or
unchanged. Shared by services.records.fhir_import and services.records.adt.

A patient is the same patient when any of its identifiers (system + value) is already known, or when its hospital
number is; an encounter when any of its identifiers is (FHIR Encounter.identifier or the resource id, the HL7 visit
number). Identifier values are kept as blind indexes, like hospital numbers: a visit number identifies as much.
Whether anything changed is decided by a digest of what the source said, so the same file imported twice changes
nothing and a later export of the same patient updates the record instead of adding a second one."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from services.site.session import Session
from services.records.validation import age_band_at, plausible_birth
from services.store.dialect import writer_lock

MAX_LISTED = 10_000
UNKNOWN_WARD = "place not a ward: "
DESK_EDITED = "desk:"   # source_digest prefix of a stay changed on the desk after its import (never overwritten)
FIRST_SOURCE_NUMBER = 900_000_001   # store encounter numbers for imported stays start above the UCI table's range


@dataclass
class Rejection:
    file: str
    where: str          # "entry 12", "line 7", "message 3"
    reason: str


@dataclass
class RecordsReport:
    """Counts per kind and outcome (imported, updated, unchanged), every rejection with file, place and reason,
    resource or message types skipped, and notes (a ward the source names that WardLens does not have)."""
    fmt: str
    counts: dict[str, Counter] = field(default_factory=dict)
    rejected: list[Rejection] = field(default_factory=list)
    rejected_total: int = 0
    skipped: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    # store encounter id -> (the source's encounter id or visit number, the patient's number): what `score --input`
    # writes beside each score; held for the run only, never stored
    sources: dict[int, tuple[str, str]] = field(default_factory=dict)

    def add(self, kind: str, outcome: str, n: int = 1) -> None:
        self.counts.setdefault(kind, Counter())[outcome] += n

    def reject(self, file: str, where: str, reason: str) -> None:
        self.rejected_total += 1
        if len(self.rejected) < MAX_LISTED:
            self.rejected.append(Rejection(file, where, reason))

    @property
    def changed(self) -> int:
        return sum(c["imported"] + c["updated"] for c in self.counts.values())

    def lines(self) -> list[str]:
        out = [f"{kind}: {c['imported']:,} imported, {c['updated']:,} updated, {c['unchanged']:,} unchanged"
               for kind, c in self.counts.items()]
        if self.skipped:
            out.append("skipped: " + ", ".join(f"{n:,} {what}" for what, n in self.skipped.most_common()))
        wards = [(w, n) for w, n in self.notes.most_common() if w.startswith(UNKNOWN_WARD)]
        out += [f"note: {what} ({n:,})" for what, n in self.notes.most_common() if not what.startswith(UNKNOWN_WARD)]
        if wards:
            names = ", ".join(w[len(UNKNOWN_WARD):] for w, _ in wards[:5]) + (f" and {len(wards) - 5} more"
                                                                             if len(wards) > 5 else "")
            out.append(f"note: {sum(n for _, n in wards):,} records name a place that is no ward set up in WardLens "
                       f"({names}): a new stay there has no ward, an update keeps the ward it had (an administrator "
                       "adds the wards under Wards)")
        out.append(f"rejected: {self.rejected_total:,}")
        return out

    def summary(self) -> str:
        parts = [f"{c['imported'] + c['updated']} {kind} imported or updated" for kind, c in self.counts.items()
                 if c['imported'] + c['updated']]
        return f"{self.fmt}: " + (", ".join(parts) or "nothing new") + f", {self.rejected_total} rejected"


def next_patient_id(c) -> int:
    """A new patient's id: never one a merged-away patient had (its audit rows and reports name it). On the server
    the caller's transaction holds the patients lock from here on, so two desks never take the same id."""
    writer_lock(c, "patients")
    top = c.execute("SELECT coalesce(max(id), 0) FROM patients").fetchone()[0]
    retired = c.execute("SELECT value FROM meta WHERE key = 'retired_patient_id'").fetchone()
    return max(int(top), int(retired[0]) if retired else 0) + 1


def patient_problem(mrn: str, given: str, family: str, birth: str | None) -> str | None:
    """Why a patient from a source cannot be kept, or None: the desk's own limits on numbers, names and dates."""
    if not mrn.strip():
        return "a patient without any identifier: nothing names this patient"
    if len(mrn) > 64:
        return "its hospital number is longer than 64 characters"
    if len(given) > 80 or len(family) > 80:
        return "a name is longer than 80 characters"
    if birth:
        try:
            born = dt.date.fromisoformat(birth[:10])
        except ValueError:
            return f"its birth date {birth[:20]!r} is not a date"
        if not plausible_birth(born):
            return f"its birth date {born.isoformat()} is in the future or before 1890"
    return None


def stay_problem(start: dt.datetime | None, end: dt.datetime | None, start_text: str, end_text: str) -> str | None:
    """Why a stay's dates cannot be kept, or None."""
    if start_text and start is None:
        return f"its start {start_text[:30]!r} is not a date and time"
    if end_text and end is None:
        return f"its end {end_text[:30]!r} is not a date and time"
    now = dt.datetime.now()
    for when in (start, end):
        if when is not None and (when.year < 1900 or when > now + dt.timedelta(days=1)):
            return f"{when:%Y-%m-%d %H:%M} is before 1900 or in the future"
    if start and end and end < start:
        return f"it ends ({end:%Y-%m-%d %H:%M}) before it starts ({start:%Y-%m-%d %H:%M})"
    return None


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def parse_time(text: str) -> dt.datetime | None:
    """FHIR dateTime ("2019-03-01T10:00:00+01:00", "2019-03-01") or HL7 TS ("201903011000+0100") as local wall time
    (the zone is dropped: the census works in the site's local time)."""
    t = (text or "").strip()
    if not t:
        return None
    try:
        if "-" in t[:5]:
            when = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
        else:
            m = re.fullmatch(r"(\d{8,14})(?:\.\d+)?(?:([+-])(\d{2})(\d{2}))?", t)
            fmt = {8: "%Y%m%d", 10: "%Y%m%d%H", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}.get(len(m.group(1))) if m else None
            if fmt is None:
                return None
            when = dt.datetime.strptime(m.group(1), fmt)
            if m.group(2):
                sign = 1 if m.group(2) == "+" else -1
                when = when.replace(tzinfo=dt.timezone(sign * dt.timedelta(hours=int(m.group(3)),
                                                                            minutes=int(m.group(4)))))
        # a time with its offset is an instant: shown and ordered in the site's local time (a clock change or a
        # feed in another zone never reorders events)
        return when.astimezone().replace(tzinfo=None) if when.tzinfo is not None else when
    except (ValueError, OverflowError):
        return None


def iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(sep=" ", timespec="minutes") if value else None


_MISSING = object()


class Conflict(Exception):
    """The identifiers of one record name two different patients (or encounters) in the store."""


class Intake:
    """Lookups for one import transaction `c`: known identifiers, hospital numbers, wards and beds."""

    def __init__(self, session: Session, c, report: RecordsReport) -> None:
        self.s, self.c, self.report, self.codec = session, c, report, session.codec
        # On the server, imports and feeds from several desks run one at a time (each reads the identifiers and
        # numbers below and writes against them); the locks are taken in one order everywhere (dialect.writer_lock).
        for what in ("records", "patients", "encounters"):
            writer_lock(c, what, long_wait=True)
        self.now = dt.datetime.now().isoformat(sep=" ", timespec="seconds")
        self.ids = {(k, s, v): ref for k, s, v, ref in c.execute("SELECT kind, system, value_key, ref FROM identifiers")}
        self.mrns = {key: pid for pid, key in c.execute("SELECT id, mrn FROM patients")}
        self.wards = {name.lower(): wid for wid, name in c.execute("SELECT id, name FROM wards")}
        self.beds = {(w, label.lower()): b for b, w, label in c.execute("SELECT id, ward_id, label FROM beds")}
        self.journal: list[tuple[dict, object, object]] = []   # (cache, key, value before): undone with a savepoint
        self._by_value: dict[str, dict[int, set[str]]] | None = None
        self.next_nbr = max(FIRST_SOURCE_NUMBER,
                            c.execute("SELECT coalesce(max(encounter_nbr), 0) + 1 FROM encounters").fetchone()[0])

    def cache(self, cache: dict, key: object, value: object) -> None:
        self.journal.append((cache, key, cache.get(key, _MISSING)))
        cache[key] = value

    def uncache(self, cache: dict, key: object) -> None:
        self.journal.append((cache, key, cache.get(key, _MISSING)))
        cache.pop(key, None)

    def retire_patient_id(self, pid: int) -> None:
        """A merged-away patient's id is never given to a new patient (audit rows and reports name it)."""
        row = self.c.execute("SELECT value FROM meta WHERE key = 'retired_patient_id'").fetchone()
        top = max(int(pid), int(row[0]) if row else 0)
        self.c.execute("INSERT INTO meta (key, value) VALUES ('retired_patient_id', ?) ON CONFLICT (key) DO UPDATE "
                       "SET value = excluded.value", (str(top),))

    def savepoint(self) -> int:
        return len(self.journal)

    def rollback_to(self, mark: int) -> None:
        """Undo the in-memory lookups written since `mark`, as ROLLBACK TO undoes the rows."""
        while len(self.journal) > mark:
            cache, key, before = self.journal.pop()
            if before is _MISSING:
                cache.pop(key, None)
            else:
                cache[key] = before

    # --- identifiers ------------------------------------------------------------------------------------------
    def _key(self, value: str) -> str:
        return self.codec.number_key(value)

    def find(self, kind: str, identifiers: list[tuple[str, str]]) -> int | None:
        """The one stored record these identifiers name; Conflict when they name two: never merge on a guess."""
        refs = {ref for system, value in identifiers if (ref := self.ids.get((kind, system, self._key(value))))
                is not None}
        if len(refs) > 1:
            raise Conflict(f"its identifiers name {len(refs)} different {kind}s in the store; nothing of it was "
                           "imported (an administrator merges the records first)")
        return refs.pop() if refs else None

    def remember(self, kind: str, identifiers: list[tuple[str, str]], ref: int) -> None:
        for system, value in identifiers:
            key = (kind, system, self._key(value))
            if self.ids.get(key) != ref:
                self.c.execute("INSERT INTO identifiers (kind, system, value_key, ref) VALUES (?,?,?,?) "
                               "ON CONFLICT (kind, system, value_key) DO UPDATE SET ref = excluded.ref", (*key, ref))
                self.cache(self.ids, key, ref)
                self._by_value = None

    # --- patients ---------------------------------------------------------------------------------------------
    def _holders(self, value_key: str) -> dict[int, set[str]]:
        """Stored patients with an identifier of this value, and under which systems (for the number check)."""
        if self._by_value is None:
            self._by_value = {}
            for (kind, system, value), ref in self.ids.items():
                if kind == "patient":
                    self._by_value.setdefault(value, {}).setdefault(ref, set()).add(system)
        return self._by_value.get(value_key, {})

    def patient(self, identifiers: list[tuple[str, str]], mrn: str, given: str, family: str, birth: str | None,
                sex: str | None, deceased: bool | None, match_number: bool = True) -> tuple[int, str]:
        """(patient id, "imported" | "updated" | "unchanged"); None/empty fields keep what the store has.

        `match_number`: the number is a medical record number (MR), so a stored patient with the same hospital number is
        this patient, unless that patient holds the number under another system (two hospitals' 12345 are two
        people). A number that is not an MR is shown, never matched on, and may not be another patient's number."""
        given, family = given.strip(), family.strip()
        problem = patient_problem(mrn, given, family, birth)
        if problem:
            raise Conflict(problem)
        pid = self.find("patient", identifiers)
        number = self._key(mrn)
        by_number = self.mrns.get(number) or self.ids.get(("patient", "merged-mrn", number))
        if by_number is not None and by_number != pid:
            systems = {sy for sy, _v in identifiers}
            other = self._holders(number).get(by_number, set()) - systems - {"merged-mrn"}
            if pid is not None or not match_number or other:
                raise Conflict(f"its number {mrn!r} is another patient's hospital number in the store"
                               + (f" (from {sorted(other)[0]})" if other else "") + "; nothing of it was imported "
                               "(an administrator merges or corrects the records first)")
            pid = by_number
        # keyed like a blind index: a plain hash of name and birth date would let a role without names find them
        said = self._key(digest([given, family, birth, sex, deceased]))
        if pid is None:
            pid = next_patient_id(self.c)
            cols = self.codec.patient_columns(pid, mrn, given or None, family or None, birth or None)
            self.c.execute("INSERT INTO patients (id, mrn, given_name, family_name, birth_date, ident, sex, race, "
                           "search_name, deceased, source_digest, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           (pid, cols["mrn"], cols["given_name"], cols["family_name"], cols["birth_date"], cols["ident"],
                            sex or "Unknown/Invalid", "?", "", int(bool(deceased)), said, self.now, self.now))
            self.cache(self.mrns, cols["mrn"], pid)
            self.remember("patient", identifiers, pid)
            return pid, "imported"
        self.remember("patient", identifiers, pid)
        row = self.c.execute("SELECT mrn, given_name, family_name, birth_date, ident, sex, deceased, source_digest "
                             "FROM patients WHERE id = ?", (pid,)).fetchone()
        if row[7] == said:
            return pid, "unchanged"
        old = self.codec.read_patient(pid, *row[:5])
        if old.mrn == "?":   # the stored record does not open (altered): leave it for `verify` to report
            self.report.notes["a stored patient record that does not open was left as it was"] += 1
            return pid, "unchanged"
        cols = self.codec.patient_columns(pid, old.mrn, given or old.given, family or old.family, birth or old.birth)
        self.c.execute("UPDATE patients SET given_name=?, family_name=?, birth_date=?, ident=?, sex=?, deceased=?, "
                       "source_digest=?, updated_at=? WHERE id = ?",
                       (cols["given_name"], cols["family_name"], cols["birth_date"], cols["ident"],
                        sex or row[5], int(bool(deceased)) if deceased is not None else row[6], said, self.now, pid))
        return pid, "updated"

    def free_bed(self, bed: int | None, eid: int | None = None) -> int | None:
        """The bed, unless another inpatient is in it (noted: the census shows the patient on the ward without a bed)."""
        if bed is None:
            return None
        if self.c.execute("SELECT 1 FROM encounters WHERE bed_id = ? AND status = 'inpatient' AND id IS DISTINCT FROM ?",
                          (bed, eid)).fetchone():
            self.report.notes["a bed the source named was already taken; the patient is on the ward without a bed"] += 1
            return None
        return bed

    # --- places -----------------------------------------------------------------------------------------------
    def place(self, names: list[str], bed: str = "") -> tuple[int | None, int | None]:
        """(ward id, bed id) for location names from most general to most specific; a ward name WardLens does not
        have is noted once per name (an administrator adds it under Wards)."""
        ward = next((self.wards[n.lower()] for n in reversed(names) if n and n.lower() in self.wards), None)
        if ward is None:
            for n in names[:1]:
                if n:
                    self.report.notes[UNKNOWN_WARD + repr(n)] += 1
            return None, None
        labels = [bed] if bed else list(reversed(names))
        return ward, next((self.beds[(ward, b.lower())] for b in labels if b and (ward, b.lower()) in self.beds), None)

    # --- encounters -------------------------------------------------------------------------------------------
    def new_encounter_number(self) -> int:
        n, self.next_nbr = self.next_nbr, self.next_nbr + 1
        return n

    def age_band(self, pid: int, admit: dt.datetime | None) -> str:
        row = self.c.execute("SELECT id, mrn, given_name, family_name, birth_date, ident FROM patients WHERE id = ?",
                             (pid,)).fetchone()
        birth = self.codec.read_patient(*row).birth if row else None
        try:
            return age_band_at(dt.date.fromisoformat(str(birth)[:10]), (admit or dt.datetime.now()).date())
        except (TypeError, ValueError):
            return ""

    def history(self, patient_ids: set[int]) -> None:
        """number_outpatient / _emergency / _inpatient of every imported stay of these patients: the patient's
        encounters of each class in the year before the admission, counted from the store (the UCI table's
        definition). Stays from the UCI table keep the counts their source reported."""
        for pid in patient_ids:
            rows = self.c.execute("SELECT id, class, admit_time, source_digest FROM encounters WHERE patient_id = ? "
                                  "AND coalesce(source_status, '') != 'cancelled'", (pid,)).fetchall()
            for eid, _cls, admit, src in rows:
                if src is None or not admit:
                    continue
                start = (dt.datetime.fromisoformat(admit) - dt.timedelta(days=365)).isoformat(sep=" ")
                n = Counter(cls for other, cls, when, _ in rows if other != eid and when and start <= when < admit)
                self.c.execute("UPDATE encounters SET number_outpatient=?, number_emergency=?, number_inpatient=? "
                               "WHERE id = ?", (n["ambulatory"], n["emergency"], n["inpatient"], eid))
