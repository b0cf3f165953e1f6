"""The readmission model's reasons grouped by clinical concept, in words a clinician reads and can act on.

The model has 223 features, many of them facets of one fact (a stay "discharged to a skilled nursing facility" is
also "not discharged home"; 2 inpatient stays last year are also "3 visits of any kind"). A patient's reasons are
the model's per-feature contributions (TreeSHAP, log-odds) summed per concept; each concept is stated positively
from the patient's own values ("Discharge to a skilled nursing facility", never "not discharged home"). Concepts a
clinician cannot act on or read (payer, admitting specialty, sex) are summed under "other" and never listed."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from services.records.codes import diagnosis_label
from services.records.uci_schema import NOT_RECORDED, age_band_text, disposition_text
from services.risk.features import FEATURE_NAMES, _admission_source_words, _admission_type_words, _plural

Row = Mapping[str, float]
OTHER = "other"
MIN_SHOWN = 0.02   # log-odds: a concept that moves the odds by less than 2% is not a reason worth reading
_CONDITIONS = {"heart_failure": "heart failure", "renal": "kidney disease", "chronic_pulmonary": "chronic lung disease",
               "malignancy": "cancer", "metastatic": "metastatic cancer", "cerebrovascular": "cerebrovascular disease",
               "myocardial_infarction": "earlier heart attack", "peripheral_vascular": "peripheral vascular disease",
               "dementia": "dementia", "mild_liver": "mild liver disease", "severe_liver": "severe liver disease"}


_GROUPS = {p: tuple(f for f in FEATURE_NAMES if f.startswith(p))
           for p in ("disp_", "adm_type_", "adm_src_", "dx1_", "diag1_", "cm_", "med_")}


def _n(row: Row, name: str) -> int:
    return int(round(float(row.get(name, 0.0))))


def _on(row: Row, prefix: str) -> list[str]:
    """The indicator features of a group that are set for this patient (their suffixes)."""
    return [k[len(prefix):] for k in _GROUPS.get(prefix, ()) if row[k] >= 0.5]


def _use(row: Row) -> str:
    parts = [_plural(t, _n(row, k)) for k, t in (("number_inpatient", "{n} inpatient stay{s}"),
                                                  ("number_emergency", "{n} emergency visit{s}"),
                                                  ("number_outpatient", "{n} outpatient visit{s}")) if _n(row, k) > 0]
    # Not "on this record": the UCI table's figures were reported at admission (stays elsewhere included), those of
    # records from FHIR or HL7 are counted in the store (the Stay tab says which), so they may differ from the next
    # reason's count of earlier stays on this record; the words must not claim one source
    return ("Hospital use in the year before, by this stay's own figures: " + ", ".join(parts)) if parts else \
        "No hospital use recorded for the year before"


def _earlier(row: Row) -> str:
    n = _n(row, "hx_n_prior")
    if n <= 0:
        return "First stay on this record"
    text = _plural("{n} earlier stay{s} on this record", n) + _plural(" ({n} day{s} in hospital)", _n(row, "hx_prior_days"))
    if row.get("hx_prev_same_code", 0) >= 0.5:
        text += "; same main diagnosis as the last stay"
    elif row.get("hx_prev_same_group", 0) >= 0.5:
        text += "; same kind of main diagnosis as the last stay"
    if row.get("hx_prev_care_disp", 0) >= 0.5:
        text += "; went to a care facility or home health after the last stay"
    return text


def _readmitted(row: Row) -> str:
    n = _n(row, "hx_n_prior_lt30")
    text = _plural("Readmitted within 30 days after {n} earlier stay{s}", n) if n > 0 else \
        "No readmission within 30 days after earlier stays"
    if row.get("hx_prev_lt30", 0) >= 0.5:
        text += "; this admission came within 30 days of the last discharge"
    return text


def _discharge(row: Row) -> str:
    # "Discharge destination", never "Discharged to": for a patient still in hospital it is the planned one, and the
    # same words must hold on the discharge worklist and after discharge
    codes = [c for c in _on(row, "disp_") if c != "other"]
    if codes:
        words = disposition_text(int(codes[0]))
        if words.startswith("Left"):   # against medical advice: a way of leaving, not a destination
            return words
        if words != NOT_RECORDED:
            return "Discharge destination: " + words[:1].lower() + words[1:]
    return "Discharge destination: a less common one" if row.get("disp_other", 0) >= 0.5 else \
        "Discharge destination not recorded (yet)"


def _admission(row: Row) -> str:
    kinds = [_admission_type_words(int(c)) for c in _on(row, "adm_type_") if c != "other"]
    sources = [_admission_source_words(int(c)) for c in _on(row, "adm_src_") if c != "other"]
    text = ", ".join(kinds[:1] + sources[:1]) or "less common admission type and source"
    return text[:1].upper() + text[1:]


def _this_stay(row: Row) -> str:
    return "This stay: " + ", ".join([_plural("{n} day{s} in hospital", _n(row, "time_in_hospital")),
                                      _plural("{n} medication{s} given", _n(row, "num_medications")),
                                      _plural("{n} lab test{s}", _n(row, "num_lab_procedures")),
                                      _plural("{n} procedure{s}", _n(row, "num_procedures"))])


def _diagnoses(row: Row) -> str:
    main = _on(row, "dx1_")
    group = [g for g in _on(row, "diag1_") if g not in ("Other", "Missing", "diabetes_uncontrolled")]
    what = diagnosis_label(main[0]) if main else (f"{group[0].lower()} group" if group else "")
    n = _n(row, "number_diagnoses")
    return (f"Main diagnosis {what}; " if what else "") + _plural("{n} diagnos{es} coded this stay", n)


def _comorbidity(row: Row) -> str:
    names = [_CONDITIONS.get(c, c.replace("_", " ")) for c in _on(row, "cm_")]
    if row.get("diab_complicated", 0) >= 0.5:
        names.append("diabetes with chronic complications")
    score = _n(row, "charlson")
    return ("Comorbidities: " + ", ".join(names) if names else "No comorbidity coded") + f" (Charlson index {score})"


def _diabetes(row: Row) -> str:
    parts = []
    up = [k[4:-3] for k in _GROUPS["med_"] if k.endswith("_up") and row[k] >= 0.5]
    down = [k[4:-5] for k in _GROUPS["med_"] if k.endswith("_down") and row[k] >= 0.5]
    on = [k[4:-3] for k in _GROUPS["med_"] if k.endswith("_on") and row[k] >= 0.5]
    if up:
        parts.append(", ".join(up) + " dose increased")
    if down:
        parts.append(", ".join(down) + " dose reduced")
    if on and not up and not down:
        parts.append("on " + ", ".join(on))
    if not on:
        parts.append("no diabetes medication")
    if row.get("a1c_measured", 0) >= 0.5:
        parts.append("HbA1c " + ("above 8%", "above 7%", "normal")[{2: 0, 1: 1}.get(_n(row, "a1c_level"), 2)])
    else:
        parts.append("no HbA1c this stay")
    if row.get("diag1_diabetes_uncontrolled", 0) >= 0.5:
        parts.append("admitted with uncontrolled diabetes")
    return "Diabetes: " + "; ".join(parts)


def _age(row: Row) -> str:
    lo = int(float(row.get("age_years", 0)) // 10 * 10)
    return f"Age {age_band_text(f'[{lo}-{lo + 10})')}"


# (concept, what it says, which features it sums); the first match wins, anything unmatched is "other"
CONCEPTS: tuple[tuple[str, Callable[[Row], str], Callable[[str], bool]], ...] = (
    ("readmitted_before", _readmitted, lambda f: f in ("hx_n_prior_lt30", "hx_prev_lt30", "hx_lt30_share")),
    ("earlier_stays", _earlier, lambda f: f in ("hx_n_prior", "hx_prior_days", "hx_prev_los", "hx_prior_emergency",
                                                 "hx_prev_care_disp", "hx_prev_diag_count", "hx_prev_same_group",
                                                 "hx_prev_same_code")),
    ("hospital_use", _use, lambda f: f in ("number_outpatient", "number_emergency", "number_inpatient", "total_visits",
                                           "hx_prior_max_inpatient") or f.startswith(("hx_prev_inpatient",
                                           "hx_prev_emergency", "hx_prev_outpatient")) or f.endswith("_delta")
     and f != "hx_meds_delta"),
    ("discharge", _discharge, lambda f: f.startswith("disp_")),
    ("admission", _admission, lambda f: f.startswith(("adm_type_", "adm_src_"))),
    ("this_stay", _this_stay, lambda f: f in ("time_in_hospital", "num_lab_procedures", "num_procedures",
                                              "num_medications", "labs_per_day", "meds_per_day")),
    ("diabetes", _diabetes, lambda f: f.startswith(("med_", "n_meds_", "glu_", "a1c_")) or f in (
        "change", "diabetes_med", "hx_prior_insulin", "hx_meds_delta", "diag1_diabetes_uncontrolled")),
    ("comorbidity", _comorbidity, lambda f: f.startswith("cm_") or f in ("charlson", "diab_complicated")),
    ("diagnoses", _diagnoses, lambda f: f.startswith(("diag1_", "diag23_", "dx1_", "dx23_")) or f == "number_diagnoses"),
    ("age", _age, lambda f: f == "age_years"),
)
NAMES: tuple[str, ...] = tuple(c for c, _, _ in CONCEPTS) + (OTHER,)


def _concept_of(feature: str) -> int:
    return next((i for i, (_, _, member) in enumerate(CONCEPTS) if member(feature)), len(CONCEPTS))


# features x concepts: contributions @ MEMBERSHIP sums them per concept
MEMBERSHIP = np.zeros((len(FEATURE_NAMES), len(NAMES)), dtype=np.float32)
for _i, _f in enumerate(FEATURE_NAMES):
    MEMBERSHIP[_i, _concept_of(_f)] = 1.0


_INDEX = {name: k for k, name in enumerate(FEATURE_NAMES)}


class _Row(Mapping):
    """One patient's feature values by name, read from the model's row only where a sentence asks for them."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    def __getitem__(self, name: str) -> float:
        return float(self.x[_INDEX[name]])

    def __iter__(self):
        return iter(FEATURE_NAMES)

    def __len__(self) -> int:
        return len(FEATURE_NAMES)


def concept_sums(contributions: np.ndarray) -> np.ndarray:
    """(rows, concepts): every row's contributions summed per concept in one product."""
    return np.asarray(contributions, dtype=np.float64) @ MEMBERSHIP


def reasons(x: np.ndarray, sums: np.ndarray, top_k: int = 3) -> list[tuple[str, str, float]]:
    """One patient's top concepts that raise the risk (from their row of concept_sums): (concept, words, summed
    log-odds), largest first."""
    row, out = _Row(x), []
    for c in np.argsort(-sums):
        if sums[c] < MIN_SHOWN or len(out) == top_k:
            break
        if NAMES[c] != OTHER:
            out.append((NAMES[c], CONCEPTS[c][1](row), float(sums[c])))
    return out
