"""Dashboards for the hospital analyst: readmission trends, model performance on the hospital's own
data, length of stay and data exploration. Pure pandas/numpy/sklearn; de-identified aggregates only.

`AnalyticsService(session).load()` reads the store once (READ_DEIDENTIFIED, audited) into a Cohort:
the encounters in the UCI schema with their ward, readmission features and calibrated risk. The four
`*_dashboard(cohort)` functions turn a Cohort into plain frozen dataclasses, each part with a caption.
Hospital numbers are dropped at load; only encounter numbers and aggregates leave this module.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score, roc_curve, silhouette_score
from threadpoolctl import threadpool_limits

from models.domain import Permission
from services.assessment import readmission_service
from services.features.common import eligible_mask, icd9_group, ICD9_GROUPS, normalise_uci_frame
from services.features.readmission import FEATURE_NAMES, build_features, feature_label
from services.los import LosService
from services.patients import encounters_uci_frame
from services.progress import CancelToken, ProgressFn, no_progress
from services.readmission import ReadmissionService
from services.session import Session
from services.uci_schema import AGE_BANDS, ENCOUNTER_COLUMNS, READMITTED_VALUES

Z95 = 1.959963984540054
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
_los: LosService | None = None
_los_lock = threading.Lock()


def _los_service() -> LosService:
    global _los
    with _los_lock:
        if _los is None:
            _los = LosService()
        return _los


# ---------------------------------------------------------------- statistics (pure, tested by hand)
def wilson_interval(events: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = events / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def confusion_at(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, int]:
    """Flagged = probability at or above the threshold (the bundle's rule for the high band)."""
    y, flag = np.asarray(y).astype(bool), np.asarray(p) >= threshold
    return {"tp": int((flag & y).sum()), "fp": int((flag & ~y).sum()), "fn": int((~flag & y).sum()),
            "tn": int((~flag & ~y).sum())}


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Equal-frequency bins of the sorted predictions (the card's definition), with Wilson intervals."""
    order = np.argsort(p, kind="mergesort")
    out = []
    for part in np.array_split(order, bins):
        if len(part):
            k = int(np.asarray(y)[part].sum())
            lo, hi = wilson_interval(k, len(part))
            out.append({"n": len(part), "mean_predicted": float(np.mean(p[part])), "observed": k / len(part),
                        "low": lo, "high": hi})
    return out


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    return float(sum(b["n"] * abs(b["mean_predicted"] - b["observed"]) for b in calibration_bins(y, p, bins)) / len(p))


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
                      else "above card interval" if v > upper else "within card interval")
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
        msg = f"No drift: local ROC AUC, Brier and ECE lie within the model card's 95% intervals ({n} outcomes)."
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


class AnalyticsService:
    def __init__(self, session: Session, readmission: ReadmissionService | None = None) -> None:
        self.s = session
        self._readmission = readmission

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
        svc = self._readmission or readmission_service()
        prob = np.full(len(df), np.nan)
        prob[eligible] = svc.predict_matrix(feats[eligible])[0]
        known = eligible & (df["status"] == "discharged").to_numpy() & df["readmitted"].isin(READMITTED_VALUES).to_numpy()
        df["patient_nbr"] = df.pop("_pid").astype(np.int64)  # internal key for history, not the hospital number
        df["age_years"] = feats[:, FEATURE_NAMES.index("age_years")]
        labs = labs.pivot(index="_eid", columns="lab", values="value") if len(labs) else pd.DataFrame()
        self.s.log("read", "analytics", "", f"dashboards: {len(df)} encounters, de-identified aggregates")
        progress(2, 3, "Encounters loaded")
        return Cohort(df, feats, eligible, prob, known, (df["readmitted"] == "<30").to_numpy(), svc.threshold,
                      tuple(svc.bands), svc.bundle.card, labs)

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
    ages = f["age"].str.strip("[)").replace("", "unknown")
    by_age = _rate_chart("By age band", rate_rows(ages, y, [b.strip("[)") for b in AGE_BANDS]), "age band")
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
    svc = los or _los_service()
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
@dataclass(frozen=True)
class Bars:
    title: str
    labels: tuple[str, ...]
    values: np.ndarray
    caption: str


@dataclass(frozen=True)
class HeatMap:
    title: str
    labels: tuple[str, ...]
    matrix: np.ndarray
    caption: str


@dataclass(frozen=True)
class Scatter:
    title: str
    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray               # index into group_names
    group_names: tuple[str, ...]
    x_label: str
    y_label: str
    caption: str
    highlight_x: np.ndarray = field(default_factory=lambda: np.zeros(0))
    highlight_y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    highlight_name: str = ""


@dataclass(frozen=True)
class Anomaly:
    encounter_id: int
    ward: str
    score: float
    why: str


@dataclass(frozen=True)
class ExplorationDashboard:
    missing: Bars
    correlation: HeatMap
    pca: Scatter
    importance: Bars
    clusters: Scatter
    anomalies: tuple[Anomaly, ...]
    anomalies_caption: str


def _standardised(values: pd.DataFrame, log_counts: Sequence[str]) -> np.ndarray:
    x = values.astype(np.float64).copy()
    for col in log_counts:
        x[col] = np.log1p(x[col].clip(lower=0))
    x = x.to_numpy()
    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _loads(components: np.ndarray, names: Sequence[str], i: int) -> str:
    top = np.argsort(-np.abs(components[i]))[:2]
    return " and ".join(LABELS.get(names[j], names[j]) for j in top)


def _short_label(name: str, width: int = 60) -> str:
    text = feature_label(name).replace("up to N ", "most ").replace("N ", "").removesuffix(" N")
    return text if len(text) <= width else text[:width - 1].rstrip() + "…"


def missing_values(frame: pd.DataFrame) -> Bars:
    cols = [c for c in ENCOUNTER_COLUMNS if c not in ("readmitted", "encounter_id", "patient_nbr")]
    miss = {c: int((frame[c].isna() | frame[c].astype(str).isin(["?", "", "None"])).sum()) for c in cols}
    miss = {c: v for c, v in sorted(miss.items(), key=lambda kv: -kv[1]) if v > 0}
    n = max(len(frame), 1)
    worst = ", ".join(f"{c} {v / n:.0%}" for c, v in list(miss.items())[:3])
    cap = (f"Share of {len(frame):,} encounters with a missing value ('?' or empty; for the glucose and HbA1c tests, "
           f"'not measured') per column; columns never missing are not shown. Most missing: {worst or 'none'}.")
    return Bars("Missing values per column", tuple(miss), np.array(list(miss.values()), float) / n, cap)


def exploration_dashboard(c: Cohort, service: ReadmissionService | None = None, sample: int = 3000,
                          top_anomalies: int = 10, seed: int = 0) -> ExplorationDashboard:
    # one BLAS/OpenMP thread: K-means on small data is ten times faster so on 2 shared cores, and the GUI keeps one
    with threadpool_limits(1):
        return _exploration(c, service, sample, top_anomalies, seed)


def _exploration(c: Cohort, service: ReadmissionService | None, sample: int, top_anomalies: int,
                 seed: int) -> ExplorationDashboard:
    f, rng = c.frame, np.random.default_rng(seed)
    n = len(f)
    pick = np.sort(rng.choice(n, min(n, sample), replace=False))
    # correlation
    num = f[list(NUMERIC)].astype(float)
    corr = num.corr(method="spearman").fillna(0.0).to_numpy()
    iu = np.triu_indices(len(NUMERIC), 1)
    strongest = max(zip(np.abs(corr[iu]), *iu))
    heat = HeatMap("Correlation of numeric fields", tuple(LABELS[x] for x in NUMERIC), corr,
                   f"Spearman rank correlation (suits skewed counts) between {len(NUMERIC)} numeric fields; strongest: "
                   f"{LABELS[NUMERIC[strongest[1]]]} with {LABELS[NUMERIC[strongest[2]]]} "
                   f"({corr[strongest[1], strongest[2]]:+.2f}).")
    # PCA of all numeric fields
    z = _standardised(num, UTILISATION)
    pca = PCA(2, random_state=seed).fit(z)
    xy = pca.transform(z)
    outcome = np.where(c.readmitted & c.known, 0, np.where(c.known, 1, 2))
    ev = pca.explained_variance_ratio_
    # isolation forest on the same standardised fields
    iso = IsolationForest(n_estimators=200, random_state=seed).fit(z if n <= 20000 else z[rng.choice(n, 20000, False)])
    score = iso.score_samples(z)
    worst = np.argsort(score)[:top_anomalies]
    raw = num.to_numpy()
    anomalies = []
    for i in worst:
        why = []
        for j in np.argsort(-np.abs(z[i]))[:3]:
            v, col = raw[i, j], raw[:, j]
            share = (col >= v).mean() if z[i, j] > 0 else (col <= v).mean()
            pct = max(share, 1 / len(col)) * 100
            where = f"{'top' if z[i, j] > 0 else 'bottom'} " + (f"{pct:.1f}%" if pct >= 1 else f"{pct:.2g}%")
            why.append(f"{LABELS[NUMERIC[j]]} {v:g} (median {np.median(col):g}; {where})")
        anomalies.append(Anomaly(int(f["encounter_id"].iat[i]), str(f["ward"].iat[i]), float(-score[i]), "; ".join(why)))
    pca_s = Scatter("PCA projection (2-D)", xy[pick, 0], xy[pick, 1], outcome[pick],
                    ("readmitted within 30 days", "not readmitted within 30 days", "outcome not known"),
                    f"component 1 ({ev[0]:.0%} of variance)", f"component 2 ({ev[1]:.0%})",
                    f"The {len(NUMERIC)} numeric fields (counts on a log scale, standardised) projected on their first two "
                    f"principal components ({ev.sum():.0%} of the variance; {len(pick):,} of {n:,} encounters shown). "
                    f"Component 1 loads mostly on {_loads(pca.components_, NUMERIC, 0)}, component 2 on "
                    f"{_loads(pca.components_, NUMERIC, 1)}. Diamonds: the {len(worst)} most unusual encounters.",
                    xy[worst, 0], xy[worst, 1], "unusual (Isolation Forest)")
    anom_cap = (f"The {len(worst)} most unusual encounters of {n:,} by an Isolation Forest (200 trees) on the same "
                f"numeric fields; 'why' lists the fields furthest from typical values.")
    # feature importance from the readmission model
    svc = service or readmission_service()
    elig = np.flatnonzero(c.eligible)
    sub = elig if len(elig) <= 2000 else np.sort(rng.choice(elig, 2000, replace=False))
    contrib = np.abs(svc.explain_matrix(c.features[sub])[0]).mean(axis=0) if len(sub) else np.zeros(len(FEATURE_NAMES))
    top = np.argsort(-contrib)[:12]
    imp = Bars("Feature importance (readmission model)", tuple(_short_label(FEATURE_NAMES[j]) for j in top), contrib[top],
               f"Mean absolute contribution to the predicted log-odds of 30-day readmission over {len(sub):,} eligible "
               f"encounters of this store (exact tree path contributions); the 12 largest of {len(FEATURE_NAMES)} features.")
    return ExplorationDashboard(missing_values(f), heat, pca_s, imp, _clusters(c, z, xy, pick, seed), tuple(anomalies),
                                anom_cap)


def _clusters(c: Cohort, z_all: np.ndarray, xy_all: np.ndarray, pick: np.ndarray, seed: int) -> Scatter:
    labs = c.labs
    both = labs.dropna() if {"bmi", "glucose"} <= set(labs.columns) else pd.DataFrame()
    if len(both) >= 50:
        fields, values = ("bmi", "glucose"), both[["bmi", "glucose"]].to_numpy(float)
        z = _standardised(pd.DataFrame(values, columns=list(fields)), ())
        known = pd.Series(c.known, index=c.frame["_eid"]).reindex(both.index).fillna(False).to_numpy(bool)
        readm = pd.Series(c.readmitted, index=c.frame["_eid"]).reindex(both.index).fillna(False).to_numpy(bool)
        x, y, keep = values[:, 0], values[:, 1], np.arange(len(values))
        xl, yl, why = "BMI", "glucose", f"BMI and glucose of the {len(both):,} encounters that have both"
    else:
        fields = UTILISATION
        z = z_all[:, :len(UTILISATION)]
        known, readm = c.known, c.readmitted
        proj = PCA(2, random_state=seed).fit(z)
        xy = proj.transform(z)
        x, y, keep = xy[:, 0], xy[:, 1], pick
        xl, yl = "utilisation component 1", "utilisation component 2"
        why = ("the 8 utilisation fields (stay, lab tests, procedures, medications, prior visits, diagnoses; counts "
               "on a log scale, standardised), because this store has no numeric BMI or glucose results "
               "(glucose and HbA1c are recorded only as categories); shown on their first two principal components")
    rng = np.random.default_rng(seed)
    fit_rows = z if len(z) <= 5000 else z[rng.choice(len(z), 5000, replace=False)]
    sil_rows = fit_rows[:2000]
    best = (-1.0, 2, None)
    for k in range(2, 7):
        km = KMeans(k, n_init=4, random_state=seed).fit(fit_rows)
        s = float(silhouette_score(sil_rows, km.predict(sil_rows)))
        if s > best[0]:
            best = (s, k, km)
    sil, k, km = best
    lab = km.predict(z)
    parts = []
    for j in range(k):
        m = lab == j
        centre = km.cluster_centers_[j]
        top = np.argsort(-np.abs(centre))[:2]
        desc = ", ".join(f"{'more' if centre[t] > 0 else 'fewer'} {LABELS.get(fields[t], fields[t])}" for t in top)
        kn = m & known
        rate = f"{readm[kn].mean():.0%} readmitted < 30 d" if kn.sum() >= MIN_GROUP else "few outcomes"
        parts.append(f"cluster {j + 1} ({m.sum():,}; {desc}; {rate})")
    cap = (f"K-means clusters on {why}. k = {k} chosen by the best silhouette score ({sil:.2f}) over k = 2..6. "
           + "; ".join(parts) + ".")
    return Scatter(f"Patient clusters (k = {k})", x[keep], y[keep], lab[keep], tuple(f"cluster {j + 1}" for j in range(k)),
                   xl, yl, cap)
