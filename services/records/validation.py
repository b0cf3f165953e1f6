"""Field validation shared by the forms, the importer and the command line."""
from __future__ import annotations

import datetime as dt
import re

from services.core.errors import ValidationError
from services.records.uci_schema import (A1C_VALUES, ADMISSION_SOURCES, ADMISSION_TYPES, AGE_BANDS, DISCHARGE_DISPOSITIONS,
                                 GENDERS, GLU_SERUM_VALUES, INT_COLUMNS, MEDICATION_STATUSES, MEDICATIONS, RACES,
                                 READMITTED_VALUES)

# The UCI data drops leading zeros (038 is stored as "38"), so 1-3 digits are accepted.
ICD9_RE = re.compile(r"^(\d{1,3}(\.\d{1,2})?|V\d{2}(\.\d{1,2})?|E\d{3}(\.\d)?)$", re.ASCII)
ICD10_RE = re.compile(r"^[A-TV-Z]\d[0-9A-Z](\.[0-9A-Z]{1,4})?$", re.ASCII)
MRN_RE = re.compile(r"^[A-Za-z0-9-]{1,20}$")


def diagnosis_system(code: str) -> str | None:
    """'ICD9' or 'ICD10' for a well-formed code, else None. ICD-9 V/E codes are checked first."""
    c = code.strip().upper()
    if ICD9_RE.match(c):
        return "ICD9"
    if ICD10_RE.match(c):
        return "ICD10"
    return None


def parse_date(text: str, field: str, problems: dict[str, str]) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        problems[field] = "expected a date as YYYY-MM-DD"
        return None


def parse_datetime(text: str, field: str, problems: dict[str, str]) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.strip())
    except ValueError:
        problems[field] = "expected a date and time as YYYY-MM-DD HH:MM"
        return None


def plausible_birth(born: dt.date) -> bool:
    """A birth date the desk accepts, from the form or from a hospital's system: in the past, after 1890."""
    return born <= dt.date.today() and born.year >= 1890


def validate_patient(values: dict) -> dict:
    """Checks and normalises patient form values; raises ValidationError naming each bad field."""
    p: dict[str, str] = {}
    mrn = str(values.get("mrn", "")).strip()
    if not MRN_RE.match(mrn):
        p["mrn"] = "1–20 letters, digits or '-'"
    given = str(values.get("given_name", "") or "").strip()
    family = str(values.get("family_name", "") or "").strip()
    if not family:
        p["family_name"] = "required"
    for k, v in (("given_name", given), ("family_name", family)):
        if len(v) > 80:
            p[k] = "at most 80 characters"
    birth = values.get("birth_date")
    if isinstance(birth, str):
        birth = parse_date(birth, "birth_date", p) if birth.strip() else None
    if birth is None and "birth_date" not in p:
        p["birth_date"] = "required (YYYY-MM-DD): the age at each stay is derived from it"
    if birth and not plausible_birth(birth):
        p["birth_date"] = "must be in the past (after 1890)"
    sex = values.get("sex", "Unknown/Invalid")
    if sex not in GENDERS:
        p["sex"] = f"one of {', '.join(GENDERS)}"
    race = values.get("race", "?")
    if race not in RACES:
        p["race"] = f"one of {', '.join(RACES)}"
    if p:
        raise ValidationError(p)
    return {"mrn": mrn, "given_name": given or None, "family_name": family, "birth_date": birth, "sex": sex, "race": race}


def _int_in(values: dict, key: str, lo: int, hi: int, p: dict[str, str], default: int = 0) -> int:
    raw = values.get(key, default)
    try:
        v = int(raw)
    except (TypeError, ValueError):
        p[key] = "must be a whole number"
        return default
    if not lo <= v <= hi:
        p[key] = f"must be between {lo} and {hi}"
    return v


