"""Length-of-stay features known AT ADMISSION, from a UCI-schema encounter table.

Pure pandas/numpy, shared by the training pipeline and the application, so both build exactly the
same matrix. Input: a UCI-schema DataFrame (as from `read_uci_csv`) that may also hold the patient's
other encounters; each row's history features use only that patient's EARLIER encounters (smaller
encounter_id), never the row itself or later ones.

Deliberately NOT used (they accumulate during the stay or are known only at discharge):
num_lab_procedures, num_procedures, num_medications, the 23 medication status columns, change,
diabetesMed, max_glu_serum, A1Cresult, discharge_disposition_id and readmitted of the row itself.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from services.records.uci_table import ICD9_GROUPS, icd9_group
from services.records.uci_schema import AGE_BANDS

# Fixed vocabularies (the most frequent values in the UCI table); anything else maps to "other", so
# the feature layout never depends on the data being scored.
SPECIALTIES: tuple[str, ...] = (
    "InternalMedicine", "Emergency/Trauma", "Family/GeneralPractice", "Cardiology", "Surgery-General",
    "Nephrology", "Orthopedics", "Orthopedics-Reconstructive", "Radiologist", "Pulmonology", "Psychiatry",
    "Urology", "ObstetricsandGynecology", "Surgery-Cardiovascular/Thoracic", "Gastroenterology",
    "Surgery-Vascular", "Surgery-Neuro", "PhysicalMedicineandRehabilitation", "Oncology", "Pediatrics",
    "Neurology", "Hematology/Oncology",
)
PAYERS: tuple[str, ...] = ("MC", "HM", "SP", "BC", "MD", "CP", "UN", "CM", "OG", "PO", "DM")
RACES: tuple[str, ...] = ("Caucasian", "AfricanAmerican", "Hispanic", "Asian", "Other")
ADMISSION_TYPE_CODES: tuple[int, ...] = (1, 2, 3, 5, 6, 8)
ADMISSION_SOURCE_CODES: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 17)
# Dispositions of an EARLIER encounter that signal frailty (SNF, ICF, rehab, long-term care, home health).
_CARE_DISPOSITIONS = frozenset({3, 4, 5, 6, 15, 22, 23, 24})

HISTORY_FEATURES: tuple[str, ...] = (
    "hist_n_prev", "hist_prev_los_mean", "hist_prev_los_last", "hist_prev_los_max", "hist_prev_meds_mean",
    "hist_prev_labs_mean", "hist_prev_readmit30_last", "hist_prev_care_disp_any", "hist_prev_same_diag1",
)

FEATURE_NAMES: tuple[str, ...] = (
    ("age_years", "male", "gender_unknown")
    + tuple(f"race_{r}" for r in RACES) + ("race_missing",)
    + ("weight_recorded",)
    + ("admission_type_id",) + tuple(f"adm_type_{c}" for c in ADMISSION_TYPE_CODES)
    + ("admission_source_id",) + tuple(f"adm_src_{c}" for c in ADMISSION_SOURCE_CODES)
    + tuple(f"spec_{s}" for s in SPECIALTIES) + ("spec_other", "spec_missing")
    + tuple(f"payer_{p}" for p in PAYERS) + ("payer_missing",)
    + ("number_outpatient", "number_emergency", "number_inpatient", "number_diagnoses")
    + ("diag_1_code", "diag_2_code", "diag_3_code")
    + tuple(f"diag1_{g}" for g in ICD9_GROUPS)
    + tuple(f"any_diag_{g}" for g in ICD9_GROUPS if g != "Missing")
    + ("diag_is_diabetes_complicated",)
    + HISTORY_FEATURES
)
N_FEATURES = len(FEATURE_NAMES)


def icd9_numeric(code: str) -> float:
    """ICD-9 code as one ordered number so trees can split on chapter ranges without a vocabulary.

    Numeric codes keep their value (428.0); V codes map to 1000+n and E codes to 2000+n; missing -1.
    """
    if not isinstance(code, str) or not code or code == "?":
        return -1.0
    c = code.strip().upper()
    offset = 0.0
    if c[0] == "V":
        offset, c = 1000.0, c[1:]
    elif c[0] == "E":
        offset, c = 2000.0, c[1:]
    try:
        return offset + float(c)
    except ValueError:
        return -1.0


def _age_years(band: pd.Series) -> np.ndarray:
    mids = {b: float(i * 10 + 5) for i, b in enumerate(AGE_BANDS)}
    return band.map(mids).fillna(-1.0).to_numpy(np.float64)


def _onehot(values: pd.Series, vocab: tuple, cols: dict[str, np.ndarray], prefix: str) -> None:
    for v in vocab:
        cols[f"{prefix}{v}"] = (values == v).to_numpy(np.float64)


def history_features(df: pd.DataFrame) -> pd.DataFrame:
    """Per row: summaries of the same patient's earlier encounters (smaller encounter_id) only."""
    order = np.lexsort((df["encounter_id"].to_numpy(), df["patient_nbr"].to_numpy()))
    s = df.iloc[order]
    g = s.groupby("patient_nbr", sort=False)
    n_prev = g.cumcount().to_numpy(np.float64)

    def prev_cumsum(col: pd.Series) -> np.ndarray:
        # cumulative sum over earlier rows = inclusive cumsum minus the row itself
        return (col.groupby(s["patient_nbr"], sort=False).cumsum() - col).to_numpy(np.float64)

    los = s["time_in_hospital"].astype(np.float64)
    meds = s["num_medications"].astype(np.float64)
    labs = s["num_lab_procedures"].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        los_mean = np.where(n_prev > 0, prev_cumsum(los) / n_prev, -1.0)
        meds_mean = np.where(n_prev > 0, prev_cumsum(meds) / n_prev, -1.0)
        labs_mean = np.where(n_prev > 0, prev_cumsum(labs) / n_prev, -1.0)
    los_last = g["time_in_hospital"].shift(1).fillna(-1.0).to_numpy(np.float64)
    los_max = (los.groupby(s["patient_nbr"], sort=False).cummax().groupby(s["patient_nbr"], sort=False)
               .shift(1).fillna(-1.0).to_numpy(np.float64))
    readm_last = (s["readmitted"].astype(str) == "<30").astype(np.float64).groupby(s["patient_nbr"], sort=False).shift(1)
    readm_last = readm_last.fillna(-1.0).to_numpy(np.float64)
    care = s["discharge_disposition_id"].astype(int).isin(_CARE_DISPOSITIONS).astype(np.float64)
    care_any = np.where(n_prev > 0, (prev_cumsum(care) > 0).astype(np.float64), -1.0)
    prev_diag = g["diag_1"].shift(1)
    same_diag = np.where(n_prev > 0, (prev_diag.astype(str).str[:3] == s["diag_1"].astype(str).str[:3]).astype(np.float64), -1.0)
    out = pd.DataFrame({
        "hist_n_prev": n_prev, "hist_prev_los_mean": los_mean, "hist_prev_los_last": los_last,
        "hist_prev_los_max": los_max, "hist_prev_meds_mean": meds_mean, "hist_prev_labs_mean": labs_mean,
        "hist_prev_readmit30_last": readm_last, "hist_prev_care_disp_any": care_any,
        "hist_prev_same_diag1": same_diag,
    }, index=s.index)
    return out.loc[df.index]


