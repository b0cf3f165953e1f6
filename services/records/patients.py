"""Patient data: search, the patient record, adding and editing, and the UCI-schema view for models.

Every read and change is audited; roles are enforced here. Analysts get records without names or
birth dates.
"""
from __future__ import annotations

import datetime as dt
from itertools import islice
from typing import Any, Iterable

import numpy as np
import pandas as pd

from models.domain import Bed, Diagnosis, Encounter, LabResult, Medication, Patient, PatientRow, Permission, Ward
from services.store import audit
from services.store.identity import Directory, Ident, generation, normal_number
from services.core.errors import EditConflict, ValidationError
from services.store.dialect import writer_lock
from services.site.session import Session
from services.records.codes import codes_for_title, diagnosis_label, diagnosis_title, looks_like_words, model_code
from services.records.intake import DESK_EDITED, next_patient_id
from services.records.uci_schema import ENCOUNTER_COLUMNS, MEDICATIONS
from services.records.validation import age_band_at, diagnosis_system, validate_encounter, validate_patient

SEARCH_LIMIT = 100_000
# Matches above which a page walks the name order in chunks instead of collecting and sorting every match: collecting
# costs about one row per match (~0.3 ms per 1,000), a walk a few index probes per patient of the chunk; they cross
# near 20,000 at 66,000 patients (docs/performance.md).
BROAD = 20_000
CHUNK = 2_000   # patients per query when rows are fetched by id


def _iso(v: dt.datetime | dt.date | None) -> str | None:
    return v.isoformat(sep=" ", timespec="minutes") if isinstance(v, dt.datetime) else (v.isoformat() if v else None)


