"""Readmission features AT DISCHARGE from a UCI-schema encounter table: the one code path shared by
training, the batch `score` command and the application.

Pure pandas/numpy. Input: a normalised UCI frame (as from `read_uci_csv`/`normalise_uci_frame`) that
may hold several encounters per patient. Output: one feature row per input row, in input order.
History features of a row use only that patient's EARLIER encounters (smaller encounter_id), never the
row itself or later ones (the store knows exactly these at the current discharge).

Labels of earlier encounters. The `readmitted` label of an earlier encounter j says whether the
patient was readmitted within 30 days of j's discharge. Because the current encounter is itself an
inpatient admission after j, that first readmission happened at or before the current admission, so
the label is known at the current discharge (for the previous encounter it is simply "did this
admission come within 30 days of the last discharge"). We only use "<30" versus anything else: in a
live store an earlier encounter followed by another admission can never be "NO"; in the UCI table
442 earlier encounters are "NO" and look mis-ordered by encounter_id (their number_inpatient counts
the "later" one), so "NO" must not become a signal of its own. Missing labels (a store that does not
record them) count as not "<30". The row's own label and later labels are never read.

Race is deliberately not a model input (it is used only for the subgroup table of the model card).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from services.risk.clinical_scores import charlson_conditions, charlson_index
from services.records.uci_table import ICD9_GROUPS, icd9_group
from services.records.uci_schema import (AGE_BANDS, MEDICATIONS, NOT_RECORDED, PAYER_WORDS, admission_source_text,
                                 admission_type_text, age_band_text, disposition_text, specialty_text)

# Fixed vocabularies so that the layout never depends on the data being scored; others map to "other".
SPECIALTIES: tuple[str, ...] = (
    "InternalMedicine", "Emergency/Trauma", "Family/GeneralPractice", "Cardiology", "Surgery-General",
    "Nephrology", "Orthopedics", "Orthopedics-Reconstructive", "Radiologist", "Pulmonology", "Psychiatry",
    "Hematology/Oncology", "Oncology",
)
PAYERS: tuple[str, ...] = ("MC", "MD", "HM", "SP", "BC", "CP", "UN", "CM")
ADMISSION_TYPE_CODES: tuple[int, ...] = (1, 2, 3, 5, 6, 8)
ADMISSION_SOURCE_CODES: tuple[int, ...] = (1, 2, 4, 6, 7, 17)
DISPOSITION_CODES: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 15, 18, 22, 23, 24, 25, 28)
# Medications common enough to carry their own on/up/down flags; the rest enter through counts.
MAIN_MEDS: tuple[str, ...] = ("insulin", "metformin", "glipizide", "glyburide", "pioglitazone", "rosiglitazone",
                              "glimepiride", "repaglinide")
_USED_MEDS = tuple(m for m in MEDICATIONS if m not in ("examide", "citoglipton"))  # those two are constant
COMORBIDITIES: tuple[str, ...] = ("heart_failure", "renal", "chronic_pulmonary", "malignancy", "metastatic",
                                  "cerebrovascular", "myocardial_infarction", "peripheral_vascular", "dementia",
                                  "mild_liver", "severe_liver")

# The 40 most frequent primary codes and 30 most frequent secondary 3-digit codes of the UCI table
# (chosen by frequency, not by outcome), so that common conditions get their own indicator.
TOP_DIAG1: tuple[str, ...] = (
    "428", "414", "786", "410", "486", "427", "491", "715", "682", "434", "780", "996", "276", "38", "250.8",
    "599", "584", "V57", "250.6", "518", "493", "820", "577", "435", "562", "574", "296", "250.7", "250.13",
    "440", "560", "433", "998", "722", "250.02", "578", "250.11", "507", "789", "453",
)
TOP_DIAG23: tuple[str, ...] = (
    "250", "276", "401", "428", "427", "414", "496", "403", "599", "585", "707", "411", "780", "285", "584",
    "425", "272", "682", "518", "424", "491", "486", "V45", "305", "493", "413", "786", "41", "280",
)
# Plain names for the codes above (ICD-9-CM chapter titles shortened for clinicians).
ICD9_NAMES: dict[str, str] = {
    "428": "heart failure", "414": "chronic ischaemic heart disease", "786": "chest or breathing symptoms",
    "410": "heart attack", "486": "pneumonia", "427": "heart rhythm disorder", "491": "chronic bronchitis (COPD)",
    "715": "osteoarthritis", "682": "cellulitis or abscess", "434": "stroke (cerebral artery occlusion)",
    "780": "general symptoms (e.g. fainting, fever)", "996": "complication of an implant or graft",
    "276": "fluid or electrolyte disorder", "38": "septicaemia", "250.8": "diabetes with other complications",
    "599": "urinary tract disorder", "584": "acute kidney failure", "V57": "rehabilitation care",
    "250.6": "diabetes with nerve damage", "518": "lung disease (e.g. respiratory failure)", "493": "asthma",
    "820": "hip fracture", "577": "pancreatic disease", "435": "transient ischaemic attack",
    "562": "diverticular disease", "574": "gallstones", "296": "mood disorder",
    "250.7": "diabetes with circulation problems", "250.13": "diabetic ketoacidosis (type 1, uncontrolled)",
    "440": "atherosclerosis", "560": "bowel obstruction", "433": "carotid or vertebral artery occlusion",
    "998": "complication of a procedure", "722": "spinal disc disorder", "250.02": "type 2 diabetes, uncontrolled",
    "578": "gastrointestinal bleeding", "250.11": "diabetic ketoacidosis (type 1)", "507": "aspiration pneumonia",
    "789": "abdominal symptoms", "453": "venous thrombosis", "250": "diabetes", "401": "high blood pressure",
    "496": "COPD", "403": "hypertensive kidney disease", "585": "chronic kidney disease", "707": "skin or pressure ulcer",
    "411": "acute ischaemic heart disease", "285": "anaemia", "425": "cardiomyopathy", "272": "lipid disorder",
    "424": "heart valve disease", "V45": "post-procedure state (e.g. stent, dialysis)", "305": "substance misuse",
    "413": "angina", "41": "bacterial infection", "280": "iron-deficiency anaemia",
}
_NUMERIC = ("time_in_hospital", "num_lab_procedures", "num_procedures", "num_medications", "number_outpatient",
            "number_emergency", "number_inpatient", "number_diagnoses")
HISTORY_FEATURES: tuple[str, ...] = (
    "hx_n_prior", "hx_n_prior_lt30", "hx_prev_lt30", "hx_prior_days", "hx_prev_los", "hx_prior_emergency",
    "hx_prior_insulin", "hx_prev_same_group", "hx_prev_care_disp", "hx_meds_delta", "hx_prev_diag_count",
    "hx_prev_inpatient", "hx_inpatient_delta", "hx_prev_emergency", "hx_emergency_delta", "hx_prev_outpatient",
    "hx_outpatient_delta", "hx_prior_max_inpatient", "hx_lt30_share", "hx_prev_same_code",
)


def _feature_names() -> tuple[str, ...]:
    names: list[str] = ["age_years", "male"]
    names += list(_NUMERIC) + ["total_visits", "charlson", "labs_per_day", "meds_per_day"]
    names += [f"adm_type_{c}" for c in ADMISSION_TYPE_CODES] + ["adm_type_other"]
    names += [f"adm_src_{c}" for c in ADMISSION_SOURCE_CODES] + ["adm_src_other"]
    names += [f"disp_{c}" for c in DISPOSITION_CODES] + ["disp_other"]
    names += [f"spec_{s}" for s in SPECIALTIES] + ["spec_missing", "spec_other"]
    names += [f"payer_{p}" for p in PAYERS] + ["payer_missing", "payer_other"]
    names += [f"diag1_{g}" for g in ICD9_GROUPS] + [f"diag23_{g}" for g in ICD9_GROUPS if g != "Missing"]
    names += [f"dx1_{c}" for c in TOP_DIAG1] + [f"dx23_{c}" for c in TOP_DIAG23]
    names += [f"cm_{c}" for c in COMORBIDITIES] + ["diab_complicated", "diag1_diabetes_uncontrolled"]
    names += ["glu_measured", "glu_level", "a1c_measured", "a1c_level"]
    for m in MAIN_MEDS:
        names += [f"med_{m}_on", f"med_{m}_up", f"med_{m}_down"]
    names += ["n_meds_on", "n_meds_up", "n_meds_down", "change", "diabetes_med"]
    names += list(HISTORY_FEATURES)
    return tuple(names)


FEATURE_NAMES: tuple[str, ...] = _feature_names()
_CARE_DISPOSITIONS = frozenset({3, 4, 5, 6, 15, 22, 23, 24})


def _columns(df: pd.DataFrame) -> dict[str, pd.Series | np.ndarray]:
    """The frame's columns: for a few rows as object arrays from one conversion (taking 60 columns
    one by one from pandas would cost more than all the features), for many rows as the Series."""
    if len(df) > 64:
        return {c: df[c] for c in df.columns}
    values = df.to_numpy(dtype=object)
    return {c: values[:, i] for i, c in enumerate(df.columns)}


def _strs(values: pd.Series | np.ndarray) -> np.ndarray:
    """A column as an object array of str, as `Series.astype(str)` gives it (NaN -> "nan")."""
    if isinstance(values, pd.Series):
        return values.astype(str).to_numpy()
    return np.array([str(v) for v in values], dtype=object)


def _in(values: np.ndarray, members: frozenset | set) -> np.ndarray:
    """Element-wise membership as float64 (Python set lookups: fast for one row and for 100,000)."""
    return np.fromiter((v in members for v in values), dtype=np.float64, count=len(values))


def _eq(values: np.ndarray, x: object) -> np.ndarray:
    return (values == x).astype(np.float64)


def _onehot(values: np.ndarray, codes: tuple, prefix: str, other: str = "other") -> dict[str, np.ndarray]:
    out = {f"{prefix}_{c}": _eq(values, c) for c in codes}
    out[f"{prefix}_{other}"] = 1.0 - _in(values, frozenset(codes))
    return out


@lru_cache(maxsize=4096)
def _code_number(code: str) -> float:
    """An ICD-9 code's numeric value (NaN for V/E codes and anything not a number), from its string."""
    c = code.strip()
    if c[:1].upper() in ("V", "E"):
        return np.nan
    try:
        return float(c)
    except ValueError:
        return np.nan


