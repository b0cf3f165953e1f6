"""The exploration dashboard: missing values, correlations, PCA, feature importance, K-means clusters
and unusual encounters (Isolation Forest), each with a caption of what it shows."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from services.analytics.core import LABELS, MIN_GROUP, NUMERIC, UTILISATION, Cohort
from services.records.uci_schema import ENCOUNTER_COLUMNS
from services.risk.assessment import bundled_readmission
from services.risk.features import FEATURE_NAMES, feature_label
from services.risk.readmission import ReadmissionService


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
    encounter: str  # the encounter number, or a pseudonym for a de-identified role
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
    from threadpoolctl import threadpool_limits  # sklearn and friends load on first use, not at start-up

    # one BLAS/OpenMP thread: K-means on small data is ten times faster so on 2 shared cores, and the GUI keeps one
    with threadpool_limits(1):
        return _exploration(c, service, sample, top_anomalies, seed)


def _exploration(c: Cohort, service: ReadmissionService | None, sample: int, top_anomalies: int,
                 seed: int) -> ExplorationDashboard:
    from sklearn.decomposition import PCA
    from sklearn.ensemble import IsolationForest

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
        anomalies.append(Anomaly(c.encounter_ref(int(f["_eid"].iat[i]), int(f["encounter_id"].iat[i])), str(f["ward"].iat[i]), float(-score[i]), "; ".join(why)))
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
    svc = service or c.model or bundled_readmission()
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
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score

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
