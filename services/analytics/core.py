"""Shared parts of the analyst dashboards: thresholds, the statistics (pure, checked by hand in the
tests), the drift rule against a model card, and the Cohort read from the store."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from services.inference.metrics import Z95, calibration_bins, ece, wilson_interval  # noqa: F401 - the one definition

MIN_OUTCOMES = 200      # fewer encounters with a known outcome: no verdict on drift
MIN_EVENTS = 30         # and at least this many readmissions and as many non-readmissions
MIN_GROUP = 20          # rate rows with fewer encounters are marked "few" in captions
MIN_SHOWN = 5           # category rows with fewer encounters are left off the chart (and named in the caption)
UTILISATION = ("time_in_hospital", "num_lab_procedures", "num_procedures", "num_medications",
               "number_outpatient", "number_emergency", "number_inpatient", "number_diagnoses")
NUMERIC = UTILISATION + ("age_years",)
LABELS = {"time_in_hospital": "days in hospital", "num_lab_procedures": "lab tests", "num_procedures": "procedures",
          "num_medications": "medications", "number_outpatient": "outpatient visits (year)",
          "number_emergency": "emergency visits (year)", "number_inpatient": "inpatient stays (year)",
          "number_diagnoses": "diagnoses", "age_years": "age", "bmi": "BMI", "glucose": "glucose"}

# ---------------------------------------------------------------- statistics (pure, tested by hand)
def confusion_at(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, int]:
    """Flagged = probability at or above the threshold (the bundle's rule for the high band)."""
    y, flag = np.asarray(y).astype(bool), np.asarray(p) >= threshold
    return {"tp": int((flag & y).sum()), "fp": int((flag & ~y).sum()), "fn": int((~flag & y).sum()),
            "tn": int((~flag & ~y).sum())}


def ece_chance_floor(p: np.ndarray, bins: int = 10, q: float = 0.95, sims: int = 1000, seed: int = 0) -> float:
    """ECE that a perfectly calibrated model reaches by chance at this sample size (q-quantile; normal
    approximation per bin). Small samples have a large floor, so ECE drift is judged above it."""
    order = np.argsort(p, kind="mergesort")
    rng = np.random.default_rng(seed)
    total = np.zeros(sims)
    for part in np.array_split(order, bins):
        if len(part):
            sd = np.sqrt(np.sum(p[part] * (1 - p[part])))
            total += np.abs(rng.normal(0.0, sd, sims))  # |observed - expected| events in the bin
    return float(np.quantile(total / len(p), q))


def auc_ci(auc: float, positives: int, negatives: int) -> tuple[float, float]:
    """Hanley-McNeil 95% interval for a ROC AUC."""
    if positives == 0 or negatives == 0:
        return float("nan"), float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc ** 2) + (negatives - 1) * (q2 - auc ** 2)) / (positives * negatives)
    se = float(np.sqrt(max(var, 0.0)))
    return max(0.0, auc - Z95 * se), min(1.0, auc + Z95 * se)


@dataclass(frozen=True)
class MetricCheck:
    name: str
    local: float
    local_low: float
    local_high: float
    card: float
    card_low: float
    card_high: float
    status: str          # "too few outcomes" | "within card interval" | "above card interval" | "below card interval"
    outside: bool


@dataclass(frozen=True)
class DriftVerdict:
    drift: bool
    enough: bool
    message: str
    checks: tuple[MetricCheck, ...]


def card_metrics(card: dict[str, Any]) -> dict[str, tuple[float, float, float]]:
    """{metric: (value, ci_low, ci_high)} of the card's test figures."""
    m = card.get("metrics", {}).get("test_chosen_model", {})
    return {k: (float(v["value"]), float(v["ci_low"]), float(v["ci_high"])) for k, v in m.items()
            if isinstance(v, dict) and {"value", "ci_low", "ci_high"} <= set(v)}


