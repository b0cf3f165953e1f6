"""Intervention rules on constructed records, and their storage with audited status changes."""
from __future__ import annotations

import pytest

from models.domain import RiskAssessment
from services.site.accounts import unlock
from services.core.errors import PermissionDenied, ValidationError
from services.risk.interventions import RULES, InterventionService, recommend
from services.records.uci_schema import MEDICATIONS

BLAND = {
    "encounter_id": 1, "patient_nbr": 1, "status": "discharged", "age": "[50-60)", "gender": "Female",
    "admission_type_id": 3, "admission_source_id": 1, "discharge_disposition_id": 1, "time_in_hospital": 2,
    "num_medications": 5, "num_procedures": 0, "number_outpatient": 0, "number_emergency": 0, "number_inpatient": 0,
    "diag_1": "486", "diag_2": "401", "diag_3": "?", "max_glu_serum": "None", "A1Cresult": "Norm",
    **{m: "No" for m in MEDICATIONS}, "change": "No", "diabetesMed": "No", "medical_specialty": "?",
}


def rec(**over) -> dict:
    return {**BLAND, **over}


def assessment(p: float, band: str, lace: int = 3) -> RiskAssessment:
    return RiskAssessment(1, True, p, band, (), lace, {"L": 2, "A": 0, "C": 1, "E": 0}, 1, "low",
                          {}, "test-model", 0.166, True)


def kinds(record: dict, a: RiskAssessment | None = None) -> dict[str, str]:
    return {r.kind: r.why for r in recommend(record, a)}


def test_bland_record_gets_nothing():
    assert kinds(rec()) == {}
    assert kinds(rec(), assessment(0.05, "low")) == {}


def test_follow_up_for_high_band_cites_the_risk():
    got = kinds(rec(), assessment(0.23, "high"))
    assert "follow_up_7d" in got and "23%" in got["follow_up_7d"] and "16.6%" in got["follow_up_7d"]
    assert "follow_up_7d" not in kinds(rec(), assessment(0.13, "medium"))


def test_follow_up_for_high_lace_without_model():
    # L 7 (14 days) + A 3 (emergency) -> LACE >= 10 from the record alone
    got = kinds(rec(time_in_hospital=14, admission_type_id=1))
    assert "LACE index 1" in got["follow_up_7d"]


def test_medication_reconciliation_on_count_and_on_changes():
    got = kinds(rec(num_medications=21))
    assert "21 medications" in got["med_reconciliation"]
    got = kinds(rec(insulin="Up", metformin="Down", diabetesMed="Yes", change="Ch"))
    assert "insulin increased" in got["med_reconciliation"] and "metformin decreased" in got["med_reconciliation"]
    assert "med_reconciliation" not in kinds(rec(num_medications=14, insulin="Steady", diabetesMed="Yes"))


def test_diabetes_education_and_hba1c_check():
    assert "HbA1c above 8%" in kinds(rec(A1Cresult=">8"))["diabetes_education"]
    assert "HbA1c above 7%" in kinds(rec(A1Cresult=">7"))["diabetes_education"]
    assert "Glucose above 300" in kinds(rec(max_glu_serum=">300"))["diabetes_education"]
    got = kinds(rec(A1Cresult="None", diabetesMed="Yes", glipizide="Steady"))
    assert "hba1c_check" in got and "diabetes_education" not in got
    assert "hba1c_check" not in kinds(rec(A1Cresult="None", diabetesMed="No"))


def test_heart_failure_clinic_on_428():
    assert "428.0" in kinds(rec(diag_2="428.0"))["heart_failure_clinic"]
    assert "428" in kinds(rec(diag_1="428"))["heart_failure_clinic"]
    assert "heart_failure_clinic" not in kinds(rec(diag_1="4280"))  # not the 428 category
    assert "heart_failure_clinic" not in kinds(rec(diag_1="427.31"))


def test_social_work_needs_prior_stays_and_home():
    assert "3 inpatient stays" in kinds(rec(number_inpatient=3))["social_work"]
    assert "social_work" not in kinds(rec(number_inpatient=1))
    assert "social_work" not in kinds(rec(number_inpatient=3, discharge_disposition_id=3))  # to a nursing facility
    assert "planned" in kinds(rec(number_inpatient=2, status="inpatient"))["social_work"]


def test_other_rules_and_no_recommendations_after_death():
    assert "3 emergency visits" in kinds(rec(number_emergency=3))["care_coordination"]
    assert "Aged 80–89" in kinds(rec(age="[80-90)", time_in_hospital=8))["home_health"]  # the age band in words
    loaded = rec(number_inpatient=4, num_medications=30, A1Cresult=">8", diag_1="428.0", discharge_disposition_id=11)
    assert recommend(loaded) == []
    assert len(RULES) == len({r.id for r in RULES})


@pytest.fixture
def nurse(demo_store):
    s = unlock(demo_store, "nurse.demo", "wardlens-nurse")
    yield s
    s.lock()


def _inpatient(session) -> tuple[int, int]:
    return session.db.conn.execute("SELECT patient_id, encounter_nbr FROM encounters WHERE status = 'inpatient' "
                                   "ORDER BY encounter_nbr LIMIT 1").fetchone()


def test_store_mark_done_is_audited_and_kept(nurse):
    pid, nbr = _inpatient(nurse)
    svc = InterventionService(nurse)
    record = rec(status="inpatient", num_medications=20, A1Cresult=">8")
    stored = svc.refresh(pid, nbr, record)
    assert {r.kind for r in stored} == {"med_reconciliation", "diabetes_education"}
    target = next(r for r in stored if r.kind == "med_reconciliation")
    done = svc.mark(target.id, "done", "reconciled with pharmacy")
    assert done.status == "done" and done.done_by == "nurse.demo" and done.done_at
    ev = nurse.audit.recent(5)
    hit = [e for e in ev if e.action == "update" and e.entity == "intervention" and e.entity_id == str(target.id)]
    assert hit and "med_reconciliation -> done" in hit[0].detail and "pharmacy" not in hit[0].detail
    # the record changes: done stays done, an open rule that no longer fires goes, a new one comes
    again = {r.kind: r for r in svc.refresh(pid, nbr, rec(status="inpatient", diag_1="428.1"))}
    assert again["med_reconciliation"].status == "done"
    assert "diabetes_education" not in again and "heart_failure_clinic" in again


def test_mark_rules(nurse, demo_store):
    pid, nbr = _inpatient(nurse)
    svc = InterventionService(nurse)
    first = svc.refresh(pid, nbr, rec(status="inpatient", num_medications=20))[0]
    with pytest.raises(ValidationError):
        svc.mark(first.id, "finished")
    with pytest.raises(ValidationError):
        svc.mark(999_999, "done")
    assert svc.mark(first.id, "declined").status == "declined"
    assert svc.mark(first.id, "recommended").done_by is None
    analyst = unlock(demo_store, "analyst.demo", "wardlens-analyst")
    try:
        with pytest.raises(PermissionDenied):
            InterventionService(analyst).mark(first.id, "done")
        assert [r.kind for r in InterventionService(analyst).for_encounter(pid, nbr)] == ["med_reconciliation"]
    finally:
        analyst.lock()
