"""HL7 v2 ADT events onto the census (services.records.hl7v2 reads them), in the order they happened.

A01 admit and A04 register open a visit (its PV1-19 visit number is its identifier); A05 pre-admit puts the patient
on the waiting list (expected, not yet in a bed: the forecast's arrivals); A06/A07 change the visit's class; A02 moves
the patient (ward, room, bed from PV1-3); A03 discharges with the disposition (PV1-36; an expired status marks the
patient deceased); A08/A31 update the patient (and the visit's place, A08); A11/A12/A13 cancel an admission, a transfer
(PV1-3 then holds the place the patient returns to, as HL7 v2.5 3.3.12 says) or a discharge; A40 merges the patient
named in MRG-1 into the one in PID. A message about a visit the store does not hold is rejected with that reason; it is
not recorded as applied, so it applies when imported again after its admission. A message already applied (the same
content) changes nothing."""
from __future__ import annotations

import datetime as dt

from services.core.progress import CancelToken, ProgressFn, no_progress
from services.records.hl7v2 import Hl7Batch, Hl7Event
from services.records.fhir import matches_patient
from services.records.intake import Conflict, Intake, iso, parse_time
from services.records import vocab
from services.store.dialect import tables_with_column
from services.records.uci_schema import EXPIRED_DISPOSITIONS

VISIT = "urn:wardlens:hl7-visit"
EXPIRED_UB04 = {"20", "40", "41", "42"}


class Rejected(Exception):
    pass


def import_adt(intake: Intake, batch: Hl7Batch, progress: ProgressFn = no_progress,
               cancel: CancelToken | None = None) -> None:
    report, c = intake.report, intake.c
    for file, where, reason in batch.problems:
        report.reject(file, where, reason)
    for kind, n in batch.other_types.items():
        report.skipped[f"{kind} message (not an event WardLens applies)"] += n
    if batch.duplicates:
        report.skipped["copies of a message with the same content"] += batch.duplicates
    applied = {d for (d,) in c.execute("SELECT digest FROM adt_messages")}
    events = batch.ordered()
    for n, ev in enumerate(events, 1):
        if ev.digest in applied:
            report.add("messages", "unchanged")
            continue
        try:
            with_savepoint(intake, lambda: _apply(intake, ev))
        except (Rejected, Conflict) as exc:
            report.reject(ev.file, f"message {ev.message} ({ev.trigger})", str(exc))
            continue
        applied.add(ev.digest)
        report.add("messages", "imported")
        if n % 200 == 0:
            progress(n, len(events), f"{n:,} of {len(events):,} messages")
            if cancel is not None:
                cancel.raise_if_cancelled()


def with_savepoint(intake: Intake, fn) -> None:
    """A rejected message leaves nothing of itself behind (a patient created before its visit check failed), in the
    store or in the import's lookups."""
    c, mark = intake.c, intake.savepoint()
    c.execute("SAVEPOINT adt_message")
    try:
        fn()
    except BaseException:
        intake.rollback_to(mark)
        c.execute("ROLLBACK TO adt_message")
        c.execute("RELEASE adt_message")
        raise
    c.execute("RELEASE adt_message")


def _ids(ids: tuple[tuple[str, str, str], ...]) -> list[tuple[str, str]]:
    """The identifiers a patient is matched on: medical record numbers and untyped ones (not SSN, licence …)."""
    return [(f"hl7:{authority}" if authority else "hl7", value) for value, authority, typ in ids
            if value and matches_patient(typ)]


def _mrn(ev: Hl7Event) -> tuple[str, bool]:
    """(the number shown as the hospital number, whether it is an MR): an MR-typed PID-3, else the first identifier
    a patient is matched on; never a licence or a social security number."""
    mr = next((v for v, _a, t in ev.patient_ids if t.upper() == "MR" and v), "")
    if mr:
        return mr, True
    return next((v for v, _a, t in ev.patient_ids if v and matches_patient(t)), ""), False


