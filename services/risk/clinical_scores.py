"""LACE index and HOSPITAL score from a UCI-schema encounter record, with documented proxies.

Used by the readmission pipeline (as baselines) and by the application (shown beside the model).
The UCI table lacks several inputs of both scores, so some parts are proxies; PROXIES says which,
and the model card and the risk report repeat it so nobody mistakes these for the validated scores.

LACE (van Walraven et al., CMAJ 2010), 0-19:
  L  length of stay in days: <1 0, 1 1, 2 2, 3 3, 4-6 4, 7-13 5, >=14 7 (time_in_hospital).
  A  acute (emergent) admission: 3 points (admission_type_id Emergency/Trauma, or admitted through
     the emergency room, admission_source_id 7).
  C  Charlson comorbidity index: 0-3 as is, >=4 gives 5 points.
  E  emergency department visits in the previous 6 months, capped at 4.
HOSPITAL (Donzé et al., JAMA Intern Med 2013), 0-13:
  H  haemoglobin < 12 g/dL at discharge: 1     O  discharge from an oncology service: 2
  S  sodium < 135 mmol/L at discharge: 1        P  any ICD-coded procedure during the stay: 1
  I  index admission urgent or emergent: 1      T  admissions in the previous 12 months: 0-1 0, 2-5 2, >5 5
  A  length of stay >= 5 days: 2
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

PROXIES: dict[str, str] = {
    "lace.C": "Charlson index from the three coded diagnoses only (diag_1..3, Quan/Deyo ICD-9 map); "
              "diabetes is always counted because every encounter of the UCI table is diabetic "
              "(complicated diabetes, 250.4-250.7, when coded), so C is at least 1 and under-counts comorbidity.",
    "lace.E": "number_emergency counts emergency visits in the year before (not 6 months), capped at 4.",
    "lace.A": "acute = admission type Emergency (1) or Trauma Center (7), or admission source Emergency Room (7).",
    "hospital.H": "no haemoglobin in the data: 1 point when an anaemia diagnosis (ICD-9 280-285) is coded.",
    "hospital.S": "no sodium in the data: 1 point when hyponatraemia (ICD-9 276.1) is coded.",
    "hospital.O": "medical_specialty Oncology or Hematology/Oncology ('?' = unknown counts as not oncology).",
    "hospital.P": "num_procedures > 0 (procedures other than lab tests during the stay).",
    "hospital.I": "admission type Emergency (1), Urgent (2) or Trauma Center (7).",
    "hospital.T": "number_inpatient (inpatient visits in the year before) stands for prior admissions.",
}
# Records imported from a hospital's systems (FHIR, HL7 v2) carry what the proxies stand in for: emergency visits in
# the 6 months before and admissions in the year before counted from the store's encounters, haemoglobin and sodium
# from the stay's last LOINC results. score_inputs() says, per assessment, which parts used them.

HOSPITAL_BANDS: tuple[tuple[int, str], ...] = ((0, "low"), (5, "intermediate"), (7, "high"))
LACE_HIGH_RISK: int = 10  # LACE >= 10 is the usual "high risk" cut-off


def _icd9_number(code: str) -> float | None:
    c = (code or "").strip().upper()
    if not c or c == "?" or c[0] in "VE":
        return None
    try:
        return float(c)
    except ValueError:
        return None


# (name, weight, predicate on the numeric ICD-9 code); Quan et al. 2005 Deyo-Charlson map, 3-digit
# UCI codes carry no leading zeros ("42" is 042).
_CHARLSON: tuple[tuple[str, int, Any], ...] = (
    ("myocardial_infarction", 1, lambda v: int(v) in (410, 412)),
    ("heart_failure", 1, lambda v: int(v) == 428 or v in (398.91, 402.01, 402.11, 402.91, 404.01, 404.03, 404.11,
                                                             404.13, 404.91, 404.93) or 425.4 <= v < 426),
    ("peripheral_vascular", 1, lambda v: int(v) in (440, 441) or v in (443.9, 785.4) or 443.1 <= v < 443.99),
    ("cerebrovascular", 1, lambda v: 430 <= v < 439),
    ("dementia", 1, lambda v: int(v) == 290 or v in (294.1, 331.2)),
    ("chronic_pulmonary", 1, lambda v: 490 <= v < 506 or v == 506.4),
    ("rheumatic", 1, lambda v: v in (710.0, 710.1, 710.4) or 714.0 <= v < 714.3 or int(v) == 725),
    ("peptic_ulcer", 1, lambda v: 531 <= v < 535),
    ("mild_liver", 1, lambda v: v in (571.2, 571.4, 571.5, 571.6) or int(v) == 570),
    ("hemiplegia", 2, lambda v: int(v) == 342 or v == 344.1),
    ("renal", 2, lambda v: int(v) in (582, 585, 586) or 583.0 <= v < 583.8 or v in (588.0, 403.01, 403.11, 403.91,
                                                                                  404.02, 404.03, 404.12, 404.13,
                                                                                  404.92, 404.93)),
    ("malignancy", 2, lambda v: (140 <= v < 173) or (174 <= v < 195.9) or (200 <= v < 209)),
    ("severe_liver", 3, lambda v: 456.0 <= v < 456.3 or 572.2 <= v < 572.9),
    ("metastatic", 6, lambda v: 196 <= v < 200),
    ("aids", 6, lambda v: 42 <= v < 45),
)


@lru_cache(maxsize=8192)
def charlson_conditions(code: str) -> frozenset[str]:
    """Charlson conditions an ICD-9 code string stands for (cached: the same codes recur constantly)."""
    v = _icd9_number(code)
    if v is None:
        return frozenset()
    return frozenset(name for name, _, pred in _CHARLSON if pred(v))


_WEIGHTS = {name: w for name, w, _ in _CHARLSON}


# Quan et al. 2005 (Med Care 43:1130) ICD-10 coding algorithm for the Charlson conditions: code prefixes (no dot).
def _r(head: str, lo: int, hi: int) -> tuple[str, ...]:
    return tuple(f"{head}{i:02d}" for i in range(lo, hi + 1))


def _sub(cats: tuple[str, ...], digits: str) -> tuple[str, ...]:
    return tuple(c + d for c in cats for d in digits)


_DIABETES = ("E10", "E11", "E12", "E13", "E14")
_CHARLSON_ICD10: dict[str, tuple[str, ...]] = {
    "myocardial_infarction": ("I21", "I22", "I252"),
    "heart_failure": ("I099", "I110", "I130", "I132", "I255", "I420", "I425", "I426", "I427", "I428", "I429", "I43",
                      "I50", "P290"),
    "peripheral_vascular": ("I70", "I71", "I731", "I738", "I739", "I771", "I790", "I792", "K551", "K558", "K559",
                            "Z958", "Z959"),
    "cerebrovascular": ("G45", "G46", "H340", *_r("I", 60, 69)),
    "dementia": ("F00", "F01", "F02", "F03", "F051", "G30", "G311"),
    "chronic_pulmonary": ("I278", "I279", *_r("J", 40, 47), *_r("J", 60, 67), "J684", "J701", "J703"),
    "rheumatic": ("M05", "M06", "M315", "M32", "M33", "M34", "M351", "M353", "M360"),
    "peptic_ulcer": ("K25", "K26", "K27", "K28"),
    "mild_liver": ("B18", "K700", "K701", "K702", "K703", "K709", "K713", "K714", "K715", "K717", "K73", "K74", "K760",
                   "K762", "K763", "K764", "K768", "K769", "Z944"),
    "diabetes": _sub(_DIABETES, "01689"),
    "diabetes_complicated": _sub(_DIABETES, "23457"),
    "hemiplegia": ("G041", "G114", "G801", "G802", "G81", "G82", "G830", "G831", "G832", "G833", "G834", "G839"),
    "renal": ("I120", "I131", *_sub(("N03", "N05"), "234567"), "N18", "N19", "N250", "Z490", "Z491", "Z492", "Z940",
              "Z992"),
    "malignancy": (*_r("C", 0, 26), *_r("C", 30, 34), *_r("C", 37, 41), "C43", *_r("C", 45, 58), *_r("C", 60, 76),
                   *_r("C", 81, 85), "C88", *_r("C", 90, 97)),
    "severe_liver": ("I850", "I859", "I864", "I982", "K704", "K711", "K721", "K729", "K765", "K766", "K767"),
    "metastatic": ("C77", "C78", "C79", "C80"),
    "aids": ("B20", "B21", "B22", "B24"),
}


@lru_cache(maxsize=8192)
def charlson_conditions_icd10(code: str) -> frozenset[str]:
    c = (code or "").strip().upper().replace(".", "")
    return frozenset(name for name, prefixes in _CHARLSON_ICD10.items() if c.startswith(prefixes))


def charlson_from_record(coded: Iterable[str]) -> int:
    """Charlson index of a stay from ALL its coded diagnoses ("ICD10:I50.9", "ICD9:428.0"): Quan's ICD-10 algorithm
    for ICD-10 codes, the ICD-9 map for ICD-9 ones, diabetes only where coded (records from a hospital's systems
    are not a diabetic cohort)."""
    found: set[str] = set()
    for item in coded:
        system, _, code = item.partition(":")
        if system == "ICD10":
            found |= charlson_conditions_icd10(code)
        elif system == "ICD9":
            found |= charlson_conditions(code)
            v = _icd9_number(code)
            if v is not None and int(v) == 250:
                found.add("diabetes_complicated" if 4 <= int((v - 250) * 10 + 1e-6) <= 7 else "diabetes")
    if "diabetes_complicated" in found:
        found.discard("diabetes")
    return _charlson_score(found)


def _charlson_score(found: set[str]) -> int:
    """Quan et al.'s hierarchy (the severe form replaces the mild one), then the Charlson weights."""
    if "severe_liver" in found:
        found.discard("mild_liver")
    if "metastatic" in found:
        found.discard("malignancy")
    weights = dict(_WEIGHTS, diabetes=1, diabetes_complicated=2)
    return int(sum(weights[c] for c in found))


