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


def _render(obj: Any, level: int, lines: list[str], human: bool = False) -> None:
    """Markdown of a card's value; `human` writes keys as words ("why_chosen" -> "Why chosen" headings)."""
    if isinstance(obj, dict):
        if obj and all(isinstance(v, dict) and {"value", "ci_low", "ci_high"} <= set(v) for v in obj.values()):
            lines += ["| metric | value | 95% CI |", "| --- | --- | --- |"]
            lines += [f"| {k} | {_fmt(v['value'])} | {_fmt(v['ci_low'])} – {_fmt(v['ci_high'])} |" for k, v in obj.items()]
            lines.append("")
            return
        for k, v in obj.items():
            words = k.replace("_", " ") if human else k
            if isinstance(v, (dict, list)) and v:
                lines += [f"{'#' * min(level, 6)} {words[:1].upper() + words[1:] if human else words}", ""]
                _render(v, level + 1, lines, human)
            else:
                lines.append(f"- **{words}**: {_fmt(v)}")
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


# ----- the card as a clinician reads it -----------------------------------------------------------
# What each headline metric means, in words a clinician or an IT admin can act on. Keys are those the
# pipelines write (training/*, services/modelops/local_training.py); metrics not listed here stay in the details.
_PLAIN_METRICS: dict[str, tuple[str, str, str]] = {  # key -> (label, value format or "pct", meaning)
    "roc_auc": ("Ranking (ROC AUC)", "{:.2f}",
                "how often a patient with the outcome gets a higher score than one without: 0.5 is chance, 1 is perfect"),
    "mean_roc_auc_14_findings": ("Ranking, mean over 14 findings (ROC AUC)", "{:.2f}",
                                 "how often an image with a finding scores higher than one without: 0.5 is chance"),
    "pr_auc": ("Precision–recall (PR AUC)", "{:.2f}", "average precision over all thresholds; guessing scores about "
               "the outcome rate{prevalence}"),
    "brier": ("Brier score", "{:.3f}", "mean squared gap between predicted risk and what happened; lower is better"),
    "ece": ("Calibration error", "pp", "how far predicted risks sit from the observed rates, on average"),
    "recall": ("Sensitivity at the operating threshold", "pct", "share of patients with the outcome flagged high"),
    "precision": ("Precision at the operating threshold", "pct", "share of patients flagged high who had the outcome"),
    "r2": ("Variance explained (R²)", "{:.2f}", "share of the differences in length of stay the model accounts for"),
    "mae_days": ("Typical error", "{:.2f} days", "average gap between the predicted and the actual stay"),
    "interval80_coverage": ("80% interval coverage", "pct", "share of actual stays inside the predicted 80% interval"),
    "interval80_mean_width_days": ("80% interval width", "{:.1f} days", "average width of that interval"),
}
_CARD_FRONT = ("name", "title", "version", "intended_use", "limits", "task")