def _sex(ev: Hl7Event) -> str | None:
    return ev.sex if ev.sex in ("Female", "Male") else None   # a message without PID-8 keeps what the store has


def _birth(text: str) -> str | None:
    t = parse_time(text)
    return t.date().isoformat() if t else None


def _apply(intake: Intake, ev: Hl7Event) -> None:
    c = intake.c
    ids, when = _ids(ev.patient_ids), parse_time(ev.when) or dt.datetime.now()
    if not ids:
        raise Rejected("PID-3 holds no hospital identifier of the patient (only person identifiers such as a licence "
                       "or social security number, which WardLens does not match on)")
    if ev.event == "merge":
        return _merge(intake, ev, ids)
    opens = ev.event in ("admit", "register")
    if opens and not ev.visit:
        raise Rejected("the message has no visit number (PV1-19 or PID-18)")
    mrn, is_mr = _mrn(ev)
    pid, _ = intake.patient(ids, mrn, ev.given, ev.family, _birth(ev.birth_date), _sex(ev),
                            True if ev.deceased else None, match_number=is_mr)
    # A visit is known by its number within its patient: one patient's message never reaches another's stay, even
    # where two systems (or two test suites) reuse a visit number.
    visit = [(f"{VISIT}:{pid}", ev.visit)] if ev.visit else []
    eid = intake.find("encounter", visit) if visit else None
    needs_visit = ev.event not in ("update", "pre-admit") and not opens
    if (needs_visit or (ev.trigger == "A08" and ev.visit)) and eid is None:
        raise Rejected(f"no visit {ev.visit!r} of this patient in the store (its admission was never received)"
                       if ev.visit else "the message has no visit number (PV1-19 or PID-18)")
    state = c.execute("SELECT status, class, coalesce(source_status, ''), discharge_disposition_id, bed_id, ward_id "
                      "FROM encounters WHERE id = ?", (eid,)).fetchone() if eid is not None else None
    if state is not None:
        last = c.execute("SELECT max(event_time) FROM adt_messages WHERE encounter_id = ?", (eid,)).fetchone()[0]
        if last and iso(when) < last:   # a late message never undoes a later one (imports come file by file)
            raise Rejected(f"it happened ({iso(when)}) before the last message applied to visit {ev.visit!r} "
                           f"({last}); applying it now would undo that one")
        if state[2] == "cancelled" and ev.event != "update":
            raise Rejected(f"visit {ev.visit!r} was cancelled (A11); a message for it is not applied")
        if opens and state[0] == "discharged" and state[2] == "finished":
            raise Rejected(f"visit {ev.visit!r} is already discharged; an admission for it is not applied again "
                           "(A13 cancels a discharge)")
    known = intake.place([ev.ward, ev.room], ev.bed) if ev.ward else (None, None)
    ward, bed = known
    now = intake.now
    if ev.event == "pre-admit":
        wtype = c.execute("SELECT ward_type FROM wards WHERE id = ?", (ward,)).fetchone() if ward else None
        if not c.execute("SELECT 1 FROM waiting_admissions WHERE patient_id = ? AND status = 'waiting'", (pid,)).fetchone():
            c.execute("INSERT INTO waiting_admissions (patient_id, requested_at, ward_type, note) VALUES (?,?,?,?)",
                      (pid, iso(parse_time(ev.admit_time) or when), wtype[0] if wtype else "medical",
                       "pre-admitted (HL7 A05)"))
    elif opens:
        cls = ev.cls if ev.cls in ("inpatient", "emergency", "ambulatory", "other") else (
            "inpatient" if ev.event == "admit" else "ambulatory")
        status = "inpatient" if cls == "inpatient" else "discharged"
        admit = iso(parse_time(ev.admit_time) or when)
        if eid is None:
            eid = c.execute("INSERT INTO encounters (patient_id, encounter_nbr, status, class, admit_time, admission_type_id, "
                      "admission_source_id, ward_id, bed_id, age_band, source_status, source_digest, created_at, "
                      "updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                      (pid, intake.new_encounter_number(), status, cls, admit, vocab.NOT_AVAILABLE_TYPE,
                       vocab.NOT_AVAILABLE_SOURCE, ward, intake.free_bed(bed) if status == "inpatient" else None,
                       intake.age_band(pid, parse_time(admit)), "in-progress", ev.digest, now, now)).lastrowid
            intake.remember("encounter", visit, eid)
        else:
            _set(c, eid, now, status=status, **{"class": cls}, admit_time=admit, ward_id=ward,
                 bed_id=intake.free_bed(bed, eid) if status == "inpatient" else None, source_status="in-progress")
        if cls == "inpatient":
            c.execute("UPDATE waiting_admissions SET status = 'assigned' WHERE patient_id = ? AND status = 'waiting' "
                      "AND note = 'pre-admitted (HL7 A05)'", (pid,))
    elif ev.event in ("transfer", "cancel transfer"):
        # a move to a place that is no ward here: off the wards WardLens knows (noted), never left in the old bed
        _set(c, eid, now, ward_id=ward, bed_id=intake.free_bed(bed, eid) if state[0] == "inpatient" else None)
    elif ev.event == "update" and eid is not None and ev.ward:
        if ward is not None:   # an update naming an unknown place keeps the stay where the census has it
            _set(c, eid, now, ward_id=ward, bed_id=intake.free_bed(bed, eid) if state[0] == "inpatient" else None)
    elif ev.event == "to inpatient":
        _set(c, eid, now, status="inpatient", **{"class": "inpatient"}, ward_id=ward, bed_id=intake.free_bed(bed, eid))
    elif ev.event == "to outpatient":
        _set(c, eid, now, status="discharged", **{"class": ev.cls if ev.cls in ("emergency", "ambulatory") else
                                                  "ambulatory"}, bed_id=None)
    elif ev.event == "discharge":
        out = parse_time(ev.discharge_time) or when
        admit = c.execute("SELECT admit_time FROM encounters WHERE id = ?", (eid,)).fetchone()[0]
        if admit and out < dt.datetime.fromisoformat(admit):
            raise Rejected(f"its discharge ({iso(out)}) is before the admission ({admit})")
        disposition = vocab.hl7_disposition(ev.disposition)
        days = max(1, (out.date() - dt.datetime.fromisoformat(admit).date()).days) if admit else None
        _set(c, eid, now, status="discharged", discharge_time=iso(out), discharge_disposition_id=disposition,
             time_in_hospital=days, source_status="finished")
        if disposition in EXPIRED_DISPOSITIONS or ev.disposition.strip() in EXPIRED_UB04:
            c.execute("UPDATE patients SET deceased = 1 WHERE id = ?", (pid,))
    elif ev.event == "cancel admit":
        _set(c, eid, now, status="discharged", bed_id=None, source_status="cancelled")
    elif ev.event == "cancel discharge":
        if state[0] != "discharged":
            raise Rejected(f"visit {ev.visit!r} is not discharged, so there is no discharge to cancel")
        inpatient = state[1] == "inpatient"
        _set(c, eid, now, status="inpatient" if inpatient else "discharged", discharge_time=None,
             discharge_disposition_id=None, time_in_hospital=None, source_status="in-progress",
             bed_id=intake.free_bed(state[4], eid) if inpatient else None)   # its bed may have a new patient
        if state[3] in EXPIRED_DISPOSITIONS:
            c.execute("UPDATE patients SET deceased = 0 WHERE id = ?", (pid,))
    c.execute("INSERT INTO adt_messages (digest, trigger_event, event_time, encounter_id, outcome, applied_at) "
              "VALUES (?,?,?,?,?,?)", (ev.digest, ev.trigger, iso(when), eid, ev.event, now))
    if eid is not None:
        intake.report.sources[eid] = (ev.visit, mrn)