def build_los_features(df: pd.DataFrame) -> pd.DataFrame:
    """Feature frame (columns FEATURE_NAMES, float32, no NaN: missing is -1) aligned with df's rows.

    `df` must be UCI-schema with unique index; include the patients' earlier encounters for the
    history features (rows without history simply get n_prev = 0).
    """
    if not df.index.is_unique:
        df = df.reset_index(drop=True)
    cols: dict[str, np.ndarray] = {}
    cols["age_years"] = _age_years(df["age"])
    cols["male"] = (df["gender"] == "Male").to_numpy(np.float64)
    cols["gender_unknown"] = (~df["gender"].isin(["Male", "Female"])).to_numpy(np.float64)
    _onehot(df["race"], RACES, cols, "race_")
    cols["race_missing"] = (~df["race"].isin(RACES)).to_numpy(np.float64)
    cols["weight_recorded"] = (~df["weight"].isin(["?", ""])).to_numpy(np.float64)
    at = df["admission_type_id"].astype(int)
    cols["admission_type_id"] = at.to_numpy(np.float64)
    _onehot(at, ADMISSION_TYPE_CODES, cols, "adm_type_")
    src = df["admission_source_id"].astype(int)
    cols["admission_source_id"] = src.to_numpy(np.float64)
    _onehot(src, ADMISSION_SOURCE_CODES, cols, "adm_src_")
    spec = df["medical_specialty"].astype(str)
    _onehot(spec, SPECIALTIES, cols, "spec_")
    missing_spec = spec.isin(["?", ""])
    cols["spec_other"] = (~spec.isin(SPECIALTIES) & ~missing_spec).to_numpy(np.float64)
    cols["spec_missing"] = missing_spec.to_numpy(np.float64)
    payer = df["payer_code"].astype(str)
    _onehot(payer, PAYERS, cols, "payer_")
    cols["payer_missing"] = payer.isin(["?", ""]).to_numpy(np.float64)
    for c in ("number_outpatient", "number_emergency", "number_inpatient", "number_diagnoses"):
        cols[c] = df[c].astype(np.float64).to_numpy()
    groups = {}
    for i in (1, 2, 3):
        codes = df[f"diag_{i}"].astype(str)
        cols[f"diag_{i}_code"] = codes.map(icd9_numeric).to_numpy(np.float64)
        groups[i] = codes.map(icd9_group)
    _onehot(groups[1], ICD9_GROUPS, cols, "diag1_")
    for gname in ICD9_GROUPS:
        if gname == "Missing":
            continue
        cols[f"any_diag_{gname}"] = ((groups[1] == gname) | (groups[2] == gname) | (groups[3] == gname)).to_numpy(np.float64)
    # 250.x with x >= 1 in the 4th digit group = diabetes with complications (ketoacidosis, coma, ...)
    d1 = cols["diag_1_code"]
    cols["diag_is_diabetes_complicated"] = ((d1 >= 250.1) & (d1 < 251)).astype(np.float64)
    hist = history_features(df)
    for c in HISTORY_FEATURES:
        cols[c] = hist[c].to_numpy(np.float64)
    out = pd.DataFrame({name: cols[name] for name in FEATURE_NAMES}, index=df.index)
    return out.astype(np.float32)