def _dt(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def _now() -> str:
    return dt.datetime.now().isoformat(sep=" ", timespec="seconds")


LIST_SQL = """
SELECT p.id, p.sex, coalesce(e.age_band, ''), coalesce(w.name, ''),
       coalesce(e.admit_time, ''), p.encounter_count, coalesce(d.code, ''), CASE WHEN e.status = 'inpatient' THEN 1 ELSE 0 END
FROM patients p
LEFT JOIN encounters e ON e.id = p.latest_encounter_id
LEFT JOIN wards w ON w.id = e.ward_id
LEFT JOIN diagnoses d ON d.encounter_id = e.id AND d.position = 1
"""


def _prefix_range(text: str) -> tuple[str, str]:
    """[text, text + max char): a prefix match that SQLite answers from an index, unlike LIKE."""
    return text, text + "\U0010ffff"


class PatientService:
    def __init__(self, session: Session) -> None:
        self.s = session

    @property
    def _c(self):
        return self.s.db.conn

    def _require_read(self) -> None:
        self.s.require(Permission.READ_DEIDENTIFIED, "read patient data")

    # --- the list -------------------------------------------------------------------------------
    def search(self, text: str = "", limit: int = SEARCH_LIMIT) -> list[PatientRow]:
        """Patients whose number, name, latest ward or any diagnosis code starts with `text`, or who have a diagnosis
        whose title has words starting with those of `text` ("heart fail"), all when empty; in list order (name,
        then number), at most `limit` of them, each saying why it was found.

        Names and numbers are sealed in the store (services.store.identity), so they are matched and ordered in the
        session's in-memory directory; codes and wards are index ranges in the store. A page of a broad query (more
        than BROAD matches, such as the code 250) walks the name order in chunks and stops at the page; anything
        narrower collects the matches and sorts them. A role without names (the analyst) finds patients by code or
        ward only, in the store's own order.
        """
        self._require_read()
        d = self.s.directory()
        # A lone surrogate (pasted from a broken source, or typed on purpose) cannot be encoded for SQLite; it can
        # match nothing, so it is dropped rather than raising in the middle of typing.
        q = "".join(ch for ch in (text or "") if not "\ud800" <= ch <= "\udfff").strip()
        # diagnosis titles only when the words name no patient: "Patel" is a surname before it is a patella
        titled = self._title_codes(d, q)
        alts = self._store_alternatives(q, titled) if q else []
        if d is None:
            where = f"WHERE p.id IN ({' UNION '.join(sel for sel, _, _ in alts)})" if alts else ("WHERE 0" if q else "")
            rows = self._c.execute(f"{LIST_SQL} {where} ORDER BY p.id LIMIT ?",
                                   (*[a for _, _, part in alts for a in part], limit)).fetchall()
        else:
            rows = self._rows_in_order(self._matches(d, q, alts, limit))
        # The query is not logged: a typed name in the audit log would be readable by every role.
        self.s.log("search", "patients", "", f"query of {len(q)} characters, results={len(rows)}")
        why = self._found_by(d, q, [r[0] for r in rows], titled) if q else {}
        out = []
        for pid, sex, age, ward, admit, n, dx, inpt in rows:
            who = d.get(pid) if d is not None else None
            ref = who.mrn if who is not None else self.s.patient_ref(pid)
            out.append(PatientRow(pid, ref, (who.label if who is not None else "") or f"Patient {ref}", sex, age, ward,
                                  (admit or "")[:10], n, dx, bool(inpt), why.get(pid, "")))
        return out

    def _title_codes(self, d: Directory | None, q: str) -> list[str]:
        """The stored codes whose titles the typed words name, unless they name a patient (number or name). Only
        codes the store holds (an index seek each): every later test then carries tens of codes, not hundreds."""
        if not q or not looks_like_words(q):
            return []
        if d is not None and (d.number_prefix(q) or any(d.name_prefix(n) for n in _name_queries(q))):
            return []
        forms, held = codes_for_title(q), []
        for start in range(0, len(forms), 900):
            chunk = forms[start:start + 900]
            held += [r[0] for r in self._c.execute(
                f"SELECT DISTINCT code FROM patient_codes WHERE code IN ({','.join('?' * len(chunk))})", chunk)]
        return held

    def _found_by(self, d: Directory | None, q: str, ids: list[int], titled: list[str]) -> dict[int, str]:
        """Why each patient on the page matched: their number, name, ward, or which diagnosis (code or title)."""
        why: dict[int, str] = {}
        if d is not None:
            numbers = d.number_prefix(q)
            names = set().union(*[d.name_prefix(n) for n in _name_queries(q)]) if _name_queries(q) else set()
            why.update((pid, "patient number") for pid in ids if pid in numbers)
            why.update((pid, "name") for pid in ids if pid in names and pid not in why)
        low, high = _prefix_range(q.upper())
        wards = {w.name for w in self.wards() if w.name.lower().startswith(q.lower())}
        in_titles = f" OR code IN ({','.join('?' * len(titled))})" if titled else ""
        for start in range(0, len(ids), CHUNK):
            chunk = [pid for pid in ids[start:start + CHUNK] if pid not in why]
            if not chunk:
                continue
            marks = ",".join("?" * len(chunk))
            for pid, code in self._c.execute(
                    f"SELECT patient_id, min(code) FROM patient_codes WHERE patient_id IN ({marks}) AND "
                    f"((code >= ? AND code < ?){in_titles}) GROUP BY patient_id", (*chunk, low, high, *titled)):
                why[pid] = f"diagnosis {diagnosis_label(code)}"
            for pid, ward in self._c.execute(
                    f"SELECT p.id, w.name FROM patients p JOIN encounters e ON e.id = p.latest_encounter_id JOIN wards w "
                    f"ON w.id = e.ward_id WHERE p.id IN ({marks})", chunk) if wards else ():
                if ward in wards and pid not in why:
                    why[pid] = f"ward {ward}"
        return why

    def _store_alternatives(self, q: str, titled: list[str]) -> list[tuple[str, str, tuple]]:
        """(select ids, test on p, arguments) for what the store can match itself: diagnosis codes (by code prefix,
        or the codes `titled` whose titles the words name) and wards."""
        alts = [("SELECT patient_id FROM patient_codes WHERE code >= ? AND code < ?",
                 "EXISTS (SELECT 1 FROM patient_codes pc WHERE pc.patient_id = p.id AND pc.code >= ? AND pc.code < ?)",
                 _prefix_range(q.upper()))]
        if titled:   # words of a diagnosis title ("heart failure"): the codes it names, from the code index
            marks = ",".join("?" * len(titled))
            alts.append((f"SELECT patient_id FROM patient_codes WHERE code IN ({marks})",
                         f"EXISTS (SELECT 1 FROM patient_codes pc2 WHERE pc2.patient_id = p.id AND pc2.code IN ({marks}))",
                         tuple(titled)))
        ward_ids = tuple(w.id for w in self.wards() if w.name.lower().startswith(q.lower()))
        if ward_ids:
            marks = ",".join("?" * len(ward_ids))
            alts.append((f"SELECT p3.id FROM patients p3 JOIN encounters e3 ON e3.id = p3.latest_encounter_id "
                         f"WHERE e3.ward_id IN ({marks})", "EXISTS (SELECT 1 FROM encounters e3 WHERE "
                         f"e3.id = p.latest_encounter_id AND e3.ward_id IN ({marks}))", ward_ids))
        return alts

    def _matches(self, d: Directory, q: str, alts: list[tuple[str, str, tuple]], limit: int) -> list[int]:
        order = d.order()
        if not q:
            return order[:limit]
        hits = d.number_prefix(q)
        for name in _name_queries(q):
            hits |= d.name_prefix(name)
        args = tuple(a for _, _, part in alts for a in part)
        matches = self._count(alts)
        if limit < SEARCH_LIMIT and matches > BROAD:
            # Broad (a code like 250): walk the name order in chunks sized so that one usually fills the page.
            tests, out = " OR ".join(test for _, test, _ in alts), []
            step = max(limit, int(1.5 * limit * len(order) / matches))
            for start in range(0, len(order), step):
                chunk = order[start:start + step]
                found = {r[0] for r in self._c.execute(
                    f"SELECT p.id FROM patients p WHERE p.id IN ({','.join('?' * len(chunk))}) AND ({tests})",
                    (*chunk, *args))}
                out += [pid for pid in chunk if pid in found or pid in hits]
                if len(out) >= limit:
                    break
            return out[:limit]
        hits |= {r[0] for r in self._c.execute(" UNION ".join(sel for sel, _, _ in alts), args)}
        if len(hits) > limit and len(hits) * 16 > len(order):   # dense: the first `limit` in name order come soon
            return list(islice((pid for pid in order if pid in hits), limit))
        return sorted(hits, key=d.rank_key())[:limit]

    def _count(self, alts: list[tuple[str, str, tuple]]) -> int:
        """How many patients the store's alternatives match (an estimate: one found by two counts twice); index
        counts, well under a millisecond even for a code like 250."""
        return sum(self._c.execute(f"SELECT count(*) FROM ({sel}) AS found", part).fetchone()[0] for sel, _, part in alts)

    def _rows_in_order(self, ids: list[int]) -> list[tuple]:
        """The list's columns for these patients, in the given order."""
        if not ids:
            return []
        if len(ids) > CHUNK * 4:   # most of the store: one pass over everything beats a long IN list
            got = {r[0]: r for r in self._c.execute(LIST_SQL)}
        else:
            got = {}
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start:start + CHUNK]
                got.update((r[0], r) for r in self._c.execute(
                    f"{LIST_SQL} WHERE p.id IN ({','.join('?' * len(chunk))})", chunk))
        return [got[pid] for pid in ids if pid in got]

    def counts(self) -> tuple[int, int]:
        """Patients in the store and patients in hospital now (for the list's status line)."""
        self._require_read()
        total = self._c.execute("SELECT count(*) FROM patients").fetchone()[0]
        inpatients = self._c.execute(
            "SELECT count(DISTINCT patient_id) FROM encounters WHERE status = 'inpatient'").fetchone()[0]
        return int(total), int(inpatients)

    # --- one patient ----------------------------------------------------------------------------
    def get_patient(self, patient_id: int) -> Patient:
        self.s.require(Permission.READ_PATIENT, "open a patient's record (the care team's page)")
        r = self._c.execute("SELECT id, sex, race, version FROM patients WHERE id = ?", (patient_id,)).fetchone()
        if r is None:
            raise ValidationError({"patient": f"no patient with id {patient_id}"})
        age = self._c.execute("SELECT age_band FROM encounters WHERE patient_id = ? ORDER BY encounter_nbr DESC LIMIT 1",
                              (patient_id,)).fetchone()
        self.s.log("read", "patient", patient_id)
        who = self.s.identity_exact(patient_id)
        if who is None:   # no names for this session: a pseudonym stands for the number too
            return Patient(r[0], self.s.patient_ref(patient_id), None, None, None, r[1], r[2], age[0] if age else "",
                           r[3])
        born = dt.date.fromisoformat(who.birth) if who.birth else None
        return Patient(r[0], who.mrn, who.given, who.family, born, r[1], r[2], age[0] if age else "", r[3])

    def encounters(self, patient_id: int) -> list[Encounter]:
        self.s.require(Permission.READ_PATIENT, "open a patient's record (the care team's page)")
        rows = self._c.execute(
            "SELECT e.id, e.patient_id, e.encounter_nbr, e.admit_time, e.discharge_time, e.admission_type_id, "
            "e.admission_source_id, e.discharge_disposition_id, e.ward_id, e.bed_id, e.medical_specialty, e.payer_code, "
            "e.weight, e.age_band, e.num_lab_procedures, e.num_procedures, e.num_medications, e.number_outpatient, "
            "e.number_emergency, e.number_inpatient, e.number_diagnoses, e.change_flag, e.diabetes_med, e.readmitted, "
            "coalesce(w.name,''), coalesce(b.label,''), e.status, e.time_in_hospital, e.class, "
            "e.source_digest IS NOT NULL, coalesce(e.source_status, ''), e.version "
            "FROM encounters e LEFT JOIN wards w ON w.id = e.ward_id LEFT JOIN beds b ON b.id = e.bed_id "
            "WHERE e.patient_id = ? ORDER BY e.status = 'inpatient' DESC, e.admit_time DESC, e.encounter_nbr DESC",
            (patient_id,)).fetchall()
        out = []
        for r in rows:
            enc = Encounter(r[0], r[1], r[2], _dt(r[3]), _dt(r[4]), r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12],
                            r[13], r[14], r[15], r[16], r[17], r[18], r[19], r[20], "None", "None", r[21], r[22], r[23],
                            r[24], r[25], status=r[26], encounter_class=r[28], from_feed=bool(r[29]),
                            source_status=r[30], version=r[31])
            # the title the source gave (FHIR display, SNOMED CT), else the code tables' (ICD-9-CM, ICD-10-CM)
            enc.diagnoses = [Diagnosis(c, s, p, t or diagnosis_title(c, s)) for p, c, s, t in self._c.execute(
                "SELECT position, code, system, title FROM diagnoses WHERE encounter_id = ? ORDER BY position", (r[0],))]
            enc.medications = [Medication(d, st) for d, st in self._c.execute(
                "SELECT drug, status FROM medications WHERE encounter_id = ? ORDER BY drug", (r[0],))]
            enc.labs = [LabResult(n, vt, vn, u, _dt(t)) for n, vt, vn, u, t in self._c.execute(
                "SELECT name, value_text, value_num, unit, taken_at FROM lab_results WHERE encounter_id = ? ORDER BY name",
                (r[0],))]
            for lab in enc.labs:
                if lab.name == "max_glu_serum":
                    enc.max_glu_serum = lab.value_text or "None"
                elif lab.name == "A1Cresult":
                    enc.a1c_result = lab.value_text or "None"
            enc.comorbidities = [f for (f,) in self._c.execute(
                "SELECT flag FROM comorbidities WHERE encounter_id = ? ORDER BY flag", (r[0],))]
            out.append(enc)
        self.s.log("read", "encounters", patient_id, f"{len(out)} encounters")
        return out

    def wards(self) -> list[Ward]:
        return [Ward(*r) for r in self._c.execute("SELECT id, name, ward_type, capacity FROM wards ORDER BY name")]

    def beds(self, ward_id: int | None = None) -> list[Bed]:
        sql = "SELECT id, ward_id, label, isolation, sex_bay FROM beds"
        rows = self._c.execute(sql + (" WHERE ward_id = ? ORDER BY label" if ward_id else " ORDER BY ward_id, label"),
                               (ward_id,) if ward_id else ()).fetchall()
        return [Bed(i, w, lbl, bool(iso), sb) for i, w, lbl, iso, sb in rows]

    def free_beds(self, ward_id: int, keep_bed: int | None = None) -> list[Bed]:
        """Beds of the ward in service with no inpatient in them (plus `keep_bed`, the one being edited)."""
        taken = {r[0] for r in self._c.execute(
            "SELECT bed_id FROM encounters WHERE status = 'inpatient' AND bed_id IS NOT NULL")}
        closed = {r[0] for r in self._c.execute("SELECT id FROM beds WHERE out_of_service IS NOT NULL")}
        return [b for b in self.beds(ward_id) if b.id == keep_bed or (b.id not in taken and b.id not in closed)]

    # --- changes --------------------------------------------------------------------------------
    def add_patient(self, values: dict[str, Any]) -> int:
        self.s.require(Permission.EDIT_PATIENT, "add patients")
        v = validate_patient(values)
        codec = self.s.codec
        with self.s.db.transaction() as c:
            if c.execute("SELECT 1 FROM patients WHERE mrn = ?", (codec.number_key(v["mrn"]),)).fetchone():
                raise ValidationError({"mrn": "another patient has this number"})
            before = generation(c)
            pid = next_patient_id(c)
            cols = codec.patient_columns(pid, v["mrn"], v["given_name"], v["family_name"], _iso(v["birth_date"]))
            c.execute("INSERT INTO patients (id, mrn, given_name, family_name, birth_date, ident, search_name, sex, race, "
                      "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                      (pid, cols["mrn"], cols["given_name"], cols["family_name"], cols["birth_date"], cols["ident"],
                       cols["search_name"], v["sex"], v["race"], _now(), _now()))
            audit.append(c, self.s.user.username, "create", "patient", pid)
            after = generation(c)
        self._patched(pid, v, before, after)
        return pid

    def _patched(self, pid: int, v: dict[str, Any], before: int, after: int) -> None:
        d = self.s.loaded_directory()   # not directory(): that would reload everything because of this very change
        if d is not None:
            d.patched([(pid, Ident(normal_number(v["mrn"]), v["given_name"] or None, v["family_name"] or None,
                                   _iso(v["birth_date"])))], before, after)

    def update_patient(self, patient_id: int, values: dict[str, Any]) -> None:
        self.s.require(Permission.EDIT_PATIENT, "edit patients")
        v = validate_patient(values)
        expected = int(values.get("version") or 0)   # the version the form was filled from; 0: not known
        codec = self.s.codec
        with self.s.db.transaction() as c:
            if c.execute("SELECT 1 FROM patients WHERE mrn = ? AND id != ?",
                         (codec.number_key(v["mrn"]), patient_id)).fetchone():
                raise ValidationError({"mrn": "another patient has this number"})
            before = generation(c)
            cols = codec.patient_columns(patient_id, v["mrn"], v["given_name"], v["family_name"], _iso(v["birth_date"]))
            n = c.execute("UPDATE patients SET mrn=?, given_name=?, family_name=?, birth_date=?, ident=?, search_name=?, "
                          "sex=?, race=?, updated_at=?, version = version + 1, updated_by = ? WHERE id=?" +
                          (" AND version = ?" if expected else ""),
                          (cols["mrn"], cols["given_name"], cols["family_name"], cols["birth_date"], cols["ident"],
                           cols["search_name"], v["sex"], v["race"], _now(), self.s.user.username, patient_id)
                          + ((expected,) if expected else ())).rowcount
            if not n:
                _refused(c, "patients", patient_id, "This patient's record", {"patient": f"no patient with id {patient_id}"})
            # the age at each dated stay follows the (corrected) birth date
            for eid, admit in c.execute("SELECT id, admit_time FROM encounters WHERE patient_id = ? "
                                        "AND admit_time IS NOT NULL", (patient_id,)).fetchall():
                c.execute("UPDATE encounters SET age_band = ? WHERE id = ?",
                          (age_band_at(v["birth_date"], dt.datetime.fromisoformat(admit).date()), eid))
            audit.append(c, self.s.user.username, "update", "patient", patient_id)
            after = generation(c)
        self._patched(patient_id, v, before, after)

    def save_encounter(self, patient_id: int, values: dict[str, Any], encounter_id: int | None = None) -> int:
        """Add (encounter_id None) or edit an encounter with its diagnoses, medications and glucose/A1C labs."""
        self.s.require(Permission.EDIT_PATIENT, "edit encounters")
        v = validate_encounter(values)
        status = "discharged" if v["discharge_time"] else "inpatient"
        los = None
        if v["discharge_time"]:
            los = max(1, (v["discharge_time"].date() - v["admit_time"].date()).days)
        with self.s.db.transaction() as c:
            row = c.execute("SELECT id, mrn, given_name, family_name, birth_date, ident FROM patients WHERE id = ?",
                            (patient_id,)).fetchone()
            if not row:
                raise ValidationError({"patient": f"no patient with id {patient_id}"})
            born = self.s.codec.read_patient(*row).birth
            # the age band is derived, never typed: from the birth date and the admission date
            if born:
                v["age_band"] = age_band_at(dt.date.fromisoformat(str(born)[:10]), v["admit_time"].date())
            elif encounter_id is not None:
                kept = c.execute("SELECT age_band FROM encounters WHERE id = ?", (encounter_id,)).fetchone()
                v["age_band"] = kept[0] if kept else v["age_band"]
            else:
                raise ValidationError({"age_band": "the patient's birth date is needed to know their age at "
                                                   "admission: add it to the patient first"})
            writer_lock(c, "encounters")   # the bed check and the save as one step among all desks
            if v["bed_id"] is not None and status == "inpatient":
                taken = c.execute("SELECT 1 FROM encounters WHERE bed_id = ? AND status = 'inpatient' AND id IS DISTINCT FROM ?",
                                  (v["bed_id"], encounter_id)).fetchone()
                if taken:
                    raise ValidationError({"bed_id": "this bed is occupied"})
                kept_bed = c.execute("SELECT 1 FROM encounters WHERE id IS NOT DISTINCT FROM ? AND bed_id = ?",
                                     (encounter_id, v["bed_id"])).fetchone()
                closed = c.execute("SELECT out_of_service FROM beds WHERE id = ?", (v["bed_id"],)).fetchone()
                if closed and closed[0] is not None and not kept_bed:   # a patient already in it may stay
                    raise ValidationError({"bed_id": f"this bed is out of service ({closed[0]})"})
            cols = dict(patient_id=patient_id, status=status, admit_time=_iso(v["admit_time"]),
                        discharge_time=_iso(v["discharge_time"]), admission_type_id=v["admission_type_id"],
                        admission_source_id=v["admission_source_id"],
                        discharge_disposition_id=v["discharge_disposition_id"], ward_id=v["ward_id"],
                        bed_id=v["bed_id"] if status == "inpatient" else None, age_band=v["age_band"],
                        medical_specialty=v["medical_specialty"], time_in_hospital=los,
                        num_lab_procedures=v["num_lab_procedures"], num_procedures=v["num_procedures"],
                        num_medications=v["num_medications"], number_outpatient=v["number_outpatient"],
                        number_emergency=v["number_emergency"], number_inpatient=v["number_inpatient"],
                        number_diagnoses=len(v["diagnoses"]),
                        change_flag="Ch" if any(s in ("Up", "Down") for s in v["medications"].values()) else "No",
                        diabetes_med="Yes" if any(s != "No" for s in v["medications"].values()) else "No",
                        updated_at=_now())
            if encounter_id is None:
                nbr = c.execute("SELECT coalesce(max(encounter_nbr), 0) + 1 FROM encounters").fetchone()[0]
                cols.update(encounter_nbr=nbr, created_at=_now())
                cur = c.execute(f"INSERT INTO encounters ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                                tuple(cols.values()))
                encounter_id = int(cur.lastrowid)
                action = "create"
            else:
                sets = ", ".join(f"{k} = ?" for k in cols)
                expected = int(values.get("version") or 0)
                if not c.execute(f"UPDATE encounters SET {sets}, version = version + 1, updated_by = ? "
                                 "WHERE id = ? AND patient_id = ?" + (" AND version = ?" if expected else ""),
                                 (*cols.values(), self.s.user.username, encounter_id, patient_id)
                                 + ((expected,) if expected else ())).rowcount:
                    _refused(c, "encounters", encounter_id, "This stay",
                             {"encounter": "no such encounter for this patient"}, "patient_id", patient_id)
                for table in ("diagnoses", "medications"):
                    c.execute(f"DELETE FROM {table} WHERE encounter_id = ?", (encounter_id,))
                c.execute("DELETE FROM lab_results WHERE encounter_id = ? AND name IN ('max_glu_serum','A1Cresult')",
                          (encounter_id,))
                # a stay from a hospital's system, now changed here: a later import never overwrites it silently
                c.execute("UPDATE encounters SET source_digest = ? || source_digest WHERE id = ? AND source_digest "
                          "IS NOT NULL AND substr(source_digest, 1, ?) != ?",
                          (DESK_EDITED, encounter_id, len(DESK_EDITED), DESK_EDITED))
                action = "update"
            write_clinical_details(c, encounter_id, v["diagnoses"], v["medications"], v["max_glu_serum"], v["a1c_result"])
            audit.append(c, self.s.user.username, action, "encounter", encounter_id, f"patient {patient_id}")
        return encounter_id

    # --- for the models -------------------------------------------------------------------------
    def uci_frame(self, patient_ids: Iterable[int] | None = None, log: bool = True) -> pd.DataFrame:
        """The patients' encounters in the UCI encounter schema (history included), for scoring.
        log=False for callers that audit the read as their own use case (the census)."""
        self._require_read()
        frame = encounters_uci_frame(self._c, patient_ids)
        if log:
            self.s.log("read", "encounters", "", f"uci view of {frame['patient_nbr'].nunique()} patients")
        return frame


def _refused(c, table: str, row_id: int, what: str, missing: dict[str, str], owner: str = "",
             owner_id: int | None = None) -> None:
    """Why an UPDATE guarded by id (and version) changed nothing: no such row, or someone saved it in between."""
    row = c.execute(f"SELECT updated_by, updated_at FROM {table} WHERE id = ?" + (f" AND {owner} = ?" if owner else ""),
                    (row_id, owner_id) if owner else (row_id,)).fetchone()
    if row is None:
        raise ValidationError(missing)
    raise EditConflict(what, row[0], row[1])


def _name_queries(text: str) -> list[str]:
    """Prefixes of the stored "family given" name a typed name stands for: "Allen, Noah" as the list
    shows it, "allen noah", and "Noah Allen" the other way round."""
    words = text.lower().replace(",", " ").split()
    out = [" ".join(words)] if words else []
    if len(words) == 2:
        out.append(f"{words[1]} {words[0]}")
    return out


def write_clinical_details(c, encounter_id: int, diagnoses: list[str], medications: dict[str, str],
                           max_glu_serum: str, a1c: str) -> None:
    c.executemany("INSERT INTO diagnoses (encounter_id, position, code, system) VALUES (?,?,?,?)",
                  [(encounter_id, i + 1, code, diagnosis_system(code) or "ICD9") for i, code in enumerate(diagnoses)])
    c.executemany("INSERT INTO medications (encounter_id, drug, status) VALUES (?,?,?)",
                  [(encounter_id, d, s) for d, s in medications.items() if s != "No"])
    # "No" and "None" mean not given / not measured: like the importer, store only what happened.
    c.executemany("INSERT INTO lab_results (encounter_id, name, value_text) VALUES (?,?,?)",
                  [(encounter_id, n, v) for n, v in (("max_glu_serum", max_glu_serum), ("A1Cresult", a1c)) if v != "None"])


def _derived_stay_columns(conn, base: pd.DataFrame) -> None:
    """Worked out here rather than in SQL, so that both stores compute them alike (no SQLite or PostgreSQL date
    functions): the length of a stay not given (from its dates; a stay still open counts to today, at least 1 day),
    and LACE's E as defined (emergency visits in the 6 months before admission), for stays whose history the store
    holds (FHIR / HL7 imports)."""
    today = dt.datetime.now().date()
    days = []
    for given, admit, out in zip(base["time_in_hospital"], base["admit_time"], base["discharge_time"]):
        start = _dt(admit)
        if given is not None and given == given:
            days.append(int(given))
        elif start is None:
            days.append(None)
        else:
            end = _dt(out)
            days.append(max(1, ((end.date() if end else today) - start.date()).days))
    base["time_in_hospital"] = pd.Series(days, index=base.index, dtype=None if days else object)   # as from SQL
    visits: dict[int, list[dt.datetime]] = {}
    if base["history_from_record"].any():
        for pid, admit in conn.execute("SELECT patient_id, admit_time FROM encounters WHERE class = 'emergency' "
                                       "AND admit_time IS NOT NULL"):
            if (t := _dt(admit)) is not None:
                visits.setdefault(int(pid), []).append(t)
    counts = []
    for pid, admit, fed in zip(base["_pid"], base["admit_time"], base["history_from_record"]):
        start = _dt(admit) if fed else None
        counts.append(None if start is None else
                      sum(start - dt.timedelta(days=182) <= v < start for v in visits.get(int(pid), ())))
    base["emergency_6m"] = pd.Series(counts, index=base.index, dtype=None if counts else object)


def _frame(sql: str, conn, params: tuple = ()) -> pd.DataFrame:
    """A query as a DataFrame (pandas' read_sql only vouches for the stdlib sqlite3 connection)."""
    cur = conn.execute(sql, params)
    return pd.DataFrame.from_records(cur.fetchall(), columns=[d[0] for d in cur.description])


def encounters_uci_frame(conn, patient_ids: Iterable[int] | None = None) -> pd.DataFrame:
    """Rebuild UCI rows from the normalised tables: diag_1..3 from positions, one column per drug."""
    # Hospital stays only: the models are about admissions (an emergency or clinic visit from FHIR or HL7 counts in
    # the history columns, it is not scored), and an admission the feed cancelled never happened.
    where, args = "WHERE e.class = 'inpatient' AND coalesce(e.source_status, '') != 'cancelled'", ()
    if patient_ids is not None:
        ids = list(patient_ids)
        where, args = where + f" AND e.patient_id IN ({','.join('?' * len(ids))})", tuple(ids)
    base = _frame(
        "SELECT e.id AS _eid, e.encounter_nbr AS encounter_id, p.id AS patient_nbr, p.race, p.sex AS gender, "
        "e.age_band AS age, e.weight, e.admission_type_id, coalesce(e.discharge_disposition_id, 1) AS discharge_disposition_id, "
        "e.admission_source_id, e.time_in_hospital, "
        "e.payer_code, e.medical_specialty, e.num_lab_procedures, "
        "e.num_procedures, e.num_medications, e.number_outpatient, e.number_emergency, e.number_inpatient, "
        "e.number_diagnoses, e.change_flag AS change, e.diabetes_med AS \"diabetesMed\", e.readmitted, e.status, "
        "e.admit_time, e.discharge_time, e.patient_id AS _pid, e.source_digest IS NOT NULL AS history_from_record "
        f"FROM encounters e JOIN patients p ON p.id = e.patient_id {where} ORDER BY e.encounter_nbr", conn, args)
    base["history_from_record"] = base["history_from_record"].astype(bool)
    _derived_stay_columns(conn, base)
    eids = [int(x) for x in base["_eid"]]
    placeholders = ",".join("?" * len(eids)) or "NULL"
    # Plain dictionaries and lists, not pandas maps: a patient's few rows then cost about a millisecond
    # (the bedside score reads them every time), and 100,000 rows stay a few hundred milliseconds.
    # One read of the stays' diagnoses: positions 1-3 for the model (ICD-10-CM reaches its ICD-9 groups through the
    # CMS GEM, SNOMED CT through the ICD-10 code beside it where the source gave one, else "?", never guessed), and
    # for stays from a hospital's systems every ICD-coded one, for Charlson (Quan) over the whole stay.
    feed = {int(e) for e, f in zip(eids, base["history_from_record"]) if f}
    dx: dict[tuple[int, int], str] = {}
    unmapped: dict[int, list[str]] = {}   # what the model could not read, for the risk panel to say
    coded: dict[int, list[tuple[int, str]]] = {}
    for e, pos, code, system, also, also_system in conn.execute(
            "SELECT encounter_id, position, code, system, also_code, also_system FROM diagnoses "
            f"WHERE encounter_id IN ({placeholders})", eids):
        if pos <= 3:
            dx[(e, pos)] = model_code(code, system) or (model_code(also, also_system) if also else None) or "?"
            if dx[(e, pos)] == "?":
                unmapped.setdefault(e, []).append(f"{code} ({system})")
        if e in feed:
            coded.setdefault(e, []).extend((pos, f"{sy}:{c}") for c, sy in ((code, system), (also, also_system))
                                           if c and sy in ("ICD10", "ICD9"))
    charlson = {e: [text for _pos, text in sorted(items, key=lambda t: t[0])] for e, items in coded.items()}
    labs = {(e, name): value for e, name, value in conn.execute(
        "SELECT encounter_id, name, value_text FROM lab_results WHERE name IN ('max_glu_serum','A1Cresult') "
        f"AND encounter_id IN ({placeholders})", eids)}
    measured: dict[tuple[int, str], float] = {}   # the stay's last haemoglobin (g/dL) and sodium (mmol/L)
    for e, code, value, unit in conn.execute(
            "SELECT encounter_id, code, value_num, unit FROM lab_results WHERE system = 'LOINC' AND code IN "
            f"('718-7', '2951-2', '2947-0') AND value_num IS NOT NULL AND encounter_id IN ({placeholders}) "
            "ORDER BY taken_at", eids):
        u = (unit or "").replace(" ", "").lower()
        if code == "718-7" and u in ("g/dl", "g/l"):
            measured[(e, "haemoglobin")] = value / 10 if u == "g/l" else value
        elif code != "718-7" and u in ("mmol/l", "meq/l"):
            measured[(e, "sodium")] = value
    meds: dict[str, dict[int, str]] = {}
    for e, drug, status in conn.execute(
            f"SELECT encounter_id, drug, status FROM medications WHERE encounter_id IN ({placeholders})", eids):
        meds.setdefault(drug, {})[e] = status

    def column(values: list) -> np.ndarray:
        return np.array(values, dtype=object)

    cols: dict[str, Any] = {c: base[c].to_numpy() for c in base.columns}
    for pos in (1, 2, 3):
        cols[f"diag_{pos}"] = column([dx.get((e, pos), "?") for e in eids])
    for name in ("max_glu_serum", "A1Cresult"):
        cols[name] = column([v if (v := labs.get((e, name))) is not None else "None" for e in eids])
    for drug in MEDICATIONS:
        given = meds.get(drug, {})
        cols[drug] = column([v if (v := given.get(e)) is not None else "No" for e in eids])
    # The per-patient history features need one integer per patient, not the hospital number (sealed in the store).
    cols["patient_nbr"] = base["patient_nbr"].astype("int64").to_numpy()
    for name in ("haemoglobin", "sodium"):
        cols[name] = np.array([measured.get((e, name), np.nan) for e in eids], dtype=float)
    cols["unmapped_diagnoses"] = column(["; ".join(unmapped.get(e, [])) for e in eids])
    cols["charlson_codes"] = column([";".join(charlson.get(e, [])) for e in eids])
    extra = ["status", "admit_time", "discharge_time", "_pid", "_eid", "history_from_record", "emergency_6m",
             "haemoglobin", "sodium", "unmapped_diagnoses", "charlson_codes"]
    # One block per column, no copy: selecting columns of a consolidated object block copied ~50
    # million references under the GIL for a 100,000-encounter store (a GUI stall of 100-250 ms).
    return pd.DataFrame({c: cols[c] for c in [*ENCOUNTER_COLUMNS, *extra]}, copy=False)
