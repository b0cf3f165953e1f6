"""Reading FHIR R4 (the interoperability issue, step 1): the shared Synthea Bundles and the Bulk Data NDJSON export,
every entry kept, skipped by type or rejected with its file and reason; references of every kind resolved."""
from __future__ import annotations

import gzip
import json

import pytest

from services.records.fhir import NotFhir, read_fhir
from tests.conftest import shared_path


def _entries_in(files) -> int:
    n = 0
    for f in files:
        raw = f.read_bytes()
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8-sig")
        try:
            doc = json.loads(text)
            n += len(doc.get("entry", [])) if doc.get("resourceType") == "Bundle" else 1
        except json.JSONDecodeError:
            n += sum(1 for line in text.splitlines() if line.strip())
    return n


def _accounted(batch) -> int:
    c = batch.counts()
    locations = len(batch.locations)
    return c["patients"] + c["encounters"] + c["diagnoses"] + c["medications"] + c["labs"] + c["procedures"] + \
        c["rejected"] + \
        c["skipped"] + locations


def test_bulk_ndjson_export_every_line_accounted_for():
    folder = shared_path("interop", "fhir_bulk_ndjson", "ndjson")
    batch = read_fhir([folder])
    files = sorted(folder.glob("*.ndjson"))
    assert _accounted(batch) == _entries_in(files)
    c = batch.counts()
    assert c["patients"] == 13 and c["encounters"] == 1215 and c["rejected"] == 0
    classes = {e.cls for e in batch.encounters.values()}
    assert {"inpatient", "emergency", "ambulatory"} <= classes
    # relative references across files: every encounter's patient and every diagnosis's encounter resolve
    assert all(e.patient in batch.patients for e in batch.encounters.values())
    assert all(d.encounter in batch.encounters for d in batch.clinical if d.kind == "diagnosis")
    assert {d.coded.system for d in batch.clinical} == {"SNOMED", "RXNORM"}


def test_transaction_bundles_with_urn_uuid_references():
    folder = shared_path("interop", "synthea_fhir_r4", "bundles")
    files = sorted(folder.glob("*.json.gz"))[:40]
    batch = read_fhir(files)
    assert _accounted(batch) == _entries_in(files)
    assert batch.counts()["rejected"] == 0 and batch.counts()["labs"] > 0
    lab = next(x for x in batch.clinical if x.kind == "lab" and x.value is not None)
    assert lab.coded.system == "LOINC" and lab.unit and lab.patient in batch.patients
    p = next(iter(batch.patients.values()))
    assert p.family and p.birth_date and p.sex in ("Female", "Male") and p.identifiers


def test_a_file_that_is_not_fhir_says_what_it_looks_like(tmp_path):
    (tmp_path / "adt.json").write_text("MSH|^~\\&|EPIC|...")
    with pytest.raises(NotFhir, match="not FHIR JSON"):
        read_fhir([tmp_path / "adt.json"])
    (tmp_path / "x.json").write_text('{"hello": 1}')
    with pytest.raises(NotFhir, match="no resourceType"):
        read_fhir([tmp_path / "x.json"])


def test_conditional_references_and_rejections(tmp_path):
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "id": "p1", "gender": "female",
                                                "identifier": [{"system": "urn:mrn", "value": "4711"}],
                                                "name": [{"family": "Okafor", "given": ["Ada"]}]}},
        {"resource": {"resourceType": "Encounter", "id": "e1", "class": {"code": "IMP"}, "status": "in-progress",
                      "subject": {"reference": "Patient?identifier=urn:mrn|4711"},
                      "period": {"start": "2026-12-01T08:00:00Z"}}},
        {"resource": {"resourceType": "Condition", "id": "c1", "subject": {"reference": "urn:uuid:p1"},
                      "encounter": {"reference": "Encounter/e1"},
                      "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I50.9"}]}}},
        {"resource": {"resourceType": "Condition", "id": "c2", "subject": {"reference": "Patient/nobody"},
                      "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}]}}},
        {"resource": {"resourceType": "Condition", "id": "c3", "subject": {"reference": "urn:uuid:p1"}}},
        {"resource": {"resourceType": "Claim", "id": "x"}},
        {"fullUrl": "urn:uuid:broken"},
    ]}
    (tmp_path / "b.json.gz").write_bytes(gzip.compress(json.dumps(bundle).encode()))
    batch = read_fhir([tmp_path])
    enc = batch.encounters["Encounter/e1"]
    assert enc.patient == "Patient/p1" and enc.cls == "inpatient"
    dx = [c for c in batch.clinical if c.kind == "diagnosis"]
    assert len(dx) == 1 and dx[0].coded == type(dx[0].coded)("I50.9", "ICD10", "") and dx[0].encounter == "Encounter/e1"
    reasons = sorted(p.reason for p in batch.problems)
    assert len(reasons) == 3 and any("not in the files" in r for r in reasons) and any("without a code" in r
                                                                                       for r in reasons)
    assert batch.skipped["Claim"] == 1 and all(p.file == "b.json.gz" and p.entry.startswith("entry ") for p in
                                               batch.problems)
