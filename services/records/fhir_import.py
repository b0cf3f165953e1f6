"""FHIR R4 records into the store (services.records.fhir reads them): patients, encounters of every class with their
diagnoses, procedures, medication orders and labs, matched to what the store holds (services.records.intake), so that
the same export imported twice changes nothing and a later export updates the record.

The UCI fields the models read are derived from the record, never invented: the stay's length from its period, its
lab, procedure, medication and diagnosis counts, prior outpatient / emergency / inpatient visits in the year before
from the store's own encounters, HbA1c and glucose bands from LOINC results, the diabetes medication columns from the
RxNorm names (services.records.vocab); what the source does not say stays "not available"."""
from __future__ import annotations

from collections import defaultdict

from services.core.progress import CancelToken, ProgressFn, no_progress
from services.records.codes import diagnosis_title
from services.records.fhir import FhirBatch, FhirClinical, FhirEncounter
from services.records.intake import DESK_EDITED, Conflict, Intake, digest, iso, parse_time, stay_problem
from services.records import vocab

IN_PROGRESS = {"in-progress", "arrived", "triaged", "onleave"}
NOT_HAPPENED = {"planned", "cancelled", "entered-in-error"}
CHILDREN = ("diagnoses", "procedures", "medication_orders", "medications", "lab_results")


def import_fhir(intake: Intake, batch: FhirBatch, progress: ProgressFn = no_progress,
                cancel: CancelToken | None = None) -> None:
    report = intake.report
    for p in batch.problems:
        report.reject(p.file, p.entry, p.reason)
    for kind, n in batch.skipped.items():
        report.skipped[f"{kind} (not kept)"] += n
    pids: dict[str, int] = {}
    for key, p in batch.patients.items():
        try:
            if not p.identifiers and key.startswith("Patient/sha256-"):
                raise Conflict("a patient without an id or any identifier: nothing names this patient")
            pid, outcome = intake.patient(list(p.identifiers) or [("urn:wardlens:fhir-id", key)],
                                          p.mrn or key.split("/", 1)[1], p.given, p.family, p.birth_date or None, p.sex,
                                          p.deceased, match_number=p.number_is_mr)
        except Conflict as exc:
            report.reject(p.file, key, f"patient: {exc}")
            continue
        pids[key] = pid
        report.add("patients", outcome)
    items: dict[str, list[FhirClinical]] = defaultdict(list)
    for item in batch.clinical:
        if item.encounter is None:
            report.skipped[f"{item.kind} not linked to an encounter (kept per stay only)"] += 1
        else:
            items[item.encounter].append(item)
    touched: set[int] = set()
    for n, (key, e) in enumerate(batch.encounters.items(), 1):
        pid = pids.get(e.patient)
        if pid is None:
            report.reject(e.file, key, "encounter of a patient that was not imported (see that patient)")
            continue
        try:
            changed, eid = _encounter(intake, pid, key, e, items.get(key, []))
        except Conflict as exc:
            report.reject(e.file, key, f"encounter: {exc}")
            continue
        if changed:
            touched.add(pid)
        if eid is not None:
            report.sources[eid] = (key.split("/", 1)[-1], batch.patients[e.patient].mrn)
        if n % 500 == 0:
            progress(n, len(batch.encounters), f"{n:,} of {len(batch.encounters):,} encounters")
            if cancel is not None:
                cancel.raise_if_cancelled()   # inside the transaction: everything rolls back
    intake.history(touched)


