"""Model metrics, one definition each, shared by the build-time pipelines, local retraining, the promotion
gate and the analyst dashboards: ROC/PR AUC, Brier, calibration bins and ECE, calibration slope and
intercept, the Wilson interval."""
from __future__ import annotations

import numpy as np
import pandas as pd

Z95 = 1.959963984540054
ECE_BINS = 10


def wilson_interval(events: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = events / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    y = np.asarray(y, dtype=bool)
    n1 = int(y.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        raise ValueError("one class only")
    ranks = pd.Series(p).rank(method="average").to_numpy()
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def pr_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision (step-wise area under the precision-recall curve), as scikit-learn computes it."""
    y = np.asarray(y, dtype=bool)
    if not y.any():
        raise ValueError("no positives")
    order = np.argsort(-np.asarray(p), kind="mergesort")
    ps, ys = np.asarray(p)[order], y[order]
    tp = np.cumsum(ys)
    last = np.r_[np.flatnonzero(np.diff(ps)), len(ps) - 1]  # last index of each tied score
    tp, k = tp[last], last + 1
    precision, recall = tp / k, tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((np.asarray(p, dtype=np.float64) - y) ** 2))


def _logistic_fit(x: np.ndarray, y: np.ndarray, iters: int = 100) -> tuple[float, float]:
    """Unpenalised 1-D logistic regression y ~ sigmoid(b + a x) by Newton steps; returns (a, b).

    Fitted on standardised x (stable from a zero start for integer scores such as LACE) and mapped back.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if y.min() == y.max():
        raise ValueError("one class only")
    mu, sd = float(x.mean()), float(x.std()) or 1.0
    xs = (x - mu) / sd
    a, b = 0.0, float(np.log(y.mean() / (1 - y.mean())))
    for _ in range(iters):
        q = 1 / (1 + np.exp(-np.clip(a * xs + b, -30, 30)))
        w = q * (1 - q) + 1e-12
        g = np.array([np.sum((q - y) * xs), np.sum(q - y)])
        h = np.array([[np.sum(w * xs * xs), np.sum(w * xs)], [np.sum(w * xs), np.sum(w)]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a / sd), float(b - a * mu / sd)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def calibration_slope(y: np.ndarray, p: np.ndarray) -> float:
    return _logistic_fit(_logit(p), y)[0]


def calibration_intercept(y: np.ndarray, p: np.ndarray) -> float:
    return _logistic_fit(_logit(p), y)[1]


def logistic_fit(x: np.ndarray, y: np.ndarray, iters: int = 100) -> tuple[float, float]:
    """Public name of the 1-D logistic (Platt) fit: returns (a, b) of y ~ sigmoid(a x + b)."""
    return _logistic_fit(x, y, iters)


def logit(p: np.ndarray) -> np.ndarray:
    return _logit(p)


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, float]]:
    """Equal-frequency bins of the sorted predictions (the cards' and the dashboards' one definition), each
    with its range, mean prediction, observed rate (also under its card key observed_rate) and Wilson interval."""
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    order = np.argsort(p, kind="mergesort")
    out = []
    for i, part in enumerate(np.array_split(order, bins)):
        if len(part):
            k = int(y[part].sum())
            lo, hi = wilson_interval(k, len(part))
            out.append({"bin": i + 1, "n": int(len(part)), "p_min": float(p[part].min()), "p_max": float(p[part].max()),
                        "mean_predicted": float(p[part].mean()), "observed": k / len(part),
                        "observed_rate": k / len(part), "low": lo, "high": hi})
    return out


def ece(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error over the equal-frequency bins of calibration_bins."""
    return float(sum(b["n"] * abs(b["mean_predicted"] - b["observed"]) for b in calibration_bins(y, p, bins)) / len(p))
