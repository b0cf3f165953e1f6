"""The import's safety rules, each from a defect a review found by attacking it (crafted FHIR, HL7 v2 and mapped
CSVs): no message or resource reaches another patient's record, a late or repeated message never undoes the census,
a desk edit is never overwritten, one bad file or record never stops the rest, nothing is read or written outside
its folder."""
from __future__ import annotations

import json
import os

import pytest

from tests.test_records_import import _bundle, _encounter, _msg, _write


def _save(tmp_path, name: str, doc) -> object:
    p = tmp_path / name
    p.write_text(json.dumps(doc), encoding="utf-8")
    return p


def _labs(desk, mrn: str) -> list:
    c = desk.session.db.conn
    return c.execute("SELECT l.code, l.value_num FROM lab_results l JOIN encounters e ON e.id = l.encounter_id "
                     "JOIN patients p ON p.id = e.patient_id WHERE p.mrn = ? AND l.code IS NOT NULL",
                     (desk.session.codec.number_key(mrn),)).fetchall()


def test_another_systems_encounter_with_the_same_id_is_another_stay(desk, tmp_path):
    desk.records.import_files([_save(tmp_path, "a.json", _bundle(mrn="H-1", pid="p1", enc="1"))])
    other = _bundle(mrn="H-2", pid="q9", enc="1", a1c=5.0)   # another source: its Encounter/1 is another patient's
    r = desk.records.import_files([_save(tmp_path, "b.json", other)])
    assert r.counts["encounters"]["imported"] == 1 and r.rejected_total == 0
    assert _labs(desk, "H-1") == [("4548-4", 8.6)] and _labs(desk, "H-2") == [("4548-4", 5.0)]
    # an Encounter.identifier naming the first patient's stay is refused, never moved over
    stolen = _bundle(mrn="H-3", pid="r1", enc="x")
    first = desk.records.import_files([_save(tmp_path, "c0.json", _bundle(mrn="H-4", pid="s1", enc="y"))])
    assert first.rejected_total == 0
    bundle4 = _bundle(mrn="H-4", pid="s1", enc="y")
    bundle4["entry"][1]["resource"]["identifier"] = [{"system": "urn:pas:visit", "value": "V-77"}]
    desk.records.import_files([_save(tmp_path, "c1.json", bundle4)])
    stolen["entry"][1]["resource"]["identifier"] = [{"system": "urn:pas:visit", "value": "V-77"}]
    r = desk.records.import_files([_save(tmp_path, "c2.json", stolen)])
    assert any("another patient's stay" in x.reason for x in r.rejected)
    assert _encounter(desk, "H-4")[0][0] == "discharged" and _labs(desk, "H-4") == [("4548-4", 8.6)]


def test_a_lab_whose_subject_is_another_patient_is_never_filed_on_the_stay(desk, tmp_path):
    bundle = _bundle()
    bob = {"resourceType": "Patient", "id": "bob", "identifier": [{"system": "urn:hosp:mrn", "value": "BOB",
                                                                   "type": {"coding": [{"code": "MR"}]}}]}
    lab = {"resourceType": "Observation", "id": "x", "status": "final", "subject": {"reference": "urn:uuid:bob"},
           "encounter": {"reference": "urn:uuid:e1"}, "code": {"coding": [{"system": "http://loinc.org",
                                                                           "code": "718-7"}]},
           "valueQuantity": {"value": 6.1, "unit": "g/dL"}}
    bundle["entry"] += [{"fullUrl": "urn:uuid:bob", "resource": bob}, {"fullUrl": "urn:uuid:x", "resource": lab}]
    r = desk.records.import_files([_save(tmp_path, "b.json", bundle)])
    assert any("is not the patient of its encounter" in x.reason for x in r.rejected)
    assert ("718-7", 6.1) not in _labs(desk, "H-1")


