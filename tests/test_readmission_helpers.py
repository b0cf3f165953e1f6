"""Constructed UCI encounter rows for the readmission tests (no shared data needed)."""
from __future__ import annotations

from services.records.uci_schema import ENCOUNTER_COLUMNS, MEDICATIONS


def make_row(encounter_id: int, patient_nbr: int, **overrides: object) -> dict[str, str]:
    row = {c: "" for c in ENCOUNTER_COLUMNS}
    row.update({
        "encounter_id": encounter_id, "patient_nbr": patient_nbr, "race": "Caucasian", "gender": "Female",
        "age": "[70-80)", "weight": "?", "admission_type_id": 1, "discharge_disposition_id": 1,
        "admission_source_id": 7, "time_in_hospital": 4, "payer_code": "MC", "medical_specialty": "InternalMedicine",
        "num_lab_procedures": 40, "num_procedures": 1, "num_medications": 15, "number_outpatient": 0,
        "number_emergency": 0, "number_inpatient": 0, "diag_1": "428", "diag_2": "250.02", "diag_3": "401",
        "number_diagnoses": 7, "max_glu_serum": "None", "A1Cresult": "None", "change": "No", "diabetesMed": "Yes",
        "readmitted": "NO",
    })
    for m in MEDICATIONS:
        row[m] = "No"
    row["insulin"] = "Steady"
    row.update(overrides)
    return {k: str(v) for k, v in row.items()}