def charlson_index(diagnoses: Iterable[str], assume_diabetes: bool = True) -> int:
    """Charlson comorbidity index from ICD-9 code strings (see PROXIES['lace.C'])."""
    codes = [str(c) for c in diagnoses]
    found: set[str] = set()
    for c in codes:
        found |= charlson_conditions(c)
    complicated = any((v := _icd9_number(c)) is not None and int(v) == 250 and 4 <= int((v - 250) * 10 + 1e-6) <= 7 for c in codes)
    uncomplicated = any((v := _icd9_number(c)) is not None and int(v) == 250 for c in codes) or assume_diabetes
    if complicated:
        found.add("diabetes_complicated")
    elif uncomplicated:
        found.add("diabetes")
    return _charlson_score(found)


def _int(record: Mapping[str, Any], key: str) -> int:
    return int(record[key])


def _los_points(days: int) -> int:
    if days < 1:
        return 0
    if days <= 3:
        return days
    if days <= 6:
        return 4
    if days <= 13:
        return 5
    return 7


def _measured(record: Mapping[str, Any], key: str) -> float | None:
    """A value the hospital's record supplied (records imported from FHIR or HL7), None where the UCI table has none."""
    v = record.get(key)
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f   # NaN: not measured


def score_inputs(record: Mapping[str, Any]) -> dict[str, str]:
    """The score parts computed from the patient's own record instead of a proxy (part -> what was used, in words);
    the rest keep the proxies of PROXIES."""
    out: dict[str, str] = {}
    if coded := str(record.get("charlson_codes") or ""):
        out["lace.C"] = (f"Charlson index from all {len(coded.split(';'))} ICD-coded diagnoses of the stay "
                         "(Quan's ICD-10 and ICD-9 algorithms)")
    elif record.get("history_from_record") in (True, 1):
        out["lace.C"] = "no ICD-coded diagnosis on the stay yet, so no comorbidity counted"
    if (e := _measured(record, "emergency_6m")) is not None:
        out["lace.E"] = f"{int(e)} emergency visits in the 6 months before, counted in the record"
    if record.get("history_from_record") in (True, 1):
        out["hospital.T"] = f"{_int(record, 'number_inpatient')} admissions in the year before, counted in the record"
    if (hb := _measured(record, "haemoglobin")) is not None:
        out["hospital.H"] = f"haemoglobin {hb:g} g/dL, the stay's last result (LOINC 718-7)"
    if (na := _measured(record, "sodium")) is not None:
        out["hospital.S"] = f"sodium {na:g} mmol/L, the stay's last result (LOINC 2951-2 / 2947-0)"
    return out