def test_numbers_that_are_not_a_patients_own_are_never_matched(desk, tmp_path):
    desk.records.patients.add_patient({"mrn": "ALICE1", "given_name": "Alice", "family_name": "Andrews",
                                       "birth_date": "1960-01-01", "sex": "Female", "race": "?"})
    # a FHIR Patient with no identifier whose id is Alice's number: not Alice
    intruder = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
        "resourceType": "Patient", "id": "ALICE1", "name": [{"family": "Mallory", "given": ["Max"]}],
        "birthDate": "1999-09-09"}}]}
    r = desk.records.import_files([_save(tmp_path, "i.json", intruder)])
    assert r.rejected_total == 1 and "another patient's hospital number" in r.rejected[0].reason
    # an HL7 PID-3 with only a driver's licence names no patient
    dl = _msg("A01", "202601011000").replace("PID|1||MRN001^^^HOSP^MR", "PID|1||D123^^^DMV^DL")
    r = desk.records.import_files([_write(tmp_path, "dl.hl7", dl)])
    assert r.rejected_total == 1 and "no hospital identifier" in r.rejected[0].reason
    # the same number from two assigning authorities is two people
    a = _msg("A01", "202601011000", mrn="12345", visit="V1").replace("12345^^^HOSP^MR", "12345^^^HOSP_A^MR")
    b = _msg("A01", "202601011100", mrn="12345", visit="V2").replace("12345^^^HOSP^MR", "12345^^^HOSP_B^MR")
    r = desk.records.import_files([_write(tmp_path, "ab.hl7", a, b)])
    assert r.counts["messages"]["imported"] == 1 and "from hl7:HOSP_A" in r.rejected[0].reason


def test_a_merge_of_two_patients_with_the_same_visit_number_is_refused(desk, tmp_path):
    desk.records.import_files([_write(tmp_path, "a.hl7", _msg("A01", "202601011000", mrn="S1", visit="V1"),
                                      _msg("A01", "202601011100", mrn="P1", visit="V1", ward="Cardiology", bed="C-1"))])
    merge = _msg("A40", "202601011200", mrn="S1", visit="", extra="MRG|P1^^^HOSP^MR")
    r = desk.records.import_files([_write(tmp_path, "m.hl7", merge)])
    assert r.rejected_total == 1 and "same visit number" in r.rejected[0].reason
    assert len(_encounter(desk, "S1")) == 1 and len(_encounter(desk, "P1")) == 1
    # a merge without the clash: the merged-away id is never given to a new patient
    desk.records.import_files([_write(tmp_path, "b.hl7", _msg("A01", "202601011300", mrn="P2", visit="V9"))])
    old_id = desk.session.db.conn.execute("SELECT max(id) FROM patients").fetchone()[0]
    r = desk.records.import_files([_write(tmp_path, "m2.hl7", _msg("A40", "202601011400", mrn="S1", visit="",
                                                                   extra="MRG|P2^^^HOSP^MR"))])
    assert r.rejected_total == 0
    desk.records.import_files([_write(tmp_path, "n.hl7", _msg("A01", "202601011500", mrn="NEW", visit="V1"))])
    assert desk.session.db.conn.execute("SELECT id FROM patients WHERE mrn = ?", (
        desk.session.codec.number_key("NEW"),)).fetchone()[0] > old_id
    assert _encounter(desk, "NEW")[0][0] == "inpatient" and len(_encounter(desk, "S1")) == 2


