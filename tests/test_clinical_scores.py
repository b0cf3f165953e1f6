"""LACE and HOSPITAL from constructed UCI records, including the documented proxies."""
from __future__ import annotations

import pandas as pd

from services.risk.clinical_scores import (PROXIES, charlson_index, hospital_band, hospital_components, hospital_score,
                                      hospital_series, lace_components, lace_index, lace_series)
from tests.test_readmission_helpers import make_row


def test_charlson_counts_diabetes_and_hierarchy() -> None:
    assert charlson_index(["?", "?", "?"]) == 1  # diabetes assumed: every UCI encounter is diabetic
    assert charlson_index(["?"], assume_diabetes=False) == 0
    assert charlson_index(["428", "250.4", "585"]) == 1 + 2 + 2  # CHF, complicated diabetes, renal
    assert charlson_index(["197", "174"]) == 6 + 1  # metastatic replaces malignancy; + diabetes
    assert charlson_index(["42"]) == 6 + 1  # AIDS (042 written without the leading zero)
    assert charlson_index(["V57", "E909"]) == 1


def test_lace_components() -> None:
    rec = make_row(1, 1, time_in_hospital=5, admission_type_id=3, admission_source_id=1, number_emergency=6,
                   diag_1="428", diag_2="585", diag_3="410")
    c = lace_components(rec)
    assert c == {"L": 4, "A": 0, "C": 5, "E": 4}  # Charlson 1+2+1+1 = 5 -> 5 points; ED capped at 4
    assert lace_index(rec) == 13
    er = make_row(2, 1, time_in_hospital=1, admission_type_id=3, admission_source_id=7, number_emergency=0,
                  diag_1="V57", diag_2="?", diag_3="?")
    assert lace_components(er) == {"L": 1, "A": 3, "C": 1, "E": 0}
    assert lace_index(make_row(3, 1, time_in_hospital=14)) >= 7


def test_hospital_components_and_band() -> None:
    rec = make_row(1, 1, diag_1="285", diag_2="276.1", diag_3="401", medical_specialty="Hematology/Oncology",
                   num_procedures=2, admission_type_id=2, number_inpatient=6, time_in_hospital=5)
    assert hospital_components(rec) == {"H": 1, "O": 2, "S": 1, "P": 1, "I": 1, "T": 5, "A": 2}
    assert hospital_score(rec) == 13
    low = make_row(2, 1, diag_1="715", diag_2="?", diag_3="?", medical_specialty="?", num_procedures=0,
                   admission_type_id=3, number_inpatient=1, time_in_hospital=2)
    assert hospital_score(low) == 0
    assert [hospital_band(s) for s in (0, 4, 5, 6, 7, 13)] == ["low", "low", "intermediate", "intermediate", "high", "high"]
    assert {"lace.C", "lace.E", "hospital.H", "hospital.S"} <= set(PROXIES)


def test_vectorised_scores_match_row_functions() -> None:
    rows = [make_row(i, 1, time_in_hospital=i % 14 + 1, number_inpatient=i % 7, number_emergency=i % 5) for i in range(1, 30)]
    df = pd.DataFrame(rows)
    for c in ("time_in_hospital", "admission_type_id", "admission_source_id", "number_emergency", "number_inpatient",
              "num_procedures"):
        df[c] = df[c].astype(int)
    assert list(lace_series(df)) == [lace_index(r) for r in df.to_dict("records")]
    assert list(hospital_series(df)) == [hospital_score(r) for r in df.to_dict("records")]


def test_charlson_from_icd10_follows_quan() -> None:
    from services.risk.clinical_scores import charlson_conditions_icd10, charlson_from_record
    assert charlson_conditions_icd10("I50.9") == {"heart_failure"}
    assert charlson_conditions_icd10("I25.2") == {"myocardial_infarction"} and not charlson_conditions_icd10("I25.1")
    assert charlson_conditions_icd10("E11.2") == {"diabetes_complicated"} and charlson_conditions_icd10("E11.9") == {
        "diabetes"}
    assert charlson_conditions_icd10("N18.6") == {"renal"} and charlson_conditions_icd10("K72.9") == {"severe_liver"}
    # hierarchy: metastatic replaces malignancy, complicated diabetes the plain one; no diabetes unless coded
    assert charlson_from_record(["ICD10:C34.1", "ICD10:C78.0", "ICD10:E11.9", "ICD10:E11.2"]) == 6 + 2
    assert charlson_from_record(["ICD10:J18.9"]) == 0
    assert charlson_from_record(["ICD9:428.0", "ICD10:I50.9"]) == 1   # the same condition counts once
