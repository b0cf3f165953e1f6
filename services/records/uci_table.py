"""Reading the UCI encounter table with its quirks, shared by every pipeline and the score commands."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from services.records.uci_schema import ENCOUNTER_COLUMNS, INELIGIBLE_DISPOSITIONS, INT_COLUMNS

DEFAULT_DATA_ROOT = Path(os.environ.get("WARDLENS_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))


def read_uci_csv(path: str | os.PathLike, require_target: bool = False) -> pd.DataFrame:
    """Read a CSV (gzip allowed) in the UCI encounter schema as strings, "?" kept as missing marker.

    keep_default_na=False matters: pandas would otherwise turn the literal "None" of max_glu_serum and
    A1Cresult (meaning "not measured") into NaN.
    """
    df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[], compression="infer")
    return normalise_uci_frame(df, require_target=require_target)


def normalise_uci_frame(df: pd.DataFrame, require_target: bool = False) -> pd.DataFrame:
    needed = [c for c in ENCOUNTER_COLUMNS if c != "readmitted" or require_target]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"missing columns: {', '.join(missing)}")
    out = df.copy(deep=False)  # columns are replaced, never written into: a deep copy only cost time
    if "readmitted" not in out.columns:
        out["readmitted"] = ""
    for col in INT_COLUMNS:
        out[col] = pd.to_numeric(out[col], errors="raise").astype(np.int64)
    return out


def eligible_mask(df: pd.DataFrame) -> pd.Series:
    """Encounters that can be scored for 30-day readmission (not ending in death, hospice or a transfer to another acute-care hospital)."""
    return ~df["discharge_disposition_id"].astype(int).isin(INELIGIBLE_DISPOSITIONS)


def icd9_group(code: str) -> str:
    """Strack et al. (2014) diagnosis groups for an ICD-9 code string ("?" or empty = Missing)."""
    if not code or code == "?":
        return "Missing"
    c = code.strip().upper()
    if c.startswith("V") or c.startswith("E"):
        return "Other"
    try:
        v = float(c)
    except ValueError:
        return "Other"
    if 390 <= v <= 459 or v == 785:
        return "Circulatory"
    if 460 <= v <= 519 or v == 786:
        return "Respiratory"
    if 520 <= v <= 579 or v == 787:
        return "Digestive"
    if int(v) == 250:
        return "Diabetes"
    if 800 <= v <= 999:
        return "Injury"
    if 710 <= v <= 739:
        return "Musculoskeletal"
    if 580 <= v <= 629 or v == 788:
        return "Genitourinary"
    if 140 <= v <= 239:
        return "Neoplasms"
    return "Other"


ICD9_GROUPS: tuple[str, ...] = (
    "Circulatory", "Respiratory", "Digestive", "Diabetes", "Injury", "Musculoskeletal",
    "Genitourinary", "Neoplasms", "Other", "Missing",
)