def test_late_repeated_and_cancelled_messages_never_undo_the_census(desk, tmp_path):
    desk.records.import_files([_write(tmp_path, "a.hl7", _msg("A01", "202601011000"),
                                      _msg("A03", "202601031000"))])
    # another patient takes bed R-1; a cancelled discharge then re-opens the stay without taking the bed
    desk.records.import_files([_write(tmp_path, "b.hl7", _msg("A01", "202601031200", mrn="OTHER", visit="V2"))])
    r = desk.records.import_files([_write(tmp_path, "c.hl7", _msg("A13", "202601031300"))])
    assert r.rejected_total == 0 and "already taken" in " ".join(r.lines())
    beds = desk.session.db.conn.execute("SELECT bed_id FROM encounters WHERE status = 'inpatient' "
                                        "AND bed_id IS NOT NULL").fetchall()
    assert len(beds) == len(set(beds)) == 1
    # a message older than the last one applied to the visit is refused
    r = desk.records.import_files([_write(tmp_path, "d.hl7", _msg("A02", "202601021000", ward="Cardiology",
                                                                  bed="C-2"))])
    assert r.rejected_total == 1 and "before the last message applied" in r.rejected[0].reason
    # an update naming a place that is no ward keeps the stay where the census has it
    desk.records.import_files([_write(tmp_path, "e.hl7", _msg("A08", "202601041000", ward="RENAL-W", bed="9"))])
    assert _encounter(desk)[0][1] == "Renal"
    # once cancelled (A11), a cancelled discharge or a resent admission never puts it back on the census
    desk.records.import_files([_write(tmp_path, "f.hl7", _msg("A11", "202601041100"))])
    r = desk.records.import_files([_write(tmp_path, "g.hl7", _msg("A13", "202601041200"),
                                          _msg("A01", "202601041300"))])
    assert r.rejected_total == 2 and all("cancelled" in x.reason for x in r.rejected)
    assert _encounter(desk)[0][0] == "discharged"


def test_a_stay_changed_on_the_desk_is_never_overwritten_by_the_next_export(desk, tmp_path):
    path = _save(tmp_path, "b.json", _bundle())
    desk.records.import_files([path])
    pid = desk.session.db.conn.execute("SELECT id FROM patients").fetchone()[0]
    enc = desk.records.patients.encounters(pid)[0]
    desk.records.patients.save_encounter(pid, {
        "admit_time": "2025-03-01 10:00", "discharge_time": "2025-03-05 12:00", "admission_type_id": 1,
        "admission_source_id": 7, "discharge_disposition_id": 3, "diagnoses": ["428.0", "250.02"],
        "medications": {"insulin": "Up"}, "a1c_result": ">8", "max_glu_serum": "None"}, enc.id)
    r = desk.records.import_files([_save(tmp_path, "b.json", _bundle(a1c=6.0))])
    assert r.rejected_total == 1 and "changed on the desk" in r.rejected[0].reason
    assert [d.code for d in desk.records.patients.encounters(pid)[0].diagnoses] == ["428.0", "250.02"]


def test_malformed_and_impossible_records_are_refused_one_by_one(desk, tmp_path):
    bundle = _bundle()
    bundle["entry"][0]["resource"]["birthDate"] = "2090-01-01"      # the patient: born in the future
    good = _bundle(mrn="H-9", pid="p9", enc="e9")
    good["entry"][4]["resource"]["valueQuantity"]["value"] = float("nan")   # its HbA1c: not a number
    odd = _bundle(mrn="H-8", pid="p8", enc="e8")
    odd["entry"][1]["resource"]["period"] = {"start": "2025-03-05T10:00:00Z", "end": "2025-03-01T10:00:00Z"}
    weird = _bundle(mrn="H-7", pid="p7", enc="e7")
    weird["entry"][1]["resource"]["class"] = "IMP"                   # a string where an object belongs
    weird["entry"][2]["resource"]["code"]["coding"][0]["code"] = {"x": 1}
    r = desk.records.import_files([_save(tmp_path, f"{n}.json", b) for n, b in
                                   (("a", bundle), ("b", good), ("c", odd), ("d", weird))])
    reasons = " | ".join(x.reason for x in r.rejected)
    assert "in the future or before 1890" in reasons and "not a finite number" in reasons
    assert "ends (2025-03-01" in reasons and "malformed" in reasons
    assert _encounter(desk, "H-9")[0][0] == "discharged"   # the rest of the stay came in
    assert ("4548-4", float("nan")) not in _labs(desk, "H-9") and _labs(desk, "H-9") == []


