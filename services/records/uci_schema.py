"""The UCI Diabetes 130-US encounter schema: the one table layout shared by import, the store's
export for scoring, the training pipelines and the `score` commands."""
from __future__ import annotations

import re

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

# Encounters ending in death (11, 19, 20, 21) or hospice (13, 14) are not eligible for a 30-day readmission
# prediction (Strack et al. 2014), nor are transfers to another acute-care hospital (2 short-term hospital, 10 neonate
# to another hospital, 29 Critical Access Hospital): CMS's readmission measures leave them out, because the patient
# is not going home and the readmission window opens at the receiving hospital's discharge.
EXPIRED_DISPOSITIONS: frozenset[int] = frozenset({11, 19, 20, 21})
HOSPICE_DISPOSITIONS: frozenset[int] = frozenset({13, 14})
ACUTE_TRANSFER_DISPOSITIONS: frozenset[int] = frozenset({2, 10, 29})
INELIGIBLE_DISPOSITIONS: frozenset[int] = EXPIRED_DISPOSITIONS | HOSPICE_DISPOSITIONS | ACUTE_TRANSFER_DISPOSITIONS


def ineligible_reason(disposition_id: int | None) -> str:
    """Why a stay with this discharge disposition gets no readmission risk ("" when it gets one)."""
    if disposition_id in EXPIRED_DISPOSITIONS:
        return "the stay ended in the patient's death"
    if disposition_id in HOSPICE_DISPOSITIONS:
        return "the patient went to hospice care"
    if disposition_id in ACUTE_TRANSFER_DISPOSITIONS:
        return ("the patient is transferred to another acute-care hospital; the readmission window opens at that "
                "hospital's discharge")
    return ""

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


# ----- plain words for people ----------------------------------------------------------------------
# The tables above are the source's own names (IDs_mapping.csv: "NULL", "Discharged/transferred to SNF",
# "Left AMA") and stay as they are for validation and import. Everything shown to staff (the app, the
# reports, the risk factors) goes through the functions below. Stored values never change.
NOT_RECORDED = "Not recorded"
ADMISSION_TYPE_WORDS: dict[int, str] = {
    1: "Emergency", 2: "Urgent", 3: "Elective", 4: "Newborn", 5: NOT_RECORDED, 6: NOT_RECORDED, 7: "Trauma centre",
    8: NOT_RECORDED,
}
ADMISSION_SOURCE_WORDS: dict[int, str] = {
    1: "Physician referral", 2: "Clinic referral", 3: "HMO referral", 4: "Transfer from another hospital",
    5: "Transfer from a skilled nursing facility", 6: "Transfer from another health-care facility",
    7: "Emergency department", 8: "Court or law enforcement", 9: NOT_RECORDED,
    10: "Transfer from a critical access hospital", 11: "Normal delivery", 12: "Premature delivery", 13: "Sick baby",
    14: "Born outside this hospital", 15: NOT_RECORDED, 17: NOT_RECORDED, 18: "Transfer from another home-health agency",
    19: "Readmission to the same home-health agency", 20: NOT_RECORDED, 21: NOT_RECORDED,
    22: "Transfer within this hospital (separate claim)", 23: "Born inside this hospital", 24: "Born outside this hospital",
    25: "Transfer from an ambulatory surgery centre", 26: "Transfer from hospice",
}
DISPOSITION_WORDS: dict[int, str] = {
    1: "Home", 2: "Transfer to another short-stay hospital", 3: "Transfer to a skilled nursing facility",
    4: "Transfer to an intermediate care facility", 5: "Transfer to another inpatient care institution",
    6: "Home with home-health care", 7: "Left against medical advice", 8: "Home with home IV therapy",
    9: "Admitted as an inpatient to this hospital", 10: "Neonate transferred for aftercare", 11: "Died",
    12: "Still a patient, or to return as an outpatient", 13: "Hospice at home", 14: "Hospice in a medical facility",
    15: "Transfer to a swing bed within this hospital", 16: "Referred to another institution as an outpatient",
    17: "Referred to this hospital as an outpatient", 18: NOT_RECORDED, 19: "Died at home (hospice)",
    20: "Died in a medical facility (hospice)", 21: "Died, place unknown (hospice)",
    22: "Transfer to a rehabilitation facility", 23: "Transfer to a long-term care hospital",
    24: "Transfer to a nursing facility (Medicaid only)", 25: NOT_RECORDED, 26: NOT_RECORDED,
    27: "Transfer to a federal health-care facility", 28: "Transfer to a psychiatric hospital or unit",
    29: "Transfer to a critical access hospital", 30: "Transfer to another kind of health-care institution",
}
# The study publishes no key to its payer codes; the common ones are unambiguous, the rest are named as codes.
PAYER_WORDS: dict[str, str] = {
    "MC": "Medicare", "MD": "Medicaid", "HM": "HMO", "SP": "Self-pay", "BC": "Blue Cross / Blue Shield",
    "CP": "Private insurance", "CH": "CHAMPUS (military)", "WC": "Workers' compensation", "OT": "Other payer",
}


def _code(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def admission_type_text(code: object) -> str:
    """1 -> "Emergency"; 6 ("NULL") -> "Not recorded"."""
    return ADMISSION_TYPE_WORDS.get(_code(code) or 0, NOT_RECORDED if code in (None, "", "?") else f"Code {code}")


def admission_source_text(code: object) -> str:
    """7 -> "Emergency department"; 17 ("NULL") -> "Not recorded"."""
    return ADMISSION_SOURCE_WORDS.get(_code(code) or 0, NOT_RECORDED if code in (None, "", "?") else f"Code {code}")


def disposition_text(code: object) -> str:
    """3 -> "Transfer to a skilled nursing facility"; 7 -> "Left against medical advice"."""
    return DISPOSITION_WORDS.get(_code(code) or 0, NOT_RECORDED if code in (None, "", "?", 0) else f"Code {code}")


def payer_text(code: object) -> str:
    """"MC" -> "Medicare"; "?" -> "Not recorded"; an undocumented code -> "Payer code UN"."""
    c = str(code or "").strip()
    if c in ("", "?"):
        return NOT_RECORDED
    return PAYER_WORDS.get(c, f"Payer code {c}")


def specialty_text(value: object) -> str:
    """The source's run-together specialty names as words: "InternalMedicine" -> "Internal medicine",
    "Orthopedics-Reconstructive" -> "Orthopedics (reconstructive)", "Family/GeneralPractice" -> "Family / general
    practice", "?" -> "Not recorded". Words with spaces also wrap in narrow table cells and printed reports."""
    s = str(value or "").strip()
    if s in ("", "?"):
        return NOT_RECORDED
    head, _, tail = s.partition("-")

    def words(part: str) -> str:
        part = re.sub(r"([a-z])and([A-Z])", r"\1 and \2", part)      # "ObstetricsandGynecology"
        part = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", part)              # "InternalMedicine"
        return " / ".join(p.strip() for p in part.split("/") if p.strip())
    text = words(head) + (f" ({words(tail)})" if tail else "")
    return text[:1].upper() + text[1:].lower()


def age_band_text(band: object) -> str:
    """"[70-80)" -> "70–79" (one form everywhere people read it); "" -> ""; anything else as given."""
    m = re.fullmatch(r"\[(\d+)-(\d+)\)", str(band or "").strip())
    if not m:
        return str(band or "").strip()
    return f"{int(m.group(1))}–{int(m.group(2)) - 1}"