_group = lru_cache(maxsize=4096)(icd9_group)
_conditions = lru_cache(maxsize=4096)(charlson_conditions)
_AGE_INDEX = {b: float(i) for i, b in enumerate(AGE_BANDS)}


def build_features(encounters: pd.DataFrame) -> pd.DataFrame:
    """Feature matrix (columns FEATURE_NAMES, float64) for every row of a normalised UCI frame.

    Rows keep the input's index and order. History uses only earlier encounter_ids of the same
    patient_nbr present in `encounters`; pass the patient's history rows along with the rows to score.

    Written on numpy arrays and cached per-code functions, not pandas operations: the same code scores
    one encounter at the bedside in about a millisecond and the whole UCI table in training.
    """
    df = encounters
    if df["encounter_id"].duplicated().any():
        raise ValueError("duplicate encounter_id in the encounters passed to build_features")
    n = len(df)
    if n == 0:
        return pd.DataFrame(np.zeros((0, len(FEATURE_NAMES))), columns=list(FEATURE_NAMES), index=df.index)
    col = _columns(df)
    f: dict[str, np.ndarray] = {}
    # an unknown age band counts as 60-70 (65), the median
    f["age_years"] = np.array([_AGE_INDEX.get(a, 6.0) for a in np.asarray(col["age"])], dtype=np.float64) * 10 + 5
    f["male"] = _eq(np.asarray(col["gender"]), "Male")
    for c in _NUMERIC:
        f[c] = np.asarray(col[c], dtype=np.float64)
    f["total_visits"] = f["number_outpatient"] + f["number_emergency"] + f["number_inpatient"]
    f["labs_per_day"] = f["num_lab_procedures"] / np.maximum(f["time_in_hospital"], 1)
    f["meds_per_day"] = f["num_medications"] / np.maximum(f["time_in_hospital"], 1)
    diags = [_strs(col[k]) for k in ("diag_1", "diag_2", "diag_3")]
    d1 = np.array([v.strip() for v in diags[0]], dtype=object)
    for c in TOP_DIAG1:
        f[f"dx1_{c}"] = _eq(d1, c)
    d2, d3 = (np.array([v.strip().split(".")[0] for v in d], dtype=object) for d in diags[1:])
    for c in TOP_DIAG23:
        f[f"dx23_{c}"] = ((d2 == c) | (d3 == c)).astype(np.float64)
    f["charlson"] = np.array([charlson_index(r) for r in zip(*diags)], dtype=np.float64)
    f.update(_onehot(np.asarray(col["admission_type_id"]), ADMISSION_TYPE_CODES, "adm_type"))
    f.update(_onehot(np.asarray(col["admission_source_id"]), ADMISSION_SOURCE_CODES, "adm_src"))
    f.update(_onehot(np.asarray(col["discharge_disposition_id"]), DISPOSITION_CODES, "disp"))
    spec = _strs(col["medical_specialty"])
    for s in SPECIALTIES:
        f[f"spec_{s}"] = _eq(spec, s)
    f["spec_missing"] = _in(spec, {"?", ""})
    f["spec_other"] = 1.0 - _in(spec, {*SPECIALTIES, "?", ""})
    payer = _strs(col["payer_code"])
    for p in PAYERS:
        f[f"payer_{p}"] = _eq(payer, p)
    f["payer_missing"] = _in(payer, {"?", ""})
    f["payer_other"] = 1.0 - _in(payer, {*PAYERS, "?", ""})

    groups = [np.array([_group(v) for v in d], dtype=object) for d in diags]
    for g in ICD9_GROUPS:
        f[f"diag1_{g}"] = _eq(groups[0], g)
    for g in ICD9_GROUPS:
        if g != "Missing":
            f[f"diag23_{g}"] = ((groups[1] == g) | (groups[2] == g)).astype(np.float64)
    conds = [[_conditions(v) for v in d] for d in diags]
    for c in COMORBIDITIES:
        f[f"cm_{c}"] = np.fromiter((c in a or c in b or c in e for a, b, e in zip(*conds)), dtype=np.float64, count=n)
    nums = [np.array([_code_number(v) for v in d], dtype=np.float64) for d in diags]
    tenths = [np.floor((v - 250) * 10 + 1e-6) for v in nums]
    f["diab_complicated"] = np.logical_or.reduce(
        [(np.floor(v) == 250) & (t >= 4) & (t <= 7) for v, t in zip(nums, tenths)]).astype(np.float64)
    # 250.x2 / 250.x3 = "uncontrolled" in the fifth digit
    fifth = np.round((nums[0] - np.floor(nums[0] * 10 + 1e-6) / 10) * 100)
    f["diag1_diabetes_uncontrolled"] = ((np.floor(nums[0]) == 250) & np.isin(fifth, [2, 3])).astype(np.float64)

    glu = _strs(col["max_glu_serum"])
    f["glu_measured"] = _in(glu, {"Norm", ">200", ">300"})
    f["glu_level"] = _eq(glu, ">200") + 2.0 * _eq(glu, ">300")
    a1c = _strs(col["A1Cresult"])
    f["a1c_measured"] = _in(a1c, {"Norm", ">7", ">8"})
    f["a1c_level"] = _eq(a1c, ">7") + 2.0 * _eq(a1c, ">8")
    meds = {m: _strs(col[m]) for m in _USED_MEDS}
    for m in MAIN_MEDS:
        f[f"med_{m}_up"] = _eq(meds[m], "Up")
        f[f"med_{m}_down"] = _eq(meds[m], "Down")
        f[f"med_{m}_on"] = f[f"med_{m}_up"] + f[f"med_{m}_down"] + _eq(meds[m], "Steady")
    f["n_meds_up"] = np.add.reduce([_eq(v, "Up") for v in meds.values()])
    f["n_meds_down"] = np.add.reduce([_eq(v, "Down") for v in meds.values()])
    f["n_meds_on"] = f["n_meds_up"] + f["n_meds_down"] + np.add.reduce([_eq(v, "Steady") for v in meds.values()])
    f["change"] = _eq(_strs(col["change"]), "Ch")
    f["diabetes_med"] = _eq(_strs(col["diabetesMed"]), "Yes")
    f.update(_history(col, f, groups[0], d1))
    out = pd.DataFrame(np.column_stack([f[k] for k in FEATURE_NAMES]), columns=list(FEATURE_NAMES), index=df.index)
    assert out.shape == (n, len(FEATURE_NAMES))
    return out