# --- Target encodings: smoothed mean outcome per diagnosis (and context) code, learned on training
# patients only. They let trees use ~700 exact ICD-9 codes and their combinations without one-hot
# blow-up. Tables travel inside the hash-checked ONNX file (metadata), so scoring needs no data.
ENCODING_KEYS: dict[str, tuple[str, ...]] = {
    "d1": ("diag_1",), "d2": ("diag_2",), "d3": ("diag_3",), "d1d2": ("diag_1", "diag_2"),
    "d123": ("diag_1", "diag_2", "diag_3"), "spec": ("medical_specialty",),
    "d1spec": ("diag_1", "medical_specialty"), "d1src": ("diag_1", "admission_source_id"),
    "d1type": ("diag_1", "admission_type_id"), "d1age": ("diag_1", "age"),
    # "col:3" = the column's first 3 characters (the ICD-9 category, e.g. 428 for every 428.x)
    "d1p": ("diag_1:3",), "d1pd2p": ("diag_1:3", "diag_2:3"), "d2d3": ("diag_2", "diag_3"),
    "d1d3": ("diag_1", "diag_3"), "d1pay": ("diag_1", "payer_code"),
    "specsrc": ("medical_specialty", "admission_source_id"), "spectype": ("medical_specialty", "admission_type_id"),
    "srctypespec": ("admission_source_id", "admission_type_id", "medical_specialty"),
    "d1ndiag": ("diag_1", "number_diagnoses"), "d1pspec": ("diag_1:3", "medical_specialty"),
    "d1pagesrc": ("diag_1:3", "age", "admission_source_id"),
}
_BASE_ENCODING_KEYS = ("d1", "d2", "d3", "d1d2", "d123", "spec", "d1spec", "d1src", "d1type", "d1age")
# (key, target): "los" = mean stay in days, "long" = share of stays of 7 days or more, "short" = share
# of stays of 1-2 days.
ENCODINGS: tuple[tuple[str, str], ...] = tuple((k, "los") for k in _BASE_ENCODING_KEYS) + (
    ("d1", "long"), ("d2", "long"), ("d1d2", "long"),
) + tuple((k, "los") for k in ENCODING_KEYS if k not in _BASE_ENCODING_KEYS) + (
    ("d1", "short"), ("d1src", "short"), ("d1p", "long"),
)
ENCODING_NAMES: tuple[str, ...] = tuple(f"te_{k}_{t}" for k, t in ENCODINGS)
MODEL_FEATURE_NAMES: tuple[str, ...] = FEATURE_NAMES + ENCODING_NAMES