def headline_metrics(card: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The test metrics with intervals, wherever the card's pipeline put them ({} if none)."""
    holders = [card.get("metrics"), card.get("metrics_test"), card]
    for holder in holders:
        if not isinstance(holder, dict):
            continue
        for key in ("test_chosen_model", "metrics_test", "test", None):
            m = holder if key is None else holder.get(key)
            if not isinstance(m, dict):
                continue
            found = {k: v for k, v in m.items() if isinstance(v, dict) and "value" in v}
            if found and (key is not None or any(k in _PLAIN_METRICS for k in found)):
                return found
    return {}


def _plain_value(fmt: str, v: float, unit: bool = True) -> str:
    text = {"pct": f"{100 * v:.1f}%", "pp": f"{100 * v:.1f} percentage points"}.get(fmt) or fmt.format(v)
    return text if unit or fmt == "pct" else text.split(" ")[0]  # "1.90 to 1.95 days", not "1.90 days to ..."


def _dig(obj: Any, *keys: str) -> Any:
    """obj[k1][k2]... or None where a level is missing or not a dictionary (cards differ by pipeline)."""
    for k in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
    return obj


def _test_set(card: dict[str, Any]) -> str:
    """'13,334 encounters of 9,582 patients' for the test split, as far as the card says."""
    split = _dig(card, "split") or _dig(card, "data", "split")
    rows = (_dig(split, "parts", "test", "encounters") or _dig(split, "eligible_encounters", "test")
            or _dig(split, "rows", "test"))
    patients = _dig(split, "parts", "test", "patients") or _dig(split, "patients", "test")
    if isinstance(rows, int):
        return f"{rows:,} encounters" + (f" of {patients:,} patients" if isinstance(patients, int) else "")
    images = _dig(split, "test")
    return f"{images:,} images" if isinstance(images, int) else ""


def _operating_points(card: dict[str, Any]) -> list[str]:
    """Per-finding flags on the test images (X-ray card): what a flag on the screen is worth, in one table."""
    points = card.get("operating_points_test")
    if not isinstance(points, list) or not all(isinstance(p, dict) and "sensitivity" in p for p in points):
        return []
    rule = next((p.get("chosen_by") for p in points if p.get("chosen_by")), "")
    if any("flaggable" in p for p in points):   # only findings the model earns are flagged: the rest are not tabulated
        grey = [str(p.get("class", "")).replace("_", " ") for p in points
                if not p.get("flaggable") and p.get("class") != "No Finding"]
        points = [p for p in points if p.get("flaggable") and p.get("class") != "No Finding"]
        earned = (" Only findings whose validation ROC-AUC's lower 95% bound is at least 0.70 over at least 20 "
                  "validation positives are ever flagged; the others are shown as not assessed reliably by this model"
                  + (f" ({', '.join(grey)})" if grey else "") + ".")
    else:
        earned = ""
    lines = ["### What a flag means", "",
             "A finding is flagged above its own threshold" + (f" ({rule}, chosen on validation images)" if rule
                                                               else "") + "." + earned + " On the test images: of those "
             "with the finding, the share flagged (sensitivity); of those without it, the share not flagged "
             "(specificity); of the flagged, the share that had it (PPV, which depends on how common the finding is).",
             "", "| Finding | Test images with it | Sensitivity | Specificity | PPV |",
             "| --- | ---: | ---: | ---: | ---: |"]
    def pct(p: dict[str, Any], key: str) -> str:
        return f"{100 * float(p[key]):.0f}%" if isinstance(p.get(key), (int, float)) else "–"

    for p in points:
        lines.append(f"| {str(p.get('class', '')).replace('_', ' ')} | {p.get('n_pos', '–')} | {pct(p, 'sensitivity')} | "
                     f"{pct(p, 'specificity')} | {pct(p, 'ppv')} |")
    return lines + [""]


def readable_card_markdown(card: dict[str, Any], version: str = "", source: str = "",
                           before_details: Sequence[str] = ()) -> str:
    """The model card for people: what it is for and its limits first, then how well it did on patients
    it never saw (headline metrics with their 95% intervals, in words), then every detail the pipeline wrote.

    `before_details`: markdown lines the caller adds between the metrics and the details (the Models page puts
    a local version's comparison with the active model and the integrity check there)."""
    title = card.get("title") or card.get("name") or "Model"
    lines = [f"## {title}", ""]
    version = version or str(card.get("version", ""))
    ident = " · ".join(x for x in (f"Version {version}" if version else "", source) if x)
    if ident:
        lines += [ident, ""]
    use = card.get("intended_use") or card.get("task")
    lines += ["### What it is for", "", str(use) if use else "The card does not state an intended use.", ""]
    limits = card.get("limits") or []
    if limits:
        lines += ["### Limits", ""] + [f"- {x}" for x in (limits if isinstance(limits, list) else [limits])] + [""]
    metrics = headline_metrics(card)
    shown = [(k, metrics[k]) for k in _PLAIN_METRICS if k in metrics]
    if shown:
        where = _test_set(card)
        lines += ["### How well it did on patients it never saw", "",
                  f"Measured once on the test patients{f' ({where})' if where else ''}, who were kept apart from "
                  "training. The range after each figure is its 95% interval from resampling those patients.", ""]
        prevalence = _dig(card, "data", "prevalence")
        prevalence = _dig(prevalence, "test") if isinstance(prevalence, dict) else prevalence  # per split, or one rate
        threshold = _dig(card, "metrics", "operating_threshold", "value")
        for k, v in shown:
            label, fmt, meaning = _PLAIN_METRICS[k]
            if k in ("recall", "precision") and isinstance(threshold, (int, float)):
                label += f" ({100 * float(threshold):.1f}% risk)"
            meaning = meaning.format(prevalence=f" ({prevalence:.2f} here)" if isinstance(prevalence, float) else "")
            ci = ""
            if v.get("n_boot", 1) and "ci_low" in v and "ci_high" in v:
                ci = (f" (95% interval {_plain_value(fmt, float(v['ci_low']), unit=False)} to "
                      f"{_plain_value(fmt, float(v['ci_high']))})")
            lines.append(f"- **{label}: {_plain_value(fmt, float(v['value']))}**{ci}: {meaning}.")
        lines.append("")
    lines += _operating_points(card)
    lines += list(before_details)
    details = {k: v for k, v in card.items() if k not in _CARD_FRONT}
    if details:
        lines += ["### Details", "", "Everything the training pipeline recorded, as written in the card.", ""]
        _render(details, 4, lines, human=True)
    return "\n".join(lines).rstrip() + "\n"