def lace_components(record: Mapping[str, Any]) -> dict[str, int]:
    los = _int(record, "time_in_hospital")
    emergency = _measured(record, "emergency_6m")
    acute = _int(record, "admission_type_id") in (1, 7) or _int(record, "admission_source_id") == 7
    coded = str(record.get("charlson_codes") or "")
    from_feed = record.get("history_from_record") in (True, 1)   # never assume the diabetes of the UCI cohort
    cci = charlson_from_record(coded.split(";") if coded else []) if coded or from_feed else \
        charlson_index([record.get("diag_1", ""), record.get("diag_2", ""), record.get("diag_3", "")])
    return {
        "L": _los_points(los),
        "A": 3 if acute else 0,
        "C": cci if cci <= 3 else 5,
        "E": min(int(emergency) if emergency is not None else _int(record, "number_emergency"), 4),
    }


def lace_index(record: Mapping[str, Any]) -> int:
    """LACE index (0-19) of one UCI encounter record (dict or pandas row)."""
    return int(sum(lace_components(record).values()))


def _has_code(record: Mapping[str, Any], pred: Any) -> bool:
    for key in ("diag_1", "diag_2", "diag_3"):
        v = _icd9_number(str(record.get(key, "")))
        if v is not None and pred(v):
            return True
    return False


