"""Dashboards for the hospital analyst: readmission trends, model performance on the hospital's own
data, length of stay and data exploration. Pure pandas/numpy/sklearn; de-identified aggregates only.

`AnalyticsService(session).load()` reads the store once (READ_DEIDENTIFIED, audited) into a Cohort:
the encounters in the UCI schema with their ward, readmission features and calibrated risk. The four
`*_dashboard(cohort)` functions turn a Cohort into plain frozen dataclasses, each part with a caption.
Hospital numbers are dropped at load; only encounter numbers and aggregates leave this module.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from models.domain import Permission
from services.risk.assessment import ReadmissionModel
from services.records.uci_table import eligible_mask, icd9_group, ICD9_GROUPS, normalise_uci_frame
from services.risk.features import FEATURE_NAMES, build_features
from services.capacity.los import bundled_los
from services.capacity.los import LosService
from services.records.patients import encounters_uci_frame
from services.core.progress import CancelToken, ProgressFn, no_progress
from services.site.session import Session
from services.records.uci_schema import AGE_BANDS, ENCOUNTER_COLUMNS, READMITTED_VALUES, age_band_text

from services.analytics.core import *  # noqa: F401,F403 - the dashboards' shared parts, re-exported
from services.analytics.core import (MIN_GROUP, MIN_SHOWN, Cohort, calibration_bins, card_metrics,
                                     confusion_at, drift_check)
from services.analytics.explore import *  # noqa: F401,F403
from services.analytics.explore import exploration_dashboard  # noqa: F401


class AnalyticsService:
    def __init__(self, session: Session, model: ReadmissionModel) -> None:
        self.s = session
        self.model = model   # the session's readmission model (a promoted local version or the bundled one)

    def load(self, progress: ProgressFn = no_progress, cancel: CancelToken | None = None) -> Cohort:
        self.s.require(Permission.READ_DEIDENTIFIED, "see dashboards")
        conn = self.s.db.conn
        progress(0, 3, "Reading encounters")
        raw = encounters_uci_frame(conn)
        wards = dict(conn.execute("SELECT e.id, w.name FROM encounters e JOIN wards w ON w.id = e.ward_id").fetchall())
        labs = pd.DataFrame(conn.execute(
            "SELECT encounter_id AS eid, CASE WHEN lower(name) LIKE '%bmi%' THEN 'bmi' ELSE 'glucose' END AS lab, "
            "avg(value_num) FROM lab_results WHERE value_num IS NOT NULL AND (lower(name) LIKE '%bmi%' "
            "OR lower(name) LIKE '%glucose%') GROUP BY 1, 2").fetchall(), columns=["_eid", "lab", "value"])
        cancel and cancel.raise_if_cancelled()
        progress(1, 3, "Scoring readmission risk")
        df = normalise_uci_frame(raw)
        df["ward"] = df["_eid"].map(wards).fillna("No ward")
        feats = build_features(df[list(ENCOUNTER_COLUMNS)]).to_numpy(np.float32)
        eligible = eligible_mask(df).to_numpy()
        svc = self.model.get()
        prob = np.full(len(df), np.nan)
        prob[eligible] = svc.predict_matrix(feats[eligible])[0]
        known = eligible & (df["status"] == "discharged").to_numpy() & df["readmitted"].isin(READMITTED_VALUES).to_numpy()
        df["patient_nbr"] = df.pop("_pid").astype(np.int64)  # internal key for history, not the hospital number
        df["age_years"] = feats[:, FEATURE_NAMES.index("age_years")]
        labs = labs.pivot(index="_eid", columns="lab", values="value") if len(labs) else pd.DataFrame()
        self.s.log("read", "analytics", "", f"dashboards: {len(df)} encounters, de-identified aggregates")
        progress(2, 3, "Encounters loaded")
        return Cohort(df, feats, eligible, prob, known, (df["readmitted"] == "<30").to_numpy(), svc.threshold,
                      tuple(svc.bands), svc.bundle.card, labs, self.s.encounter_ref, svc)

    def require_export(self) -> None:
        """Exporting a chart image is an export: role-checked before anything is written..."""
        self.s.require(Permission.EXPORT, "export dashboard charts")

    def record_export(self, chart: str, path: str) -> None:
        """...and audited once it is on disk."""
        self.require_export()
        self.s.log("export", "dashboard", chart, path)


# ---------------------------------------------------------------- readmission
@dataclass(frozen=True)
class RateRow:
    label: str
    n: int
    events: int
    rate: float
    low: float
    high: float


@dataclass(frozen=True)
class RateChart:
    title: str
    rows: tuple[RateRow, ...]
    caption: str


@dataclass(frozen=True)
class Histogram:
    title: str
    edges: np.ndarray
    counts: np.ndarray
    markers: tuple[tuple[str, float], ...]   # vertical lines (band limits, thresholds)
    caption: str


@dataclass(frozen=True)
class ReadmissionDashboard:
    by_month: RateChart
    by_ward: RateChart
    by_age: RateChart
    by_dx: RateChart
    risk: Histogram
    overall: RateRow


def rate_rows(keys: pd.Series, events: pd.Series, order: Sequence[str] | None = None) -> tuple[RateRow, ...]:
    g = pd.DataFrame({"k": keys.to_numpy(), "e": events.to_numpy().astype(int)}).groupby("k")["e"].agg(["size", "sum"])
    labels = [o for o in order if o in g.index] if order is not None else sorted(g.index)
    return tuple(RateRow(str(k), int(g.at[k, "size"]), int(g.at[k, "sum"]), g.at[k, "sum"] / g.at[k, "size"],
                         *wilson_interval(int(g.at[k, "sum"]), int(g.at[k, "size"]))) for k in labels)


def _rate_chart(title: str, rows: Sequence[RateRow], what: str) -> RateChart:
    shown = tuple(r for r in rows if r.n >= MIN_SHOWN)
    hidden = [f"{r.label} ({r.events}/{r.n})" for r in rows if r.n < MIN_SHOWN]
    note = f" Not shown, fewer than {MIN_SHOWN} encounters: {', '.join(hidden)}." if hidden else ""
    return RateChart(title, shown, _rate_caption(shown, what) + note)


def _rate_caption(rows: Sequence[RateRow], what: str) -> str:
    if not rows:
        return f"No discharged encounters with a known 30-day outcome to show by {what}."
    big = [r for r in rows if r.n >= MIN_GROUP]
    few = [r.label for r in rows if r.n < MIN_GROUP]
    text = f"30-day readmission rate by {what} with Wilson 95% intervals"
    if big:
        hi, lo = max(big, key=lambda r: r.rate), min(big, key=lambda r: r.rate)
        text += f"; highest {hi.label} {hi.rate:.1%} ({hi.events}/{hi.n}), lowest {lo.label} {lo.rate:.1%} ({lo.events}/{lo.n})"
    text += "."
    return text + (f" Fewer than {MIN_GROUP} encounters (wide intervals): {', '.join(few)}." if few else "")


def readmission_dashboard(c: Cohort, months: int = 12) -> ReadmissionDashboard:
    f, y = c.frame[c.known], pd.Series(c.readmitted[c.known])
    n, k = len(f), int(y.sum())
    overall = RateRow("all", n, k, k / n if n else 0.0, *wilson_interval(k, n))
    month = f["discharge_time"].fillna("").str[:7]
    recent = sorted(set(month) - {""})[-months:]
    by_month = rate_rows(month, y, recent)
    unknown = int((c.frame["status"] == "discharged").sum() - n)
    m_cap = (_rate_caption(by_month, "month of discharge") + f" Last {months} months with outcomes; "
             f"overall {overall.rate:.1%} of {n:,} encounters; {unknown:,} discharged encounters without a known "
             "outcome (recent, or not eligible) are left out.")
    by_ward = _rate_chart("By ward", rate_rows(f["ward"], y), "ward (ward of the stay)")
    ages = f["age"].map(age_band_text).replace("", "unknown")  # "[70-80)" shown as "70–79", as everywhere
    by_age = _rate_chart("By age band", rate_rows(ages, y, [age_band_text(b) for b in AGE_BANDS]), "age band")
    by_dx = _rate_chart("By diagnosis group", rate_rows(f["diag_1"].map(icd9_group), y, ICD9_GROUPS),
                        "primary diagnosis group (ICD-9, Strack et al.)")
    inpatients = (c.frame["status"] == "inpatient").to_numpy() & c.eligible
    p = c.prob[inpatients]
    edges = np.linspace(0.0, 0.5, 21)
    counts = np.histogram(np.clip(p, 0, 0.4999), edges)[0]
    band_n = {name: 0 for name, _ in c.bands}
    for v in p:
        band_n[next(name for name, lo in reversed(c.bands) if v >= lo)] += 1
    r_cap = (f"Predicted 30-day readmission risk of the {len(p)} eligible inpatients now in hospital (scored as if "
             f"discharged today; risks above 50% are in the last bar). " +
             ", ".join(f"{name}: {band_n[name]}" for name, _ in c.bands) +
             f". High band = at or above the operating threshold {c.threshold:.1%}.")
    markers = tuple((f"{name} ≥ {lo:.1%}", lo) for name, lo in c.bands if lo > 0)
    return ReadmissionDashboard(RateChart("Readmission rate by month of discharge", by_month, m_cap),
                                by_ward, by_age, by_dx,
                                Histogram("Risk of current inpatients", edges, counts, markers, r_cap), overall)


# ---------------------------------------------------------------- model performance on local data
@dataclass(frozen=True)
class PerformanceDashboard:
    n: int
    positives: int
    fpr: np.ndarray
    tpr: np.ndarray
    auc: float | None
    calibration: tuple[dict[str, float], ...]
    confusion: dict[str, int]
    threshold: float
    brier: float | None
    drift: DriftVerdict
    card: dict[str, tuple[float, float, float]]
    roc_caption: str
    calibration_caption: str
    confusion_caption: str


def performance_dashboard(c: Cohort) -> PerformanceDashboard:
    y, p = c.readmitted[c.known].astype(int), c.prob[c.known]
    n, pos = len(y), int(y.sum())
    card = card_metrics(c.card)
    verdict = drift_check(y, p, card)
    both = pos > 0 and n - pos > 0
    from sklearn.metrics import roc_auc_score, roc_curve  # on first use: sklearn is slow to import

    fpr, tpr = (roc_curve(y, p)[:2] if both else (np.zeros(0), np.zeros(0)))
    auc = float(roc_auc_score(y, p)) if both else None
    brier = float(np.mean((p - y) ** 2)) if n else None
    cm = confusion_at(y, p, c.threshold)
    cal = tuple(calibration_bins(y, p)) if n else ()
    ca = card.get("roc_auc")
    card_auc = f"model card (test set): {ca[0]:.3f} ({ca[1]:.3f}–{ca[2]:.3f})" if ca else "no AUC on the model card"
    if auc is None:
        roc_cap = f"ROC curve needs readmitted and not-readmitted encounters; {n} outcomes known. {card_auc}."
    else:
        lo, hi = auc_ci(auc, pos, n - pos)
        roc_cap = (f"ROC curve on {n:,} of this hospital's discharges with a known outcome ({pos} readmitted within "
                   f"30 days): AUC {auc:.3f} (95% CI {lo:.3f}–{hi:.3f}); {card_auc}.")
    cb = card.get("brier")
    cal_cap = (f"Calibration in 10 equal-frequency bins: observed 30-day readmission (Wilson 95% interval) against "
               f"mean predicted risk; on the diagonal = well calibrated. Brier {brier:.4f}" if brier is not None else
               "Calibration needs encounters with a known outcome")
    cal_cap += (f" (card {cb[0]:.4f}, {cb[1]:.4f}–{cb[2]:.4f})." if cb and brier is not None else ".")
    flagged = cm["tp"] + cm["fp"]
    conf_cap = (f"At the bundle's operating threshold {c.threshold:.1%}: {flagged} of {n} flagged high risk; "
                f"sensitivity {cm['tp'] / pos:.1%}, precision {cm['tp'] / flagged:.1%}, specificity "
                f"{cm['tn'] / (n - pos):.1%}." if pos and flagged and n - pos else
                f"At the operating threshold {c.threshold:.1%}: too few outcomes or flags for rates ({n} outcomes).")
    return PerformanceDashboard(n, pos, fpr, tpr, auc, cal, cm, c.threshold, brier, verdict, card, roc_cap, cal_cap,
                                conf_cap)


# ---------------------------------------------------------------- length of stay
@dataclass(frozen=True)
class LosDashboard:
    days: np.ndarray          # 1..14
    actual_counts: np.ndarray
    expected_counts: np.ndarray  # sum of the model's distributions over the same encounters
    actual: np.ndarray        # per discharged encounter (sample for the scatter), days
    actual_jittered: np.ndarray  # the same plus a little noise, so points on whole days do not hide each other
    predicted: np.ndarray     # LosService point estimate
    mean_predicted_by_day: np.ndarray
    mae: float
    bias: float
    coverage: float
    n: int
    distribution_caption: str
    scatter_caption: str


def los_dashboard(c: Cohort, los: LosService | None = None, sample: int = 3000) -> LosDashboard:
    svc = los or bundled_los()
    discharged = (c.frame["status"] == "discharged").to_numpy()
    mu = svc.expected_days(c.frame[list(ENCOUNTER_COLUMNS)])[discharged]  # earlier stays serve as history
    dist = svc.distribution_from_mu(mu)
    point = svc.point(dist, mu)
    lo, hi = svc.interval(dist)
    actual = np.clip(c.frame["time_in_hospital"].to_numpy()[discharged], 1, 14)
    days = np.arange(1, 15)
    counts = np.bincount(actual, minlength=15)[1:15]
    n = len(actual)
    by_day = np.array([point[actual == d].mean() if (actual == d).any() else np.nan for d in days])
    mae = float(np.mean(np.abs(point - actual))) if n else float("nan")
    bias = float(np.mean(point - actual)) if n else float("nan")
    cover = float(np.mean((actual >= lo) & (actual <= hi))) if n else float("nan")
    pick = np.random.default_rng(0).choice(n, min(n, sample), replace=False) if n else np.zeros(0, int)
    med = float(np.median(actual)) if n else float("nan")
    dist_cap = (f"Length of stay of {n:,} discharged encounters (bars; median {med:g} days) and the stays the LOS model "
                f"expected for the same encounters at admission (line).")
    sc_cap = (f"Predicted (model's point estimate at admission) against actual stay, {min(n, sample):,} encounters "
              f"shown, jittered; line = mean prediction per actual day, dashed = perfect. Mean absolute error "
              f"{mae:.2f} days, bias {bias:+.2f} days, {cover:.0%} of stays inside the 80% interval.")
    jitter = np.random.default_rng(1).uniform(-0.3, 0.3, len(pick))
    return LosDashboard(days, counts, dist.sum(axis=0), actual[pick].astype(float), actual[pick] + jitter, point[pick],
                        by_day, mae, bias, cover, n, dist_cap, sc_cap)


# ---------------------------------------------------------------- exploration