def _set(c, eid: int, now: str, **values) -> None:
    values["updated_at"] = now
    c.execute(f"UPDATE encounters SET {', '.join(f'{chr(34)}{k}{chr(34)} = ?' for k in values)} WHERE id = ?",
              [*values.values(), eid])


def _merge(intake: Intake, ev: Hl7Event, ids: list[tuple[str, str]]) -> None:
    """A40: the patient named in MRG-1 is merged into the one in PID; their stays, studies, waiting-list entries and
    identifiers move over, and the old number keeps finding the survivor. Refused where both hold a visit of the
    same number (which stay a later message means could not be told)."""
    c = intake.c
    prior = intake.find("patient", _ids(ev.prior_ids))
    if prior is None:   # by hospital number only where MRG-1 says it is one (MR)
        prior = next((p for v, _a, t in ev.prior_ids if t.upper() == "MR"
                      and (p := intake.mrns.get(intake.codec.number_key(v))) is not None), None)
    if prior is None:
        raise Rejected("the patient to merge away (MRG-1) is not in the store")
    mrn, is_mr = _mrn(ev)
    survivor, _ = intake.patient(ids, mrn, ev.given, ev.family, _birth(ev.birth_date), _sex(ev), None,
                                 match_number=is_mr)
    if survivor != prior:
        # the merged patient's stay identifiers are scoped to it (visit numbers, FHIR ids): re-scoped to the survivor
        scoped = [(k, v) for k, v in intake.ids.items() if k[0] == "encounter" and k[1].startswith("urn:wardlens:")
                  and k[1].endswith(f":{prior}")]
        moved = [(k, ("encounter", k[1][: -len(str(prior))] + str(survivor), k[2]), v) for k, v in scoped]
        clash = [new for _old, new, _v in moved if new in intake.ids]
        if clash:
            raise Rejected("both patients hold a stay with the same visit number, so later messages could not tell "
                           "the two stays apart; an administrator merges these records by hand")
        for old, new, ref in moved:
            c.execute("UPDATE identifiers SET system = ? WHERE kind = 'encounter' AND system = ? AND value_key = ?",
                      (new[1], old[1], old[2]))
            intake.uncache(intake.ids, old)
            intake.cache(intake.ids, new, ref)
        for table in tables_with_column(c, "patient_id", exclude=("patient_codes",)):
            c.execute(f"UPDATE {table} SET patient_id = ? WHERE patient_id = ?", (survivor, prior))
        c.execute("UPDATE identifiers SET ref = ? WHERE kind = 'patient' AND ref = ?", (survivor, prior))
        for k in [k for k, v in intake.ids.items() if k[0] == "patient" and v == prior]:
            intake.cache(intake.ids, k, survivor)
        prior_mrn = c.execute("SELECT mrn FROM patients WHERE id = ?", (prior,)).fetchone()[0]
        # the merged-away number keeps finding the patient: later messages may still carry it
        c.execute("INSERT INTO identifiers (kind, system, value_key, ref) VALUES ('patient', 'merged-mrn', ?, ?) "
                  "ON CONFLICT (kind, system, value_key) DO UPDATE SET ref = excluded.ref", (prior_mrn, survivor))
        intake.cache(intake.ids, ("patient", "merged-mrn", prior_mrn), survivor)
        c.execute("DELETE FROM patients WHERE id = ?", (prior,))
        intake.retire_patient_id(prior)
        for k in [k for k, v in intake.mrns.items() if v == prior]:
            intake.cache(intake.mrns, k, survivor)
    c.execute("INSERT INTO adt_messages (digest, trigger_event, event_time, encounter_id, outcome, applied_at) "
              "VALUES (?,?,?,?,?,?)", (ev.digest, ev.trigger, iso(parse_time(ev.when) or dt.datetime.now()), None, "merge",
                                        intake.now))