def _encounter(intake: Intake, pid: int, key: str, e: FhirEncounter,
               items: list[FhirClinical]) -> tuple[bool, int | None]:
    """Write one encounter with its items: (whether something changed, its store id; None if it was not kept)."""
    c, report = intake.c, intake.report
    # the resource id is this patient's: another system's Encounter/1 of another patient is another stay
    identifiers = list(e.identifiers) + [(f"urn:wardlens:fhir-id:{pid}", key)]
    eid = intake.find("encounter", identifiers)
    stored = c.execute("SELECT patient_id, source_digest FROM encounters WHERE id = ?", (eid,)).fetchone() \
        if eid is not None else None
    if stored is not None and stored[0] != pid:
        raise Conflict("its identifiers name another patient's stay in the store; nothing of it was imported")
    if stored is not None and str(stored[1] or "").startswith(DESK_EDITED):
        raise Conflict("the stay was changed on the desk after it was imported, so the source's version was not "
                       "applied over it (an administrator compares the two)")
    said = digest([pid, e.identifiers, e.cls, e.status, e.start, e.end, e.admit_source, e.discharge_disposition,
                   e.locations, e.type,
                   [(i.kind, i.key, i.coded, i.value, i.value_text, i.unit, i.low, i.high, i.time, i.icd10, i.status)
                    for i in items]])
    if stored is not None and stored[1] == said:
        report.add("encounters", "unchanged")
        return False, eid
    if e.status in NOT_HAPPENED:   # cancelled or entered in error: off the census, never scored or counted
        if eid is not None and e.status != "planned":
            c.execute("UPDATE encounters SET source_status = 'cancelled', status = 'discharged', bed_id = NULL, "
                      "source_digest = ?, updated_at = ? WHERE id = ?", (said, intake.now, eid))
            report.add("encounters", "updated")
            return True, eid
        report.skipped[f"Encounter {e.status} (did not take place)"] += 1
        return False, None
    start, end = parse_time(e.start), parse_time(e.end)
    problem = stay_problem(start, end, e.start, e.end)
    if problem:
        raise Conflict(problem)
    running = e.status in IN_PROGRESS or (end is None and e.status != "finished")
    status = "inpatient" if e.cls == "inpatient" and running else "discharged"
    ward, bed = intake.place(list(e.locations))
    dx = [i for i in items if i.kind == "diagnosis"]
    labs = [i for i in items if i.kind == "lab"]
    orders = [i for i in items if i.kind == "medication"]
    procedures = [i for i in items if i.kind == "procedure"]
    columns = {vocab.medication_column(o.coded.display) for o in orders} - {None}
    source = e.admit_source.code if e.admit_source else ""
    stay = max(1, (end.date() - start.date()).days) if e.cls == "inpatient" and start and end and not running else None
    values = dict(
        patient_id=pid, status=status, admit_time=iso(start), discharge_time=None if running else iso(end),
        admission_type_id=1 if source == "emd" else vocab.NOT_AVAILABLE_TYPE,
        admission_source_id=vocab.ADMIT_SOURCE.get(source, vocab.NOT_AVAILABLE_SOURCE),
        discharge_disposition_id=None if running else vocab.fhir_disposition(
            e.discharge_disposition.code if e.discharge_disposition else None),
        ward_id=ward, bed_id=intake.free_bed(bed, eid) if status == "inpatient" else None,
        age_band=intake.age_band(pid, start),
        time_in_hospital=stay, num_lab_procedures=len(labs), num_procedures=len(procedures),
        num_medications=len({o.coded.code for o in orders}), number_diagnoses=len(dx),
        diabetes_med="Yes" if columns else "No", medical_specialty="?", **{"class": e.cls},
        source_status=e.status, source_digest=said, updated_at=intake.now)
    if eid is None:
        values.update(encounter_nbr=intake.new_encounter_number(), created_at=intake.now)
        cols = ", ".join(f'"{k}"' for k in values)
        eid = int(c.execute(f"INSERT INTO encounters ({cols}) VALUES ({','.join('?' * len(values))})",
                            list(values.values())).lastrowid)
        report.add("encounters", "imported")
    else:
        c.execute(f"UPDATE encounters SET {', '.join(f'{chr(34)}{k}{chr(34)} = ?' for k in values)} WHERE id = ?",
                  [*values.values(), eid])
        for table in CHILDREN:
            c.execute(f"DELETE FROM {table} WHERE encounter_id = ?", (eid,))
        report.add("encounters", "updated")
    intake.remember("encounter", identifiers, eid)
    _children(c, eid, dx, procedures, orders, labs, columns)
    return True, eid


def _children(c, eid: int, dx: list[FhirClinical], procedures: list[FhirClinical], orders: list[FhirClinical],
              labs: list[FhirClinical], columns: set[str]) -> None:
    dx = sorted(dx, key=lambda i: i.time)   # stable: the source's order within a time
    c.executemany("INSERT INTO diagnoses (encounter_id, position, code, system, title, also_code, also_system) "
                  "VALUES (?,?,?,?,?,?,?)",
                  [(eid, n, i.coded.code, i.coded.system, i.coded.display or diagnosis_title(i.coded.code, i.coded.system),
                    i.icd10 or None, "ICD10" if i.icd10 else None) for n, i in enumerate(dx, 1)])
    c.executemany("INSERT INTO procedures (encounter_id, code, system, title, performed_at) VALUES (?,?,?,?,?)",
                  [(eid, i.coded.code, i.coded.system, i.coded.display, iso(parse_time(i.time))) for i in procedures])
    c.executemany("INSERT INTO medication_orders (encounter_id, code, system, title, status, authored_at) "
                  "VALUES (?,?,?,?,?,?)",
                  [(eid, i.coded.code, i.coded.system, i.coded.display, i.status, iso(parse_time(i.time)))
                   for i in orders])
    c.executemany("INSERT INTO medications (encounter_id, drug, status) VALUES (?, ?, 'Steady')",
                  [(eid, col) for col in sorted(columns)])
    c.executemany("INSERT INTO lab_results (encounter_id, name, value_text, value_num, unit, taken_at, code, system, "
                  "ref_low, ref_high) VALUES (?,?,?,?,?,?,?,?,?,?)",
                  [(eid, i.coded.display or i.coded.code, i.value_text or None, i.value, i.unit,
                    iso(parse_time(i.time)), i.coded.code, i.coded.system, i.low, i.high) for i in labs])
    c.executemany("INSERT INTO lab_results (encounter_id, name, value_text) VALUES (?,?,?)",
                  [(eid, name, band) for name, band in _bands(labs)])


def _bands(labs: list[FhirClinical]) -> list[tuple]:
    """The UCI bands the models read: the stay's last HbA1c (in %) and its highest glucose (in mg/dL)."""
    def values(codes: tuple[str, ...], unit: str) -> list[tuple[str, float]]:
        return sorted((i.time, i.value) for i in labs if i.coded.system == "LOINC" and i.coded.code in codes
                      and i.value is not None and i.unit.replace(" ", "").lower() == unit)
    out = []
    if a1c := values(vocab.HBA1C, "%"):
        out.append(("A1Cresult", vocab.a1c_band(a1c[-1][1])))
    if glu := values(vocab.GLUCOSE, "mg/dl"):
        out.append(("max_glu_serum", vocab.glucose_band(max(v for _, v in glu))))
    return out
