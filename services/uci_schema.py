"""The UCI Diabetes 130-US encounter schema: the one table layout shared by import, the store's
export for scoring, the training pipelines and the `score` commands."""
from __future__ import annotations

MEDICATIONS: tuple[str, ...] = (
    "metformin", "repaglinide", "nateglinide", "chlorpropamide", "glimepiride", "acetohexamide",
    "glipizide", "glyburide", "tolbutamide", "pioglitazone", "rosiglitazone", "acarbose", "miglitol",
    "troglitazone", "tolazamide", "examide", "citoglipton", "insulin", "glyburide-metformin",
    "glipizide-metformin", "glimepiride-pioglitazone", "metformin-rosiglitazone", "metformin-pioglitazone",
)
MEDICATION_STATUSES: tuple[str, ...] = ("No", "Steady", "Up", "Down")

ENCOUNTER_COLUMNS: tuple[str, ...] = (
    "encounter_id", "patient_nbr", "race", "gender", "age", "weight", "admission_type_id",
    "discharge_disposition_id", "admission_source_id", "time_in_hospital", "payer_code",
    "medical_specialty", "num_lab_procedures", "num_procedures", "num_medications",
    "number_outpatient", "number_emergency", "number_inpatient", "diag_1", "diag_2", "diag_3",
    "number_diagnoses", "max_glu_serum", "A1Cresult",
) + MEDICATIONS + ("change", "diabetesMed", "readmitted")

INT_COLUMNS: tuple[str, ...] = (
    "encounter_id", "patient_nbr", "admission_type_id", "discharge_disposition_id", "admission_source_id",
    "time_in_hospital", "num_lab_procedures", "num_procedures", "num_medications", "number_outpatient",
    "number_emergency", "number_inpatient", "number_diagnoses",
)

AGE_BANDS: tuple[str, ...] = tuple(f"[{a}-{a + 10})" for a in range(0, 100, 10))
GENDERS: tuple[str, ...] = ("Female", "Male", "Unknown/Invalid")
RACES: tuple[str, ...] = ("Caucasian", "AfricanAmerican", "Hispanic", "Asian", "Other", "?")
GLU_SERUM_VALUES: tuple[str, ...] = ("None", "Norm", ">200", ">300")
A1C_VALUES: tuple[str, ...] = ("None", "Norm", ">7", ">8")
READMITTED_VALUES: tuple[str, ...] = ("NO", ">30", "<30")

# Encounters ending in death (11, 19, 20, 21) or hospice (13, 14) are not eligible for a
# 30-day readmission prediction (Strack et al. 2014).
INELIGIBLE_DISPOSITIONS: frozenset[int] = frozenset({11, 13, 14, 19, 20, 21})
EXPIRED_DISPOSITIONS: frozenset[int] = frozenset({11, 19, 20, 21})

# Code tables from IDs_mapping.csv, kept here so the application needs no data folder.
ADMISSION_TYPES: dict[int, str] = {
    1: "Emergency", 2: "Urgent", 3: "Elective", 4: "Newborn", 5: "Not Available", 6: "NULL",
    7: "Trauma Center", 8: "Not Mapped",
}
DISCHARGE_DISPOSITIONS: dict[int, str] = {
    1: "Discharged to home", 2: "Discharged/transferred to another short term hospital",
    3: "Discharged/transferred to SNF", 4: "Discharged/transferred to ICF",
    5: "Discharged/transferred to another type of inpatient care institution",
    6: "Discharged/transferred to home with home health service", 7: "Left AMA",
    8: "Discharged/transferred to home under care of Home IV provider", 9: "Admitted as an inpatient to this hospital",
    10: "Neonate discharged to another hospital for neonatal aftercare", 11: "Expired",
    12: "Still patient or expected to return for outpatient services", 13: "Hospice / home",
    14: "Hospice / medical facility", 15: "Discharged/transferred within this institution to Medicare approved swing bed",
    16: "Discharged/transferred/referred another institution for outpatient services",
    17: "Discharged/transferred/referred to this institution for outpatient services", 18: "NULL",
    19: "Expired at home. Medicaid only, hospice.", 20: "Expired in a medical facility. Medicaid only, hospice.",
    21: "Expired, place unknown. Medicaid only, hospice.", 22: "Discharged/transferred to another rehab fac including rehab units of a hospital",
    23: "Discharged/transferred to a long term care hospital", 24: "Discharged/transferred to a nursing facility certified under Medicaid but not certified under Medicare",
    25: "Not Mapped", 26: "Unknown/Invalid", 27: "Discharged/transferred to a federal health care facility",
    28: "Discharged/transferred/referred to a psychiatric hospital of psychiatric distinct part unit of a hospital",
    29: "Discharged/transferred to a Critical Access Hospital (CAH)", 30: "Discharged/transferred to another Type of Health Care Institution not Defined Elsewhere",
}
ADMISSION_SOURCES: dict[int, str] = {
    1: "Physician Referral", 2: "Clinic Referral", 3: "HMO Referral", 4: "Transfer from a hospital",
    5: "Transfer from a Skilled Nursing Facility (SNF)", 6: "Transfer from another health care facility",
    7: "Emergency Room", 8: "Court/Law Enforcement", 9: "Not Available", 10: "Transfer from critial access hospital",
    11: "Normal Delivery", 12: "Premature Delivery", 13: "Sick Baby", 14: "Extramural Birth", 15: "Not Available",
    17: "NULL", 18: "Transfer From Another Home Health Agency", 19: "Readmission to Same Home Health Agency",
    20: "Not Mapped", 21: "Unknown/Invalid", 22: "Transfer from hospital inpt/same fac reslt in a sep claim",
    23: "Born inside this hospital", 24: "Born outside this hospital", 25: "Transfer from Ambulatory Surgery Center",
    26: "Transfer from Hospice",
}

# Comorbidity flags, lab and vital names of the Microsoft length-of-stay table, held by the store
# so that models built on that layout can read them.
COMORBIDITY_FLAGS: tuple[str, ...] = (
    "dialysisrenalendstage", "asthma", "irondef", "pneum", "substancedependence",
    "psychologicaldisordermajor", "depress", "psychother", "fibrosisandother", "malnutrition", "hemo",
)
LAB_VITAL_UNITS: dict[str, str] = {
    "hematocrit": "g/dL", "neutrophils": "cells/µL", "sodium": "mmol/L", "glucose": "mmol/L",
    "bloodureanitro": "mg/dL", "creatinine": "mg/dL", "bmi": "kg/m²", "pulse": "beats/min",
    "respiration": "breaths/min",
}