def hospital_components(record: Mapping[str, Any]) -> dict[str, int]:
    prior = _int(record, "number_inpatient")
    hb, na = _measured(record, "haemoglobin"), _measured(record, "sodium")
    return {
        "H": (1 if hb < 12 else 0) if hb is not None else (1 if _has_code(record, lambda v: 280 <= v < 286) else 0),
        "O": 2 if str(record.get("medical_specialty", "")) in ("Oncology", "Hematology/Oncology") else 0,
        "S": (1 if na < 135 else 0) if na is not None else (1 if _has_code(record, lambda v: abs(v - 276.1) < 1e-9)
                                                             else 0),
        "P": 1 if _int(record, "num_procedures") > 0 else 0,
        "I": 1 if _int(record, "admission_type_id") in (1, 2, 7) else 0,
        "T": 0 if prior <= 1 else (2 if prior <= 5 else 5),
        "A": 2 if _int(record, "time_in_hospital") >= 5 else 0,
    }


def hospital_score(record: Mapping[str, Any]) -> int:
    """HOSPITAL score (0-13) of one UCI encounter record (dict or pandas row)."""
    return int(sum(hospital_components(record).values()))


def hospital_band(score: int) -> str:
    band = HOSPITAL_BANDS[0][1]
    for cut, name in HOSPITAL_BANDS:
        if score >= cut:
            band = name
    return band


def lace_series(df: pd.DataFrame) -> pd.Series:
    """LACE for every row of a normalised UCI frame."""
    recs = df[["time_in_hospital", "admission_type_id", "admission_source_id", "number_emergency",
               "diag_1", "diag_2", "diag_3"]].to_dict("records")
    return pd.Series(np.array([lace_index(r) for r in recs], dtype=np.int64), index=df.index, name="lace")


def hospital_series(df: pd.DataFrame) -> pd.Series:
    """HOSPITAL score for every row of a normalised UCI frame."""
    recs = df[["number_inpatient", "medical_specialty", "num_procedures", "admission_type_id", "time_in_hospital",
               "diag_1", "diag_2", "diag_3"]].to_dict("records")
    return pd.Series(np.array([hospital_score(r) for r in recs], dtype=np.int64), index=df.index, name="hospital")
