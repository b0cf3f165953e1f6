"""Model-card helpers shared by the build-time pipelines and the application's local retraining:
patient-grouped bootstrap intervals and the readable page of a card. Numbers come from data, never typed."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

MetricFn = Callable[..., float]


def group_bootstrap_indices(groups: Sequence, n_boot: int, seed: int = 0) -> list[np.ndarray]:
    """Row indices of `n_boot` resamples that draw whole groups (patients) with replacement."""
    groups = np.asarray(groups)
    uniq, inverse = np.unique(groups, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=len(uniq))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), len(uniq))
        # the rows of each picked group in pick order, without a Python loop over groups (one per patient
        # made a 1,000-resample bootstrap take seconds and starve the GUI thread of the GIL)
        sizes = counts[pick]
        within = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        out.append(order[np.repeat(starts[pick], sizes) + within])
    return out


def bootstrap_ci(metric: MetricFn, arrays: Sequence[np.ndarray], groups: Sequence, n_boot: int = 200,
                 seed: int = 0, alpha: float = 0.05, indices: list[np.ndarray] | None = None) -> dict[str, float]:
    """Point estimate plus a percentile interval from resampling patients.

    `arrays` are aligned per row (for example y_true and y_score); `metric(*arrays)` returns a float.
    Resamples where the metric is undefined (for example a single class) are skipped.
    """
    arrays = [np.asarray(a) for a in arrays]
    point = float(metric(*arrays))
    idx_list = indices if indices is not None else group_bootstrap_indices(groups, n_boot, seed)
    vals = []
    for idx in idx_list:
        try:
            v = float(metric(*(a[idx] for a in arrays)))
        except ValueError:
            continue
        if np.isfinite(v):
            vals.append(v)
    if not vals:
        return {"value": point, "ci_low": float("nan"), "ci_high": float("nan"), "n_boot": 0}
    lo, hi = np.quantile(vals, [alpha / 2, 1 - alpha / 2])
    return {"value": point, "ci_low": float(lo), "ci_high": float(hi), "n_boot": len(vals)}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:.1f}"
    return str(v)


def _render(obj: Any, level: int, lines: list[str]) -> None:
    if isinstance(obj, dict):
        if obj and all(isinstance(v, dict) and {"value", "ci_low", "ci_high"} <= set(v) for v in obj.values()):
            lines += ["| metric | value | 95% CI |", "| --- | --- | --- |"]
            lines += [f"| {k} | {_fmt(v['value'])} | {_fmt(v['ci_low'])} – {_fmt(v['ci_high'])} |" for k, v in obj.items()]
            lines.append("")
            return
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                lines += [f"{'#' * min(level, 6)} {k}", ""]
                _render(v, level + 1, lines)
            else:
                lines.append(f"- **{k}**: {_fmt(v)}")
        lines.append("")
    elif isinstance(obj, list):
        if obj and all(isinstance(r, dict) for r in obj):
            cols = list(dict.fromkeys(k for r in obj for k in r))
            lines += ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
            lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in obj]
            lines.append("")
        else:
            lines += [f"- {_fmt(v)}" for v in obj] + [""]
    else:
        lines += [_fmt(obj), ""]


def card_markdown(card: dict[str, Any], default_title: str = "model") -> str:
    """The readable page (card.md) of a card dictionary."""
    lines = [f"# Model card: {card.get('title', card.get('name', default_title))}", ""]
    _render({k: v for k, v in card.items() if k != "title"}, 2, lines)
    return "\n".join(lines)