def age_band_at(birth: dt.date, when: dt.date) -> str:
    """The UCI age band ("[70-80)") of someone born on `birth`, on the day `when`; 90 and over is [90-100)."""
    years = when.year - birth.year - ((when.month, when.day) < (birth.month, birth.day))
    low = min(max(years, 0) // 10 * 10, 90)
    return f"[{low}-{low + 10})"


def validate_encounter(values: dict) -> dict:
    """Checks an encounter form; diagnoses as a list of codes (ICD-9 or ICD-10), medications as drug->status."""
    p: dict[str, str] = {}
    out: dict = {}
    admit = values.get("admit_time")
    if isinstance(admit, str):
        admit = parse_datetime(admit, "admit_time", p)
    discharge = values.get("discharge_time")
    if isinstance(discharge, str):
        discharge = parse_datetime(discharge, "discharge_time", p) if discharge else None
    if admit is None and "admit_time" not in p:
        p["admit_time"] = "required"
    if admit and admit > dt.datetime.now() + dt.timedelta(days=1):
        p["admit_time"] = "cannot be in the future"
    if admit and discharge and discharge < admit:
        p["discharge_time"] = "cannot be before admission"
    out["admit_time"], out["discharge_time"] = admit, discharge
    out["admission_type_id"] = _int_in(values, "admission_type_id", 1, 8, p, 1)
    if out["admission_type_id"] not in ADMISSION_TYPES:
        p["admission_type_id"] = "unknown admission type"
    out["admission_source_id"] = _int_in(values, "admission_source_id", 1, 26, p, 7)
    if out["admission_source_id"] not in ADMISSION_SOURCES:
        p["admission_source_id"] = "unknown admission source"
    disp = values.get("discharge_disposition_id")
    if discharge is not None and disp in (None, ""):
        p["discharge_disposition_id"] = "required once discharged"
    if disp not in (None, ""):
        out["discharge_disposition_id"] = _int_in(values, "discharge_disposition_id", 1, 30, p, 1)
        if out["discharge_disposition_id"] not in DISCHARGE_DISPOSITIONS:
            p["discharge_disposition_id"] = "unknown discharge disposition"
    else:
        out["discharge_disposition_id"] = None
    for key, hi in (("num_lab_procedures", 500), ("num_procedures", 50), ("num_medications", 200),
                    ("number_outpatient", 100), ("number_emergency", 100), ("number_inpatient", 100)):
        out[key] = _int_in(values, key, 0, hi, p)
    age_band = values.get("age_band", "")
    if age_band and age_band not in AGE_BANDS:
        p["age_band"] = "one of [0-10) … [90-100)"
    out["age_band"] = age_band
    out["medical_specialty"] = str(values.get("medical_specialty", "?") or "?").strip()[:60]
    codes = [c.strip().upper() for c in values.get("diagnoses", []) if c and c.strip() and c.strip() != "?"]
    bad = [c for c in codes if diagnosis_system(c) is None]
    if bad:
        p["diagnoses"] = f"not an ICD-9 or ICD-10 code: {', '.join(bad)}"
    if len(codes) > 16:
        p["diagnoses"] = "at most 16 diagnoses"
    out["diagnoses"] = codes
    meds = dict(values.get("medications", {}))
    bad_meds = [d for d, s in meds.items() if s not in MEDICATION_STATUSES]
    if bad_meds:
        p["medications"] = f"status must be one of {', '.join(MEDICATION_STATUSES)} ({', '.join(bad_meds)})"
    out["medications"] = meds
    for key, allowed in (("max_glu_serum", GLU_SERUM_VALUES), ("a1c_result", A1C_VALUES)):
        v = values.get(key, "None") or "None"
        if v not in allowed:
            p[key] = f"one of {', '.join(allowed)}"
        out[key] = v
    out["ward_id"] = values.get("ward_id")
    out["bed_id"] = values.get("bed_id")
    if discharge is None and admit is not None:   # in hospital now: the census must know where
        if out["ward_id"] is None:
            p["ward_id"] = "required for a patient in hospital (not yet discharged)"
        if out["bed_id"] is None:
            p["bed_id"] = "required for a patient in hospital (not yet discharged)"
    if p:
        raise ValidationError(p)
    return out


INT_LIMITS = {"time_in_hospital": (1, 365), "num_lab_procedures": (0, 1000), "num_procedures": (0, 100),
              "num_medications": (0, 500), "number_outpatient": (0, 1000), "number_emergency": (0, 1000),
              "number_inpatient": (0, 1000), "number_diagnoses": (0, 100), "admission_type_id": (1, 8),
              "discharge_disposition_id": (1, 30), "admission_source_id": (1, 26),
              "encounter_id": (1, 2**62), "patient_nbr": (1, 2**62)}


def uci_row_problem(row: dict[str, str], stay_length_known: bool = True) -> str | None:
    """The first problem of one row in the UCI encounter schema, or None: the one row check of the importer and both
    scoring commands (a column the row does not have is not checked: the callers require their own columns).
    `stay_length_known` False: time_in_hospital may be blank (an inpatient scored for length of stay)."""
    for col in INT_COLUMNS:
        if col not in row or (col == "time_in_hospital" and not stay_length_known and not row[col].strip()):
            continue
        v = row[col].strip()
        # isdecimal (ASCII digits only), not isdigit: '²' passes isdigit() and then int('²') raises.
        digits = v[1:] if v.startswith("-") else v
        if not (digits.isascii() and digits.isdecimal()):
            return f"{col} must be a whole number (found {v[:20]!r})"
        lo, hi = INT_LIMITS.get(col, (0, 10**9))
        if not lo <= int(v) <= hi:
            return f"{col} out of range ({v})"
    checks = (("gender", GENDERS), ("race", RACES), ("age", AGE_BANDS), ("max_glu_serum", GLU_SERUM_VALUES),
              ("A1Cresult", A1C_VALUES), ("change", ("No", "Ch")), ("diabetesMed", ("No", "Yes")))
    for col, allowed in checks:
        if col in row and row[col] not in allowed:
            return f"{col} has an unknown value {row[col][:20]!r}"
    if row.get("readmitted", "") not in ("",) + READMITTED_VALUES:
        return f"readmitted has an unknown value {row['readmitted'][:20]!r}"
    for drug in MEDICATIONS:
        if drug in row and row[drug] not in MEDICATION_STATUSES:
            return f"{drug} has an unknown value {row[drug][:20]!r}"
    for col in ("diag_1", "diag_2", "diag_3"):
        if col not in row:
            continue
        code = row[col].strip()
        if code != "?" and (not code.isascii() or diagnosis_system(code) is None):
            return f"{col} is not an ICD-9 or ICD-10 code ({code[:20]!r})"
    for col in ("admit_time", "discharge_time", "birth_date"):
        v = row.get(col, "")
        if v:
            try:
                dt.datetime.fromisoformat(v)
            except ValueError:
                return f"{col} is not an ISO date ({v[:20]!r})"
    for col in ("weight", "payer_code", "medical_specialty", "given_name", "family_name", "ward"):
        if len(row.get(col, "")) > 80:
            return f"{col} is longer than 80 characters"
    return None