def _segment_cummax(x: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Running maximum of x restarting at each segment (seg: non-decreasing segment numbers)."""
    if not len(x):
        return x.astype(np.float64)
    lift = (np.abs(x).max() + 2.0) * 2.0  # any later segment's values sit above every earlier one's
    return np.maximum.accumulate(x + seg * lift) - seg * lift


def _history(col: dict[str, pd.Series | np.ndarray], f: dict[str, np.ndarray], group1: np.ndarray, code1: np.ndarray
             ) -> dict[str, np.ndarray]:
    """Features from the patient's earlier encounters: cumulative sums shifted by one row, per patient."""
    order = np.lexsort((np.asarray(col["encounter_id"]), np.asarray(col["patient_nbr"])))
    pat = np.asarray(col["patient_nbr"])[order]
    first = np.r_[True, pat[1:] != pat[:-1]]  # first encounter of each patient in sorted order
    seg = np.cumsum(first) - 1

    def prior_sum(x: np.ndarray) -> np.ndarray:
        """Sum over the patient's strictly earlier rows (sorted order)."""
        c = np.cumsum(x)
        seg_start = c[first] - x[first]  # cumulative total before each patient's first row
        return c - x - seg_start[seg]

    def prev(x: np.ndarray, fill: float = 0.0) -> np.ndarray:
        p = np.r_[fill, x[:-1]].astype(np.float64)
        p[first] = fill
        return p

    ones = np.ones(len(order))
    lt30 = _eq(_strs(col["readmitted"])[order], "<30")
    los = f["time_in_hospital"][order]
    emerg = f["adm_type_1"][order]
    insulin = f["med_insulin_on"][order]
    grp = group1[order]
    care = _in(np.asarray(col["discharge_disposition_id"]), _CARE_DISPOSITIONS)[order]
    nmeds = f["num_medications"][order]
    has_prev = (~first).astype(np.float64)
    code = np.array([c.split(".")[0] for c in code1], dtype=object)[order]
    prev_code = np.r_[[""], code[:-1]]
    inp = f["number_inpatient"][order]
    # running maximum of number_inpatient over strictly earlier rows of the patient (-1 = none)
    prior_max = _segment_cummax(np.where(first, -1.0, np.r_[-1.0, inp[:-1]]), seg)
    n_prior = prior_sum(ones)
    prev_grp = np.r_[[""], grp[:-1]]
    h = {
        "hx_n_prior": prior_sum(ones),
        "hx_n_prior_lt30": prior_sum(lt30),
        "hx_prev_lt30": prev(lt30),
        "hx_prior_days": prior_sum(los),
        "hx_prev_los": prev(los),
        "hx_prior_emergency": prior_sum(emerg),
        "hx_prior_insulin": (prior_sum(insulin) > 0).astype(np.float64),
        "hx_prev_same_group": ((prev_grp == grp) & ~first).astype(np.float64),
        "hx_prev_care_disp": prev(care),
        "hx_meds_delta": (nmeds - prev(nmeds)) * has_prev,
        "hx_prev_diag_count": prev(f["number_diagnoses"][order]),
        "hx_prior_max_inpatient": prior_max,
        "hx_lt30_share": np.where(n_prior > 0, prior_sum(lt30) / np.maximum(n_prior, 1), -1.0),
        "hx_prev_same_code": ((prev_code == code) & ~first).astype(np.float64),
    }
    # visit counts at the last stay (-1 = no earlier encounter) and the change since then
    for col, short in (("number_inpatient", "inpatient"), ("number_emergency", "emergency"),
                       ("number_outpatient", "outpatient")):
        x = f[col][order]
        h[f"hx_prev_{short}"] = prev(x, fill=-1.0)
        h[f"hx_{short}_delta"] = (x - prev(x)) * has_prev
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return {k: v[inv] for k, v in h.items()}


# ----- plain words for clinicians -----------------------------------------------------------------

_COUNT_WORDS: dict[str, tuple[str, str]] = {
    "time_in_hospital": ("{n} day{s} in hospital this stay", ""),
    "num_lab_procedures": ("{n} lab test{s} this stay", ""),
    "num_procedures": ("{n} procedure{s} this stay", ""),
    "num_medications": ("{n} medication{s} given this stay", ""),
    "number_outpatient": ("{n} outpatient visit{s} in the year before", ""),
    "number_emergency": ("{n} emergency visit{s} in the year before", ""),
    "number_inpatient": ("{n} inpatient stay{s} in the year before", ""),
    "number_diagnoses": ("{n} diagnos{es} recorded", ""),
    "total_visits": ("{n} hospital visit{s} of any kind in the year before", ""),
    "charlson": ("comorbidity (Charlson) score {n}", ""),
    "hx_n_prior": ("{n} earlier encounter{s} on record", ""),
    "hx_n_prior_lt30": ("{n} earlier readmission{s} within 30 days", ""),
    "hx_prior_days": ("{n} day{s} in hospital in earlier encounters", ""),
    "hx_prev_los": ("last stay lasted {n} day{s}", ""),
    "hx_prior_emergency": ("{n} earlier emergency admission{s}", ""),
    "hx_prev_diag_count": ("{n} diagnos{es} at the last stay", ""),
    "hx_prior_max_inpatient": ("up to {n} inpatient stay{s} a year at earlier encounters", ""),
}
_FLAG_WORDS: dict[str, str] = {
    "male": "male",
    "hx_prev_lt30": "this admission came within 30 days of the last discharge",
    "hx_prior_insulin": "on insulin at an earlier stay",
    "hx_prev_same_group": "same main diagnosis group as the last stay",
    "hx_prev_same_code": "same main diagnosis as the last stay",
    "hx_prev_care_disp": "went to a care facility or home health after the last stay",
    "diab_complicated": "diabetes with chronic complications coded",
    "diag1_diabetes_uncontrolled": "main diagnosis: uncontrolled diabetes",
    "glu_measured": "blood glucose measured",
    "a1c_measured": "HbA1c measured",
    "change": "diabetes medication changed",
    "diabetes_med": "on diabetes medication",
    "spec_missing": "admitting specialty not recorded",
    "spec_other": "less common admitting specialty",
    "payer_missing": "payer not recorded",
    "payer_other": "less common payer",
    "adm_type_other": "less common admission type",
    "adm_src_other": "less common admission source",
    "disp_other": "less common discharge destination",
}
# Natural wording for indicators whose ABSENT value often carries risk.
_NEGATED: dict[str, str] = {
    "disp_1": "discharge destination other than home (self-care)", "male": "female", "spec_missing": "admitting specialty recorded",
    "payer_missing": "payer recorded", "glu_measured": "blood glucose not measured", "a1c_measured": "HbA1c not measured",
    "diabetes_med": "not on diabetes medication", "change": "diabetes medication not changed",
    "hx_prev_lt30": "not readmitted within 30 days of the last discharge",
    "diab_complicated": "diabetes with chronic complications not coded",
    "hx_prev_same_group": "main diagnosis group differs from the last stay",
    "hx_prev_same_code": "main diagnosis differs from the last stay",
    "hx_prev_care_disp": "neither a care facility nor home health after the last stay",
    "hx_prior_insulin": "not on insulin at an earlier stay",
    "diag1_Other": "main diagnosis in one of the common groups",
    "diag23_Other": "no secondary diagnosis outside the common groups",
}


def _plural(template: str, n: int) -> str:
    return template.format(n=n, s="" if n == 1 else "s", es="is" if n == 1 else "es")


def describe_feature(name: str, value: float) -> str:
    """Plain words for one feature value, e.g. ("number_inpatient", 3) -> "3 inpatient stays in the year before".

    Indicator features with value 0 are described negated ("discharge destination other than home (self-care)",
    which is what disp_1 = 0 means: home with home health and "not recorded" count as other), because a missing
    property can raise or lower risk too.
    """
    v = float(value)
    n = int(round(v))
    if name in _COUNT_WORDS:
        return _plural(_COUNT_WORDS[name][0], n)
    if name.startswith("hx_prev_") and name[8:] in ("inpatient", "emergency", "outpatient"):
        if n < 0:
            return "no earlier encounter on record"
        return f"{n} {name[8:]} visit{'' if n == 1 else 's'} in the year before the last stay"
    if name.endswith("_delta") and name[3:-6] in ("inpatient", "emergency", "outpatient"):
        k = name[3:-6]
        return f"{abs(n)} {'more' if n >= 0 else 'fewer'} {k} visit{'' if abs(n) == 1 else 's'} than at the last stay"
    if name == "hx_lt30_share":
        return "no earlier encounter on record" if v < 0 else f"{round(100 * v)}% of earlier stays followed by a readmission within 30 days"
    if name in ("labs_per_day", "meds_per_day"):
        return f"{v:.1f} {'lab tests' if name == 'labs_per_day' else 'medications'} per hospital day"
    if name == "age_years":
        lo = int(v // 10 * 10)
        return f"age {age_band_text(f'[{lo}-{lo + 10})')}"
    if name == "hx_meds_delta":
        return f"{abs(n)} medication{'' if abs(n) == 1 else 's'} {'more' if n >= 0 else 'fewer'} than at the last stay"
    if name in ("glu_level", "a1c_level"):
        lab = "glucose" if name == "glu_level" else "HbA1c"
        levels = {"glu_level": ("not high", "above 200", "above 300"), "a1c_level": ("not high", "above 7%", "above 8%")}
        return f"{lab} {levels[name][min(max(n, 0), 2)]}"
    if name in ("n_meds_on", "n_meds_up", "n_meds_down"):
        what = {"n_meds_on": "diabetes medication{s} taken", "n_meds_up": "diabetes medication{s} increased",
                "n_meds_down": "diabetes medication{s} decreased"}[name]
        return f"{n} " + what.format(s="" if n == 1 else "s")
    if v < 0.5 and name in _NEGATED:
        return _NEGATED[name]
    if v < 0.5 and name.startswith("med_") and name.endswith("_on"):
        return f"not on {name[4:-3]}"
    text = _indicator_text(name)
    return text if v >= 0.5 else _negated_indicator(name, text)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _admission_type_words(code: int) -> str:
    w = admission_type_text(code)
    return "admission type not recorded" if w == NOT_RECORDED else f"{w.lower()} admission"


def _admission_source_words(code: int) -> str:
    w = admission_source_text(code)
    if w == NOT_RECORDED:
        return "admission source not recorded"
    return _lower_first(w.replace("Transfer from", "transferred from")) if w.startswith("Transfer") else \
        f"admitted via {_lower_first(w)}"


def _disposition_words(code: int) -> str:
    w = disposition_text(code)
    if w == NOT_RECORDED:
        return "discharge destination not recorded"
    if w.startswith("Transfer to"):
        return "discharged to" + w[len("Transfer to"):]
    if w.startswith("Home"):
        return "discharged home" + w[len("Home"):]
    return _lower_first(w)


def _negated_indicator(name: str, text: str) -> str:
    """Natural negation of an indicator's words ("not an emergency admission", "payer not Medicare")."""
    if text.endswith(" not recorded"):
        return text[: -len(" not recorded")] + " recorded"
    if text.startswith("less common "):
        return "a more common " + text[len("less common "):]
    if text == "left against medical advice":
        return "did not leave against medical advice"
    if text.endswith((" coded", " increased", " decreased")):  # "heart failure coded", "insulin dose increased"
        head, _, last = text.rpartition(" ")
        return f"{head} not {last}"
    if name.startswith("dx23_"):
        return "no secondary diagnosis of " + text[len("secondary diagnosis "):]
    for prefix, lead in (("admitted via ", "not admitted via "), ("transferred from ", "not transferred from "),
                         ("discharged ", "not discharged "), ("admitting specialty ", "admitting specialty not "),
                         ("payer: ", "payer not "), ("payer code ", "payer not code "),
                         ("main diagnosis in ", "main diagnosis not in "), ("secondary diagnosis in ", "no secondary diagnosis in "),
                         ("main diagnosis: ", "main diagnosis not "),
                         ("main diagnosis ", "main diagnosis not "), ("on ", "not on ")):
        if text.startswith(prefix):
            return lead + text[len(prefix):]
    if name.startswith("adm_type_"):
        return f"not an {text}" if text[:1] in "aeiou" else f"not a {text}"
    return f"not: {text}"


def _indicator_text(name: str) -> str:
    if name in _FLAG_WORDS:
        return _FLAG_WORDS[name]
    if name.startswith("adm_type_"):
        return _admission_type_words(int(name.rsplit("_", 1)[1]))
    if name.startswith("adm_src_"):
        return _admission_source_words(int(name.rsplit("_", 1)[1]))
    if name.startswith("disp_"):
        return _disposition_words(int(name.split("_", 1)[1]))
    if name.startswith("spec_"):
        return f"admitting specialty {specialty_text(name[5:]).lower()}"
    if name.startswith("payer_"):
        code = name[6:]
        if code not in PAYER_WORDS:
            return f"payer code {code}"  # the study does not say what these codes mean
        words = PAYER_WORDS[code]
        return f"payer: {words if code in ('MC', 'MD', 'HM', 'BC', 'CH') else words.lower()}"  # names keep capitals
    if name in ("diag1_Missing", "diag1_Other"):
        return "main diagnosis not recorded" if name == "diag1_Missing" else "main diagnosis outside the common groups"
    if name == "diag23_Other":
        return "secondary diagnosis outside the common groups"
    if name.startswith("diag1_"):
        return f"main diagnosis in the {name[6:].lower()} group"
    if name.startswith("diag23_"):
        return f"secondary diagnosis in the {name[7:].lower()} group"
    if name.startswith("dx1_"):
        return f"main diagnosis {ICD9_NAMES.get(name[4:], 'ICD-9 ' + name[4:])}"
    if name.startswith("dx23_"):
        return f"secondary diagnosis {ICD9_NAMES.get(name[5:], 'ICD-9 ' + name[5:])}"
    if name.startswith("cm_"):
        return name[3:].replace("_", " ") + " coded"
    if name.startswith("med_"):
        _, med, what = name.split("_", 2)
        return {"on": f"on {med}", "up": f"{med} dose increased", "down": f"{med} dose decreased"}[what]
    return name.replace("_", " ")


def feature_label(name: str) -> str:
    """A short generic label for a feature column (for tables and the model card)."""
    if name in _COUNT_WORDS:
        return _COUNT_WORDS[name][0].replace("{n}", "N").replace("{s}", "s").replace("{es}", "es")
    if name.startswith("hx_prev_") and name[8:] in ("inpatient", "emergency", "outpatient"):
        return f"{name[8:]} visits in the year before the last stay"
    if name.endswith("_delta") and name[3:-6] in ("inpatient", "emergency", "outpatient"):
        return f"change in {name[3:-6]} visits since the last stay"
    if name in ("hx_lt30_share", "labs_per_day", "meds_per_day"):
        return {"hx_lt30_share": "share of earlier stays followed by a 30-day readmission",
                "labs_per_day": "lab tests per hospital day", "meds_per_day": "medications per hospital day"}[name]
    if name in ("age_years", "hx_meds_delta", "glu_level", "a1c_level", "n_meds_on", "n_meds_up", "n_meds_down"):
        return {"age_years": "age (band midpoint)", "hx_meds_delta": "medications versus the last stay",
                "glu_level": "max glucose level", "a1c_level": "HbA1c level", "n_meds_on": "diabetes medications taken",
                "n_meds_up": "diabetes medications increased", "n_meds_down": "diabetes medications decreased"}[name]
    return _indicator_text(name)
