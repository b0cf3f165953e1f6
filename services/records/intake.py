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
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from services.site.session import Session
from services.records.validation import age_band_at

MAX_LISTED = 10_000
UNKNOWN_WARD = "place not a ward: "
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
            out.append(f"note: {sum(n for _, n in wards):,} stays name a place that is no ward set up in WardLens "
                       f"({names}); they have no ward (an administrator adds wards under Wards)")
        out.append(f"rejected: {self.rejected_total:,}")
        return out

    def summary(self) -> str:
        parts = [f"{c['imported'] + c['updated']} {kind} imported or updated" for kind, c in self.counts.items()
                 if c['imported'] + c['updated']]
        return f"{self.fmt}: " + (", ".join(parts) or "nothing new") + f", {self.rejected_total} rejected"


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
            return dt.datetime.fromisoformat(t.replace("Z", "+00:00")).replace(tzinfo=None)
        digits = t.split("+")[0].split("-")[0].split(".")[0]
        fmt = {8: "%Y%m%d", 10: "%Y%m%d%H", 12: "%Y%m%d%H%M", 14: "%Y%m%d%H%M%S"}.get(len(digits))
        return dt.datetime.strptime(digits, fmt) if fmt else None
    except ValueError:
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
        self.now = dt.datetime.now().isoformat(sep=" ", timespec="seconds")
        self.ids = {(k, s, v): ref for k, s, v, ref in c.execute("SELECT kind, system, value_key, ref FROM identifiers")}
        self.mrns = {key: pid for pid, key in c.execute("SELECT id, mrn FROM patients")}
        self.wards = {name.lower(): wid for wid, name in c.execute("SELECT id, name FROM wards")}
        self.beds = {(w, label.lower()): b for b, w, label in c.execute("SELECT id, ward_id, label FROM beds")}
        self.journal: list[tuple[dict, object, object]] = []   # (cache, key, value before): undone with a savepoint
        self.next_nbr = max(FIRST_SOURCE_NUMBER,
                            c.execute("SELECT coalesce(max(encounter_nbr), 0) + 1 FROM encounters").fetchone()[0])

    def cache(self, cache: dict, key: object, value: object) -> None:
        self.journal.append((cache, key, cache.get(key, _MISSING)))
        cache[key] = value

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

    # --- patients ---------------------------------------------------------------------------------------------
    def patient(self, identifiers: list[tuple[str, str]], mrn: str, given: str, family: str, birth: str | None,
                sex: str | None, deceased: bool | None) -> tuple[int, str]:
        """(patient id, "imported" | "updated" | "unchanged"); None/empty fields keep what the store has."""
        given, family = given.strip(), family.strip()
        pid = self.find("patient", identifiers)
        if mrn:   # the same hospital number, or one an A40 merged into another patient
            by_number = self.mrns.get(self._key(mrn)) or self.ids.get(("patient", "merged-mrn", self._key(mrn)))
            if pid is not None and by_number is not None and by_number != pid:
                raise Conflict("its identifiers and its hospital number name two different patients in the store; "
                               "nothing of it was imported (an administrator merges the records first)")
            pid = pid if pid is not None else by_number
        said = digest([given, family, birth, sex, deceased])
        if pid is None:
            pid = int(self.c.execute("SELECT coalesce(max(id), 0) + 1 FROM patients").fetchone()[0])
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