def test_entered_in_error_is_idempotent_and_never_scored(desk, tmp_path):
    from services.records.patients import encounters_uci_frame
    desk.records.import_files([_save(tmp_path, "b.json", _bundle())])
    bad = _bundle()
    bad["entry"][1]["resource"]["status"] = "entered-in-error"
    path = _save(tmp_path, "b2.json", bad)
    assert desk.records.import_files([path]).counts["encounters"] == {"updated": 1}
    assert desk.records.import_files([path]).counts["encounters"] == {"unchanged": 1}
    assert encounters_uci_frame(desk.session.db.conn).empty


def test_a_patients_digest_does_not_reveal_the_name(desk, tmp_path):
    from services.records.intake import digest
    if getattr(desk.session.db, "kind", "") == "server":
        # names are plain columns on the server; the digest is kept from analysts with them, by column privilege
        from services.store.server_schema import ANALYST_PATIENT_COLUMNS
        assert "source_digest" not in ANALYST_PATIENT_COLUMNS and "given_name" not in ANALYST_PATIENT_COLUMNS
        return
    desk.records.import_files([_save(tmp_path, "b.json", _bundle())])
    stored = desk.session.db.conn.execute("SELECT source_digest FROM patients").fetchone()[0]
    assert stored != digest(["Luis", "Garcia", "1948-05-02", "Male", False]) and len(stored) > 20


def test_one_failing_file_never_blocks_the_watched_folder(desk, tmp_path, monkeypatch):
    import services.records.watch as watch
    drop = tmp_path / "drop"
    drop.mkdir()
    first = _write(drop, "a.hl7", _msg("A01", "202601011000"))
    second = _write(drop, "b.hl7", _msg("A03", "202601031000"))
    for i, f in enumerate((first, second)):
        t = f.stat().st_mtime - 100 + i
        os.utime(f, (t, t))
    real = watch.import_records

    def flaky(session, paths, **kw):
        if paths[0].name == "a.hl7":
            raise RuntimeError("a fault of this one file")
        return real(session, paths, **kw)
    monkeypatch.setattr(watch, "import_records", flaky)
    results = desk.records.import_watched_folder(drop)
    assert [(r.name, r.ok) for r in results] == [("a.hl7", False), ("b.hl7", False)]
    assert "RuntimeError: a fault of this one file" in (drop / "failed" / "a.hl7.reason.txt").read_text()


def test_the_watched_folder_refuses_a_linked_failed_folder(desk, tmp_path):
    from services.records.watch import WatchFolderUnsafe
    drop, elsewhere = tmp_path / "drop", tmp_path / "autostart"
    drop.mkdir()
    elsewhere.mkdir()
    (drop / "failed").symlink_to(elsewhere)
    f = _write(drop, "x.bin", "\x00junk")
    t = f.stat().st_mtime - 100
    os.utime(f, (t, t))
    with pytest.raises(WatchFolderUnsafe):
        desk.records.import_watched_folder(drop)
    assert list(elsewhere.iterdir()) == [] and f.exists()


def test_a_mapping_never_reads_outside_its_folder(desk, tmp_path):
    from services.core.errors import ImportFileError
    export = tmp_path / "export"
    export.mkdir()
    (tmp_path / "secret.csv").write_text("Id,LAST\n1,Secret\n")
    mapping = {"wardlens_mapping": 1, "patients": {"file": "../secret.csv", "id": "Id", "family": "LAST"},
               "encounters": {"file": "e.csv", "id": "Id", "patient": "P", "start": "S"}}
    with pytest.raises(ImportFileError, match="no folders, no '..'"):
        desk.records.import_files([export], mapping=_save(tmp_path, "m.json", mapping))
    mapping["patients"]["file"], mapping["patients"]["values"] = "p.csv", ["not", "a", "map"]
    with pytest.raises(ImportFileError, match="values must map"):
        desk.records.import_files([export], mapping=_save(tmp_path, "m.json", mapping))
