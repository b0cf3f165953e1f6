"""Hospital records into the store (the interoperability issue): HL7 v2 ADT events driving the census, FHIR R4 records
with their codes reaching the models, idempotent re-imports, every record accounted for, and the safety rules that
keep one patient's message away from another's record. Built messages run everywhere; the shared interop sets where
they are present."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest

from services.core.errors import ImportFileError
from tests.conftest import shared_path
from tests.security.conftest import ROOT

PASSWORD = "admin-password"


def _msg(trigger: str, when: str, mrn: str = "MRN001", visit: str = "V100", ward: str = "Renal", bed: str = "R-1",
         cls: str = "I", disposition: str = "", name: str = "DOE^JANE", control: str = "MSG00001",
         extra: str = "") -> str:
    segs = [f"MSH|^~\\&|PAS|HOSP|WARDLENS|HOSP|{when}||ADT^{trigger}|{control}|P|2.5",
            f"EVN|{trigger}|{when}",
            f"PID|1||{mrn}^^^HOSP^MR||{name}||19500101|F",
            f"PV1|1|{cls}|{ward}^^{bed}||||||||||||||||{visit}|||||||||||||||||{disposition}|||||||{when}"]
    return "\r".join(segs + ([extra] if extra else [])) + "\r"


def _write(tmp_path, name: str, *messages: str):
    p = tmp_path / name
    p.write_text("".join(messages), encoding="utf-8")
    return p


def _encounter(desk, visit_patient_mrn: str = "MRN001"):
    c = desk.session.db.conn
    return c.execute("SELECT e.status, w.name, b.label, e.discharge_disposition_id, e.source_status, e.class, "
                     "p.deceased FROM encounters e JOIN patients p ON p.id = e.patient_id "
                     "LEFT JOIN wards w ON w.id = e.ward_id LEFT JOIN beds b ON b.id = e.bed_id "
                     "WHERE p.mrn = ?", (desk.session.codec.number_key(visit_patient_mrn),)).fetchall()


def test_adt_lifecycle_drives_the_census_in_event_order(desk, tmp_path):
    # written out of order on purpose: events apply in the order they happened (EVN-2)
    feed = _write(tmp_path, "feed.hl7",
                  _msg("A02", "202601021000", ward="Cardiology", bed="C-2", control="M3"),
                  _msg("A05", "202601010800", control="M1"),
                  _msg("A01", "202601011200", control="M2"))
    r = desk.records.import_files([feed])
    assert r.rejected_total == 0 and r.counts["messages"]["imported"] == 3, r.lines()
    assert _encounter(desk) == [("inpatient", "Cardiology", "C-2", None, "in-progress", "inpatient", 0)]
    census = desk.census_rows()
    assert [(row["ward"], row["bed"]) for row in census] == [("Cardiology", "C-2")]
    waiting = desk.session.db.conn.execute("SELECT status FROM waiting_admissions").fetchall()
    assert waiting == [("assigned",)]   # the pre-admission is on the list until the admission arrives

    # a cancelled transfer returns the patient to the place PV1-3 names (HL7 v2.5 3.3.12)
    r = desk.records.import_files([_write(tmp_path, "a12.hl7", _msg("A12", "202601021100", control="M4"))])
    assert r.rejected_total == 0 and _encounter(desk)[0][1:3] == ("Renal", "R-1")

    # discharge as expired (UB-04 20), then the discharge cancelled: back on the census, no longer deceased
    r = desk.records.import_files([_write(tmp_path, "a03.hl7", _msg("A03", "202601051000", disposition="20",
                                                                    control="M5"))])
    assert r.rejected_total == 0
    assert _encounter(desk)[0][:1] + _encounter(desk)[0][3:] == ("discharged", 11, "finished", "inpatient", 1)
    assert desk.census_rows() == []
    desk.records.import_files([_write(tmp_path, "a13.hl7", _msg("A13", "202601051100", control="M6"))])
    assert _encounter(desk)[0][0] == "inpatient" and _encounter(desk)[0][6] == 0
    # the admission entered in error: off the census, never scored
    desk.records.import_files([_write(tmp_path, "a11.hl7", _msg("A11", "202601051200", control="M7"))])
    assert _encounter(desk)[0][0] == "discharged" and _encounter(desk)[0][4] == "cancelled"
    assert desk.census_rows() == []


def test_the_same_messages_again_change_nothing_and_a_same_id_message_is_not_a_duplicate(desk, tmp_path):
    feed = _write(tmp_path, "feed.hl7", _msg("A01", "202601011200"), _msg("A02", "202601021000", ward="Cardiology",
                                                                          bed="C-1"))   # both MSG00001
    first = desk.records.import_files([feed])
    assert first.counts["messages"]["imported"] == 2
    audit_rows = desk.session.db.conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    again = desk.records.import_files([feed])
    assert again.counts["messages"] == {"unchanged": 2} and again.changed == 0
    assert _encounter(desk)[0][1:3] == ("Cardiology", "C-1")
    assert desk.session.db.conn.execute("SELECT count(*) FROM encounters").fetchone()[0] == 1
    assert desk.session.db.conn.execute("SELECT count(*) FROM audit_log").fetchone()[0] == audit_rows + 1


def test_a_message_for_an_unknown_visit_is_rejected_and_leaves_nothing(desk, tmp_path):
    r = desk.records.import_files([_write(tmp_path, "a03.hl7", _msg("A03", "202601051000", mrn="NEW9",
                                                                    visit="V404"))])
    assert r.rejected_total == 1 and "no visit 'V404'" in r.rejected[0].reason
    assert r.rejected[0].file == "a03.hl7" and r.rejected[0].where == "message 1 (A03)"
    # the patient the message named was not created either (one savepoint per message)
    assert desk.session.db.conn.execute("SELECT count(*) FROM patients").fetchone()[0] == 0
    # once its admission arrives, the same discharge applies
    r = desk.records.import_files([_write(tmp_path, "both.hl7", _msg("A01", "202601011000", mrn="NEW9", visit="V404"),
                                          _msg("A03", "202601051000", mrn="NEW9", visit="V404"))])
    assert r.rejected_total == 0 and _encounter(desk, "NEW9")[0][0] == "discharged"


def test_a_visit_number_reused_for_another_patient_never_reaches_the_first(desk, tmp_path):
    desk.records.import_files([_write(tmp_path, "a.hl7", _msg("A01", "202601011000", mrn="A1", visit="V1"),
                                      _msg("A01", "202601011100", mrn="B2", visit="V1", ward="Cardiology", bed="C-1"),
                                      _msg("A03", "202601021000", mrn="B2", visit="V1"))])
    assert _encounter(desk, "A1")[0][:3] == ("inpatient", "Renal", "R-1")
    assert _encounter(desk, "B2")[0][0] == "discharged"


def test_merge_moves_the_stays_and_the_old_number_still_finds_the_patient(desk, tmp_path):
    desk.records.import_files([_write(tmp_path, "a.hl7", _msg("A01", "202601011000", mrn="OLD1", visit="V7"))])
    merge = _msg("A40", "202601011200", mrn="NEW1", visit="", extra="MRG|OLD1^^^HOSP^MR")
    r = desk.records.import_files([_write(tmp_path, "m.hl7", merge)])
    assert r.rejected_total == 0, r.rejected
    assert _encounter(desk, "NEW1")[0][0] == "inpatient"
    assert desk.session.db.conn.execute("SELECT count(*) FROM patients").fetchone()[0] == 1
    # a later message that still carries the merged-away number and the visit lands on the surviving patient
    r = desk.records.import_files([_write(tmp_path, "d.hl7", _msg("A03", "202601031000", mrn="OLD1", visit="V7"))])
    assert r.rejected_total == 0 and _encounter(desk, "NEW1")[0][0] == "discharged"


def test_identifiers_that_name_two_patients_are_refused(desk, tmp_path):
    desk.records.import_files([_write(tmp_path, "a.hl7", _msg("A01", "202601011000", mrn="P1", visit="V1"),
                                      _msg("A01", "202601011100", mrn="P2", visit="V2"))])
    both = _msg("A08", "202601021000", visit="").replace("PID|1||MRN001^^^HOSP^MR", "PID|1||P1^^^HOSP^MR~P2^^^HOSP^MR")
    r = desk.records.import_files([_write(tmp_path, "both.hl7", both)])
    assert r.rejected_total == 1 and "2 different patients" in r.rejected[0].reason


# ------------------------------------------------------------------------------------------------ FHIR
def _bundle(a1c: float = 8.6, dl: str = "DL-1", mrn: str = "H-1", pid: str = "p1", enc: str = "e1"):
    patient = {"resourceType": "Patient", "id": pid, "gender": "male", "birthDate": "1948-05-02",
               "name": [{"family": "Garcia", "given": ["Luis"]}],
               "identifier": [{"system": "urn:hosp:mrn", "value": mrn, "type": {"coding": [{"code": "MR"}]}},
                              {"system": "urn:dmv", "value": dl, "type": {"coding": [{"code": "DL"}]}}]}
    encounter = {"resourceType": "Encounter", "id": enc, "status": "finished", "class": {"code": "IMP"},
                 "subject": {"reference": f"urn:uuid:{pid}"}, "period": {"start": "2025-03-01T10:00:00Z",
                                                                        "end": "2025-03-05T12:00:00Z"},
                 "hospitalization": {"admitSource": {"coding": [{"code": "emd"}]},
                                     "dischargeDisposition": {"coding": [{"code": "snf"}]}}}
    cond = lambda cid, coding: {"resourceType": "Condition", "id": cid, "subject": {"reference": f"urn:uuid:{pid}"},  # noqa: E731
                                "encounter": {"reference": f"urn:uuid:{enc}"}, "code": {"coding": coding},
                                "recordedDate": "2025-03-01T11:00:00Z"}
    entries = [patient, encounter,
               cond(f"{enc}-c1", [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I50.9",
                                   "display": "Heart failure, unspecified"}]),
               cond(f"{enc}-c2", [{"system": "http://snomed.info/sct", "code": "44054006", "display": "Diabetes"},
                                  {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}]),
               {"resourceType": "Observation", "id": f"{enc}-o1", "status": "final",
                "subject": {"reference": f"urn:uuid:{pid}"}, "encounter": {"reference": f"urn:uuid:{enc}"},
                "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4", "display": "HbA1c"}]},
                "valueQuantity": {"value": a1c, "unit": "%"}, "effectiveDateTime": "2025-03-02T08:00:00Z"},
               {"resourceType": "MedicationRequest", "id": f"{enc}-m1", "status": "active",
                "subject": {"reference": f"urn:uuid:{pid}"}, "encounter": {"reference": f"urn:uuid:{enc}"},
                "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                          "code": "860975", "display": "24 HR Metformin hydrochloride "
                                                          "500 MG Extended Release Oral Tablet"}]},
                "authoredOn": "2025-03-01T12:00:00Z"}]
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in entries]}


def test_fhir_record_reaches_the_models_with_its_codes_and_reimports_idempotently(desk, tmp_path):
    from services.records.patients import encounters_uci_frame
    path = tmp_path / "b.json"
    path.write_text(json.dumps(_bundle()), encoding="utf-8")
    r = desk.records.import_files([path])
    assert r.rejected_total == 0 and r.counts["encounters"]["imported"] == 1 and r.counts["patients"]["imported"] == 1
    frame = encounters_uci_frame(desk.session.db.conn)
    row = frame.iloc[0]
    # ICD-10-CM through the CMS GEM; SNOMED through the ICD-10 code the source gave beside it
    assert (row["diag_1"], row["diag_2"]) == ("428.9", "250.00")
    assert row["A1Cresult"] == ">8" and row["metformin"] == "Steady" and row["diabetesMed"] == "Yes"
    assert (row["time_in_hospital"], row["admission_source_id"], row["discharge_disposition_id"]) == (4, 7, 3)
    assert row["age"] == "[70-80)"
    dx = desk.session.db.conn.execute("SELECT code, system, title, also_code FROM diagnoses ORDER BY position").fetchall()
    assert dx == [("I50.9", "ICD10", "Heart failure, unspecified", None), ("44054006", "SNOMED", "Diabetes", "E11.9")]
    assert desk.records.import_files([path]).changed == 0
    # a later export of the same stay (a new HbA1c): updated in place, not added twice
    path.write_text(json.dumps(_bundle(a1c=6.1)), encoding="utf-8")
    r = desk.records.import_files([path])
    assert r.counts["encounters"] == {"updated": 1} and r.counts["patients"] == {"unchanged": 1}
    assert desk.session.db.conn.execute("SELECT count(*) FROM encounters").fetchone()[0] == 1
    assert encounters_uci_frame(desk.session.db.conn).iloc[0]["A1Cresult"] == "Norm"


def test_a_shared_licence_number_does_not_merge_two_patients(desk, tmp_path):
    for n, (mrn, pid, enc) in enumerate((("H-1", "p1", "e1"), ("H-2", "p2", "e2"))):
        (tmp_path / f"b{n}.json").write_text(json.dumps(_bundle(dl="SAME", mrn=mrn, pid=pid, enc=enc)))
    r = desk.records.import_files([tmp_path / "b0.json", tmp_path / "b1.json"])
    assert r.counts["patients"]["imported"] == 2 and r.rejected_total == 0


def test_files_that_are_no_records_say_what_they_are(desk, tmp_path):
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.4\n...")
    with pytest.raises(ImportFileError, match="is a PDF"):
        desk.records.import_files([pdf])
    other = tmp_path / "beds.csv"
    other.write_text("ward,bed,occupied\nA,1,yes\n")
    with pytest.raises(ImportFileError, match="not the UCI encounter schema"):
        desk.records.import_files([other])
    folder = tmp_path / "drop"
    folder.mkdir()
    (folder / "README.txt").write_text("exported nightly")
    _write(folder, "a.hl7", _msg("A01", "202601011000"))
    r = desk.records.import_files([folder])
    assert r.counts["messages"]["imported"] == 1 and r.skipped["files in the folder that hold no records"] == 1


def test_cli_import_exit_codes(empty_store, tmp_path):
    good = _write(tmp_path, "good.hl7", _msg("A01", "202601011000"))
    bad = _write(tmp_path, "bad.hl7", _msg("A03", "202601011000", visit="NOPE"))
    env = {**os.environ, "WARDLENS_PASSWORD": PASSWORD, "WARDLENS_TRUST_DEV_MODELS": "1"}
    run = lambda *a: subprocess.run([sys.executable, str(ROOT / "main.py"), "import", "--db", str(empty_store.path),  # noqa: E731
                                     "--user", "admin", "--input", *map(str, a)], capture_output=True, text=True,
                                    env=env, timeout=120)
    r = run(good)
    assert r.returncode == 0, r.stderr
    assert "messages: 1 imported" in r.stdout
    r = run(bad)
    assert r.returncode == 3 and "rejected: bad.hl7 message 1 (A03): no visit 'NOPE'" in r.stdout


# ------------------------------------------------------------------------------------------------ shared sets
def test_bulk_export_imports_once_and_again_changes_nothing(desk):
    folder = shared_path("interop", "fhir_bulk_ndjson", "ndjson")
    r = desk.records.import_files([folder])
    assert r.rejected_total == 0
    assert r.counts["patients"]["imported"] == 13 and r.counts["encounters"]["imported"] == 1215
    counts = desk.records.counts()
    assert counts["encounters"] == 1215 and counts["encounters_by_class"]["ambulatory"] > 0
    again = desk.records.import_files([folder])
    assert again.changed == 0 and again.counts["encounters"]["unchanged"] == 1215


def test_synthea_bundles_every_encounter_kept(desk):
    from services.records.fhir import read_fhir
    files = sorted(shared_path("interop", "synthea_fhir_r4", "bundles").glob("*_*-*.json.gz"))[:30]
    expected = read_fhir(files).counts()
    r = desk.records.import_files(files)
    assert r.rejected_total == 0
    assert r.counts["encounters"]["imported"] == expected["encounters"]
    assert r.counts["patients"]["imported"] == expected["patients"]
    assert desk.records.counts()["labs"] >= expected["labs"]


def test_public_hl7_suites_every_message_accounted_for(desk):
    from services.records.hl7v2 import read_hl7
    folder = shared_path("interop", "hl7v2", "microsoft_fhir_converter_mit", "adt")
    batch = read_hl7([folder])
    r = desk.records.import_files([folder])
    applied = r.counts["messages"]["imported"]
    assert applied + r.rejected_total == len(batch.events) + len(batch.problems)
    assert applied >= 5 and all(x.reason for x in r.rejected)
    # the suite sends PATID1234 under two assigning authorities (ADT1 and test1): two systems' numbers are never
    # taken for one person, so those messages are refused with that reason rather than merged on a guess
    assert any("is another patient's hospital number" in x.reason and "hl7:ADT1" in x.reason for x in r.rejected)
    assert desk.records.import_files([folder]).counts["messages"]["unchanged"] == applied


def test_gz_of_a_bundle_is_read(desk, tmp_path):
    path = tmp_path / "b.json.gz"
    path.write_bytes(gzip.compress(json.dumps(_bundle()).encode()))
    assert desk.records.import_files([path]).counts["encounters"]["imported"] == 1


def test_scores_use_the_records_own_labs_and_visits(desk, tmp_path):
    """HOSPITAL's haemoglobin and sodium from the stay's last LOINC results, LACE's E from emergency visits in the 6
    months before, counted in the store; the assessment says which parts were measured."""
    bundle = _bundle()
    pid = "p1"
    lab = lambda oid, code, value, unit, when: {  # noqa: E731
        "fullUrl": f"urn:uuid:{oid}", "resource": {
            "resourceType": "Observation", "id": oid, "status": "final", "subject": {"reference": f"urn:uuid:{pid}"},
            "encounter": {"reference": "urn:uuid:e1"}, "effectiveDateTime": when,
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "valueQuantity": {"value": value, "unit": unit}}}
    er = {"fullUrl": "urn:uuid:er1", "resource": {
        "resourceType": "Encounter", "id": "er1", "status": "finished", "class": {"code": "EMER"},
        "subject": {"reference": f"urn:uuid:{pid}"},
        "period": {"start": "2025-01-10T10:00:00Z", "end": "2025-01-10T15:00:00Z"}}}
    bundle["entry"] += [lab("hb1", "718-7", 13.0, "g/dL", "2025-03-02T08:00:00Z"),
                        lab("hb2", "718-7", 10.4, "g/dL", "2025-03-04T08:00:00Z"),   # the last one counts
                        lab("na1", "2951-2", 131, "mmol/L", "2025-03-04T08:00:00Z"), er]
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    assert desk.records.import_files([path]).rejected_total == 0
    patient_id = desk.session.db.conn.execute("SELECT id FROM patients").fetchone()[0]
    nbr = desk.session.db.conn.execute("SELECT encounter_nbr FROM encounters WHERE class = 'inpatient'").fetchone()[0]
    a = desk.risk.assessments.readmission(patient_id, nbr)
    assert a.hospital_components["H"] == 1 and a.hospital_components["S"] == 1
    assert a.lace_components["E"] == 1 and a.hospital_components["T"] == 0
    assert set(a.measured) == {"lace.C", "lace.E", "hospital.T", "hospital.H", "hospital.S"}
    # Charlson over the stay's ICD-coded diagnoses (Quan ICD-10): heart failure I50.9 + diabetes E11.9, no assumption
    assert a.lace_components["C"] == 2 and "all 2 ICD-coded diagnoses" in a.measured["lace.C"]
    assert "10.4 g/dL" in a.measured["hospital.H"] and "131 mmol/L" in a.measured["hospital.S"]


def test_a_diagnosis_the_model_cannot_read_is_named_in_the_report(desk, tmp_path):
    import shutil
    bundle = _bundle()
    bundle["entry"][3]["resource"]["code"]["coding"] = [{"system": "http://snomed.info/sct", "code": "44054006"}]
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    desk.records.import_files([path])
    patient_id = desk.session.db.conn.execute("SELECT id FROM patients").fetchone()[0]
    nbr = desk.session.db.conn.execute("SELECT encounter_nbr FROM encounters").fetchone()[0]
    a = desk.risk.assessments.readmission(patient_id, nbr)
    assert a.unknown_inputs == ("diagnosis 44054006 (SNOMED): no ICD-9-CM group for the model, counted as missing",)
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(desk.reports.patient_pdf(patient_id, nbr))
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Not known to the model: diagnosis 44054006 (SNOMED)" in " ".join(text.split())
    assert "From this patient's record:" in " ".join(text.split())


def test_score_commands_take_fhir_and_hl7_without_a_store(tmp_path):
    import csv
    bundle = tmp_path / "b.json"
    bundle.write_text(json.dumps(_bundle()), encoding="utf-8")
    feed = _write(tmp_path, "feed.hl7", _msg("A01", "202601011000", ward="", bed=""),
                  _msg("A03", "202601041000", ward="", bed="", disposition="01"),
                  _msg("A02", "202601051000", mrn="X9", visit="NOPE"))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "WARDLENS_TRUST_DEV_MODELS": "1", "TMPDIR": str(scratch)}
    env.pop("WARDLENS_PASSWORD", None)

    def score(model: str, src, out):
        return subprocess.run([sys.executable, str(ROOT / "main.py"), "score", model, "--input", str(src), "--output",
                               str(out)], capture_output=True, text=True, env=env, timeout=180)
    r = score("readmission", bundle, tmp_path / "r.csv")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = list(csv.DictReader((tmp_path / "r.csv").open(encoding="utf-8")))
    assert len(rows) == 1
    row = rows[0]
    assert (row["encounter_id"], row["patient_nbr"], row["status"], row["los_days"]) == ("e1", "H-1", "ok", "4")
    assert 0 < float(row["risk"]) < 1 and row["band"] in ("low", "medium", "high")
    assert int(row["lace"]) == sum(int(row[f"lace_{k}"]) for k in "lace")
    assert int(row["hospital"]) == sum(int(row[f"hospital_{k}"]) for k in "hospita")
    r = score("los", feed, tmp_path / "l.csv")
    assert r.returncode == 3 and "no visit 'NOPE'" in r.stdout, r.stdout + r.stderr
    rows = list(csv.DictReader((tmp_path / "l.csv").open(encoding="utf-8")))
    assert [(x["encounter_id"], x["patient_nbr"], x["los_days"]) for x in rows[:1]] == [("V100", "MRN001", "3")]
    assert rows[1]["status"] == "error" and "no visit 'NOPE'" in rows[1]["error"]
    assert list(scratch.iterdir()) == []   # the throwaway store is gone


# ------------------------------------------------------------------------------------------------ watched folder
def _age(path, seconds: float = 60) -> None:
    t = path.stat().st_mtime - seconds
    os.utime(path, (t, t))


def test_watched_folder_imports_in_arrival_order_and_files_the_results(desk, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    admit = _write(drop, "zz-admit.hl7", _msg("A01", "202601011000"))
    discharge = _write(drop, "aa-discharge.hl7", _msg("A03", "202601031000"))   # arrives after, sorts before
    _age(admit, 120)
    _age(discharge, 60)
    orphan = _write(drop, "orphan.hl7", _msg("A02", "202601021000", visit="V999"))
    _age(orphan, 30)
    (drop / "junk.bin").write_bytes(b"\x00\x01binary")
    _age(drop / "junk.bin", 20)
    writing = _write(drop, "still-writing.hl7", _msg("A01", "202601011000", mrn="LATE", visit="V5"))   # just now
    results = desk.records.import_watched_folder(drop)
    assert [(r.name, r.ok) for r in results] == [("zz-admit.hl7", True), ("aa-discharge.hl7", True),
                                                ("orphan.hl7", False), ("junk.bin", False)]
    assert _encounter(desk)[0][0] == "discharged"   # the discharge applied after its admission
    assert sorted(p.name for p in (drop / "done").iterdir()) == ["aa-discharge.hl7", "zz-admit.hl7"]
    failed = sorted(p.name for p in (drop / "failed").iterdir())
    assert failed == ["junk.bin", "junk.bin.reason.txt", "orphan.hl7", "orphan.hl7.reason.txt"]
    assert "no visit 'V999'" in (drop / "failed" / "orphan.hl7.reason.txt").read_text()
    assert "binary data" in (drop / "failed" / "junk.bin.reason.txt").read_text()
    assert writing.exists()   # left for the next pass until it stops changing
    # a nurse's desk never takes (or moves) the files
    from services.core.errors import PermissionDenied
    from services.desk import open_desk
    from models.domain import Role
    name = f"nurse-{os.urandom(3).hex()}"   # a server's logins are cluster-wide: a name of this test's own
    desk.site.accounts.add_user(name, "tulip-ledger-basalt-9", Role.NURSE)
    nurse = open_desk(desk.store_path, name, "tulip-ledger-basalt-9")
    try:
        _age(writing, 60)
        with pytest.raises(PermissionDenied):
            nurse.records.import_watched_folder(drop)
        assert writing.exists()
    finally:
        nurse.lock()


# ------------------------------------------------------------------------------------------------ CSV with a mapping
MAPPING = ROOT / "resources" / "mappings" / "synthea-csv.json"


def test_synthea_csv_export_through_the_shipped_mapping(desk):
    folder = shared_path("interop", "synthea_csv", "csv")
    r = desk.records.import_files([folder], mapping=MAPPING)
    assert r.rejected_total == 0
    assert r.counts["patients"]["imported"] == 27 and r.counts["encounters"]["imported"] == 604
    counts = desk.records.counts()
    assert counts["encounters_by_class"]["inpatient"] == 11 and counts["diagnoses"] == 438   # SOURCES.md's counts
    assert desk.records.import_files([folder], mapping=MAPPING).changed == 0


def test_a_flat_hospital_csv_with_diagnosis_columns(desk, tmp_path):
    export = tmp_path / "adm.csv"
    export.write_text("PATNO,SURNAME,FORENAME,DOB,SEX,ADMNO,ADMITTED,DISCHARGED,DEST,DX1,DX2\n"
                      "P1,Okafor,Ada,1950-02-03,F,A1,2025-01-01 10:00,2025-01-06 12:00,01,I50.9,N17.9\n"
                      "P1,Okafor,Ada,1950-02-03,F,A2,2025-03-01 10:00,,,J18.9,\n"
                      ",Nobody,No,1950-01-01,F,A3,2025-03-01 10:00,,,J18.9,\n", encoding="utf-8")
    mapping = tmp_path / "hospital.json"
    mapping.write_text(json.dumps({
        "wardlens_mapping": 1, "name": "pas",
        "patients": {"id": "PATNO", "family": "SURNAME", "given": "FORENAME", "birth_date": "DOB", "sex": "SEX",
                     "values": {"sex": {"F": "Female", "M": "Male"}}},
        "encounters": {"id": "ADMNO", "patient": "PATNO", "start": "ADMITTED", "end": "DISCHARGED", "class": "=inpatient",
                       "discharge_disposition": "DEST", "values": {"discharge_disposition": {"01": "home"}}},
        "diagnoses": {"patient": "PATNO", "encounter": "ADMNO", "code": ["DX1", "DX2"], "system": "=ICD10"}}))
    r = desk.records.import_files([export], mapping=mapping)
    assert r.counts["patients"]["imported"] == 1 and r.counts["encounters"]["imported"] == 2
    assert r.rejected_total == 3 and {x.where for x in r.rejected} == {"line 4"}   # no patient id: its stay, its dx
    rows = desk.session.db.conn.execute("SELECT status, discharge_disposition_id, number_diagnoses FROM encounters "
                                        "ORDER BY admit_time").fetchall()
    assert rows == [("discharged", 1, 2), ("inpatient", None, 1)]
    assert [row["patient_number"] for row in desk.census_rows()] == ["P1"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"wardlens_mapping": 1, "patients": {"id": "NOPE"}, "encounters": {"id": "ADMNO"}}))
    with pytest.raises(ImportFileError, match="encounters: no column for patient, start"):
        desk.records.import_files([export], mapping=bad)
    bad.write_text(json.dumps({"wardlens_mapping": 1, "patients": {"id": "NOPE"},
                               "encounters": {"id": "ADMNO", "patient": "PATNO", "start": "ADMITTED"}}))
    with pytest.raises(ImportFileError, match="has no column NOPE"):
        desk.records.import_files([export], mapping=bad)


def test_a_stay_without_diabetes_is_flagged_outside_the_models_population(desk, tmp_path):
    bundle = _bundle()
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["id"] not in ("e1-c2", "e1-m1", "e1-o1")]
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    desk.records.import_files([path])
    patient_id = desk.session.db.conn.execute("SELECT id FROM patients").fetchone()[0]
    nbr = desk.session.db.conn.execute("SELECT encounter_nbr FROM encounters").fetchone()[0]
    a = desk.risk.assessments.readmission(patient_id, nbr)
    assert "trained on diabetic inpatients only" in a.outside_population
    # with the diabetes coded (the full bundle), the same stay is inside it
    path.write_text(json.dumps(_bundle()), encoding="utf-8")
    desk.records.import_files([path])
    assert desk.risk.assessments.readmission(patient_id, nbr).outside_population == ""


def _stay_then_emergency_visit(desk, tmp_path) -> int:
    """The bundle's hospital stay (March 2025) and an emergency visit a month after it; the patient's id."""
    er = {"resourceType": "Encounter", "id": "er1", "status": "finished", "class": {"code": "EMER"},
          "subject": {"reference": "urn:uuid:p1"}, "period": {"start": "2025-04-10T10:00:00Z",
                                                              "end": "2025-04-10T15:00:00Z"}}
    bundle = _bundle()
    bundle["entry"].append({"fullUrl": "urn:uuid:er1", "resource": er})
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    desk.records.import_files([path])
    return desk.session.db.conn.execute("SELECT id FROM patients").fetchone()[0]


def test_an_emergency_visit_is_shown_as_such_and_never_scored_or_reported(desk, tmp_path):
    from services.core.errors import ValidationError
    patient_id = _stay_then_emergency_visit(desk, tmp_path)
    encounters = desk.records.patients.encounters(patient_id)
    assert [e.kind for e in encounters] == ["Emergency visit", "Hospital stay"]   # latest first
    er_nbr, stay_nbr = encounters[0].encounter_nbr, encounters[1].encounter_nbr
    with pytest.raises(ValidationError, match="not a hospital stay"):
        desk.reports.patient_pdf(patient_id, er_nbr)
    assert desk.reports.patient_pdf(patient_id).startswith(b"%PDF")   # the latest stay, not the later ED visit
    with pytest.raises(KeyError):
        desk.risk.assessments.readmission(patient_id, er_nbr)
    assert desk.risk.assessments.readmission(patient_id, stay_nbr).eligible
    # the stay's history is what the store counted: the ED visit came after it, so none before
    from services.records.history import prior_use
    assert prior_use(encounters[1], encounters).text == "0 outpatient / 0 emergency / 0 inpatient (counted in this record)"


def test_the_patient_page_says_why_an_emergency_visit_has_no_risk(qtbot, owner, desk, tmp_path):
    from viewmodels.background import BackgroundRunner
    from viewmodels.patients_vm import PatientViewModel
    patient_id = _stay_then_emergency_visit(desk, tmp_path)
    page = PatientViewModel(desk, BackgroundRunner(owner), owner)
    with qtbot.waitSignal(page.riskChanged, timeout=20_000, check_params_cb=lambda r: r is not None):
        page.load(patient_id)
    assert page.selected_encounter.kind == "Hospital stay"   # opened on the stay, not on the later ED visit
    page.select_encounter(0)   # the emergency visit (latest)
    assert page.risk is None and "an emergency visit, not a hospital stay" in page.risk_message
    with qtbot.waitSignal(page.riskChanged, timeout=20_000, check_params_cb=lambda r: r is not None):
        page.select_encounter(1)
    assert page.risk.eligible
