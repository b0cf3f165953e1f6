"""CSV exports: formula-injection escaping, BOM, permissions and audit, HIPAA Safe Harbor de-identification."""
from __future__ import annotations

import csv
import io
import re

import pytest

from tests.conftest import identities
from services.site.accounts import unlock
from services.core.errors import PermissionDenied
from services.records.export import (BOM, DEID_COLUMNS, IDENTIFIED_COLUMNS, age_group, csv_bytes, deidentified_encounters,
                             escape_cell, export_encounters_csv, export_table, year_of)


@pytest.mark.parametrize("raw, expected", [
    ("=1+1", "'=1+1"), ("+41 79 000", "'+41 79 000"), ("-2+3", "'-2+3"), ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
    ("\t=cmd", "'\t=cmd"), ("\r=cmd", "'\r=cmd"), ("  =HYPERLINK(\"x\")", "'  =HYPERLINK(\"x\")"),
    ("\uff1d1+1", "'\uff1d1+1"), ("Smith", "Smith"), ("a=b", "a=b"), ("", ""), (None, ""), (5, "5"), (-5, "-5"),
    (2.5, "2.5"), ("[70-80)", "[70-80)"),
])
def test_escape_cell(raw, expected):
    assert escape_cell(raw) == expected


def test_csv_bytes_round_trip_with_bom_and_escaping():
    rows = [{"name": "=cmd|' /C calc'!A0", "n": 3}, {"name": "Ærø, Zoë", "n": -1}]
    data = csv_bytes(rows, ["name", "n"], bom=True)
    assert data.startswith(BOM.encode("utf-8"))
    back = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert back == [["name", "n"], ["'=cmd|' /C calc'!A0", "3"], ["Ærø, Zoë", "-1"]]
    assert not csv_bytes(rows, ["name", "n"]).startswith(BOM.encode("utf-8"))
    assert csv_bytes([("x", 1)], ["a", "b"]).decode() == "a,b\r\nx,1\r\n"
    with pytest.raises(ValueError):
        csv_bytes([("x",)], ["a", "b"])


def test_safe_harbor_helpers():
    assert age_group("[90-100)") == "90+"
    assert age_group("[80-90)") == "[80-90)"
    assert age_group("") == ""
    assert year_of("2026-11-22 10:15") == "2026"
    assert year_of(None) == "" and year_of("") == ""


def test_nurse_cannot_export_and_is_audited(sessions, tmp_path):
    nurse = sessions("nurse.demo", "wardlens-nurse")
    with pytest.raises(PermissionDenied):
        export_table(nurse, ["a"], [["x"]], tmp_path / "t.csv", "worklist")
    with pytest.raises(PermissionDenied):
        export_encounters_csv(nurse, tmp_path / "e.csv")
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "e.csv").exists()
    assert any(e.action == "denied" and e.entity_id == "export" for e in nurse.audit.recent(5))


def test_analyst_gets_only_deidentified_data(sessions, tmp_path):
    analyst = sessions("analyst.demo", "wardlens-analyst")
    with pytest.raises(PermissionDenied):
        export_encounters_csv(analyst, tmp_path / "id.csv", identified=True)
    with pytest.raises(PermissionDenied):
        export_table(analyst, ["patient"], [["Patient 123"]], tmp_path / "t.csv", "patient list")
    assert export_table(analyst, ["ward", "n"], [["Surgery", 3]], tmp_path / "ok.csv", "ward counts",
                        identified=False) == 1
    n = export_encounters_csv(analyst, tmp_path / "deid.csv", bom=True)
    raw = (tmp_path / "deid.csv").read_bytes()
    assert raw.startswith(BOM.encode("utf-8"))
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert n == len(rows) > 1000
    assert tuple(rows[0]) == DEID_COLUMNS
    # nothing identifying leaks: names, hospital numbers, encounter numbers, birth dates, full dates
    conn = analyst.db.conn
    # (numbers of 5+ digits: a 3-digit hospital number can coincide with an ICD-9 code or a count)
    people = identities(analyst.store_path).values()   # sealed in the store: read through a clinician's key
    mrns = {p.mrn for p in people if len(p.mrn) >= 5}
    nbrs = {str(n) for (n,) in conn.execute("SELECT encounter_nbr FROM encounters") if len(str(n)) >= 5}
    names = {n for p in people for n in (p.family, p.given) if n}
    assert len(mrns) > 1000 and len(names) > 100
    text = raw.decode("utf-8-sig")
    cells = {c for r in rows for c in r.values()}
    assert not (cells & mrns) and not (cells & nbrs) and not (cells & names)
    assert not re.search(r"\d{4}-\d{2}-\d{2}", text)
    assert all(re.fullmatch(r"(\d{4})?", r["admit_year"]) and re.fullmatch(r"(\d{4})?", r["discharge_year"])
               for r in rows)
    assert "[90-100)" not in text and any(r["age_group"] == "90+" for r in rows)
    assert any(r["ward"] and r["bed"] for r in rows)  # ward and bed are kept
    assert all(r["discharge_disposition_id"] == "" for r in rows if r["status"] == "inpatient")
    ev = analyst.audit.recent(3)
    assert any(e.action == "export" and "de-identified" in e.detail for e in ev)


def test_pseudonyms_stable_within_and_unlinkable_across_exports(sessions):
    analyst = sessions("analyst.demo", "wardlens-analyst")
    a = deidentified_encounters(analyst, key=b"k" * 32)
    b = deidentified_encounters(analyst, key=b"k" * 32)
    c = deidentified_encounters(analyst)
    assert [r["patient_pseudonym"] for r in a] == [r["patient_pseudonym"] for r in b]
    assert not {r["patient_pseudonym"] for r in a} & {r["patient_pseudonym"] for r in c}
    # one patient with several encounters keeps one pseudonym; encounters stay distinct
    per_patient = {}
    for r in a:
        per_patient.setdefault(r["patient_pseudonym"], []).append(r["encounter_pseudonym"])
    assert any(len(v) > 1 for v in per_patient.values())
    assert len({r["encounter_pseudonym"] for r in a}) == len(a)
    assert len(per_patient) == analyst.db.conn.execute("SELECT count(*) FROM patients").fetchone()[0]


def test_clinician_identified_export(sessions, tmp_path):
    dr = sessions("dr.demo", "wardlens-clinician")
    n = export_encounters_csv(dr, tmp_path / "id.csv", identified=True)
    rows = list(csv.DictReader(open(tmp_path / "id.csv", encoding="utf-8", newline="")))
    assert n == len(rows) and tuple(rows[0]) == IDENTIFIED_COLUMNS
    assert rows[0]["family_name"] and rows[0]["patient_number"]
    assert any(e.action == "export" and "identified" in e.detail for e in dr.audit.recent(3))
    assert export_table(dr, ["patient", "note"], [["Smith, Ann", "=2+2"]], tmp_path / "w.csv", "worklist") == 1
    assert (tmp_path / "w.csv").read_text(encoding="utf-8").splitlines()[1] == "\"Smith, Ann\",'=2+2"