def drift_check(y: np.ndarray, p: np.ndarray, card: dict[str, tuple[float, float, float]]) -> DriftVerdict:
    """Local AUC, Brier and ECE against the card's 95% intervals, judged only with enough outcomes."""
    from sklearn.metrics import roc_auc_score  # sklearn loads on first use, not at application start

    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=np.float64)
    n, pos = len(y), int(y.sum())
    enough = n >= MIN_OUTCOMES and pos >= MIN_EVENTS and n - pos >= MIN_EVENTS
    checks = []
    if pos and n - pos:
        a = float(roc_auc_score(y, p))
        sq = (p - y) ** 2
        b, b_se = float(sq.mean()), float(sq.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
        e, floor = ece(y, p), ece_chance_floor(p)
        local = {"roc_auc": (a, *auc_ci(a, pos, n - pos)), "brier": (b, b - Z95 * b_se, b + Z95 * b_se),
                 "ece": (e, 0.0, floor)}
        for name, (v, lo, hi) in local.items():
            if name not in card:
                continue
            cv, clo, chi = card[name]
            upper = max(chi, floor) if name == "ece" else chi  # ECE: chance alone reaches `floor` here
            status = ("too few outcomes" if not enough else "below card interval" if v < clo
                      else "above card interval" if v > upper
                      else "within chance level" if v > chi else "within card interval")
            checks.append(MetricCheck(name, v, lo, hi, cv, clo, chi, status, enough and status.endswith("card interval")
                                      and not status.startswith("within")))
    names = {"roc_auc": "ROC AUC", "brier": "Brier score", "ece": "calibration error (ECE)"}
    outside = [c for c in checks if c.outside]
    if not enough:
        msg = (f"Too few outcomes to judge drift: {n} encounters with a known 30-day outcome, {pos} readmitted "
               f"(needs at least {MIN_OUTCOMES}, with {MIN_EVENTS} readmitted and {MIN_EVENTS} not).")
    elif outside:
        parts = []
        for c in outside:
            strong = c.card < c.local_low or c.card > c.local_high if c.name != "ece" else True
            parts.append(f"{names[c.name]} {c.local:.3f} is {c.status.split()[0]} the card's interval "
                         f"{c.card_low:.3f}–{c.card_high:.3f}" + ("" if strong else " (local interval still covers the card value)"))
        msg = "Possible drift: " + "; ".join(parts) + ". Review the model on local data before relying on it."
    else:
        chance = [f"{names[c.name]} {c.local:.3f} is above the card's interval {c.card_low:.3f}–{c.card_high:.3f} but "
                  f"within what chance alone reaches with {n} outcomes (up to {c.local_high:.3f})"
                  for c in checks if c.status == "within chance level"]
        msg = (f"No drift: local ROC AUC, Brier and ECE lie within the model card's 95% intervals ({n} outcomes)."
               if not chance else f"No drift ({n} outcomes): " + "; ".join(chance)
               + "; the other figures lie within the card's 95% intervals.")
    return DriftVerdict(bool(outside), enough, msg, tuple(checks))


# ---------------------------------------------------------------- the cohort read from the store
@dataclass(frozen=True)
class Cohort:
    frame: pd.DataFrame      # normalised UCI frame + ward, status, times; patient_nbr = internal key, not the MRN
    features: np.ndarray     # readmission features (float32, FEATURE_NAMES)
    eligible: np.ndarray     # bool: may be scored for readmission
    prob: np.ndarray         # calibrated readmission risk (nan where not eligible)
    known: np.ndarray        # bool: discharged, eligible, 30-day outcome recorded
    readmitted: np.ndarray   # bool: readmitted within 30 days
    threshold: float
    bands: tuple[tuple[str, float], ...]
    card: dict[str, Any]
    labs: pd.DataFrame       # numeric BMI / glucose per encounter where the store has them (may be empty)
    # (store id, encounter number) -> what a row may be called on screen: the number, or a pseudonym
    encounter_ref: Callable[[int, int], str]
    model: Any = None        # the readmission model that scored `prob` (the session's; feature importance reads it)