def _key_column(df: pd.DataFrame, col: str) -> pd.Series:
    if col.endswith(":3"):
        return df[col[:-2]].astype(str).str[:3]
    return df[col].astype(str)


def encoding_key(df: pd.DataFrame, key: str) -> pd.Series:
    cols = ENCODING_KEYS[key]
    out = _key_column(df, cols[0])
    for c in cols[1:]:
        out = out + "|" + _key_column(df, c)
    return out


def encoding_target(los: np.ndarray, target: str) -> np.ndarray:
    los = np.asarray(los, dtype=np.float64)
    if target == "los":
        return los
    if target == "short":
        return (los <= 2).astype(np.float64)
    return (los >= 7).astype(np.float64)


def fit_target_encodings(df: pd.DataFrame, los: np.ndarray, smoothing: float = 20.0,
                         min_count: int = 2) -> dict[str, dict]:
    """Tables {name: {"prior": float, "values": {code: smoothed mean}}} from training rows.

    Shrinks each code's mean toward the prior by `smoothing` pseudo-rows; codes seen fewer than
    `min_count` times are left out (their shrunk value is nearly the prior anyway).
    """
    tables: dict[str, dict] = {}
    for key, target in ENCODINGS:
        yv = encoding_target(los, target)
        prior = float(yv.mean()) if len(yv) else 0.0
        st = pd.DataFrame({"k": encoding_key(df, key).to_numpy(), "y": yv}).groupby("k")["y"].agg(["sum", "count"])
        st = st[st["count"] >= min_count]
        vals = (st["sum"] + smoothing * prior) / (st["count"] + smoothing)
        tables[f"te_{key}_{target}"] = {"prior": prior, "values": {str(k): round(float(v), 5) for k, v in vals.items()}}
    return tables


def apply_target_encodings(df: pd.DataFrame, tables: dict[str, dict]) -> pd.DataFrame:
    cols = {}
    for key, target in ENCODINGS:
        name = f"te_{key}_{target}"
        t = tables[name]
        cols[name] = encoding_key(df, key).map(t["values"]).astype(np.float64).fillna(t["prior"]).to_numpy()
    return pd.DataFrame(cols, index=df.index).astype(np.float32)


def los_model_matrix(df: pd.DataFrame, tables: dict[str, dict]) -> np.ndarray:
    """The model input (float32, columns MODEL_FEATURE_NAMES) for every row of a UCI-schema frame."""
    if not df.index.is_unique:
        df = df.reset_index(drop=True)
    base = build_los_features(df)
    enc = apply_target_encodings(df, tables)
    return np.hstack([base.to_numpy(np.float32), enc.to_numpy(np.float32)])
