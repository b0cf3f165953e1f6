"""Length of stay at admission: a predictive distribution over 1..14 days per encounter.

The ONNX model predicts the expected stay mu from admission-time features (services.capacity.features).
Around mu sits a distribution fitted on validation patients: either the observed stay histograms of
patients with similar mu ("binned"), or 1 + NegativeBinomial(mean mu-1, size r(mu)) truncated to
1..14 days ("nb"); the pipeline picks the family. From it come the point estimate
(a validation-tuned blend of mean and median), an 80% interval (tail masses calibrated on validation
so that discrete endpoints still cover ~80%), expected discharge dates and conditional survival.
The fitted parameters and the encoding tables travel in the ONNX file's metadata, covered by its
sha256.
"""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from services.core.outputs import csv_output
from services.records.uci_table import normalise_uci_frame
from services.records.validation import uci_row_problem
from services.capacity.features import MODEL_FEATURE_NAMES, los_model_matrix
from services.inference.shared import shared_model
from services.inference.onnx_runtime import MODELS_DIR, ModelBundle, load_bundle
from services.records.uci_schema import ENCOUNTER_COLUMNS

MAX_DAYS = 14
DAYS = np.arange(1, MAX_DAYS + 1)
BUNDLE_DIR = MODELS_DIR / "los"


# ---------------------------------------------------------------- pure distribution maths
def nb_distribution(mu: np.ndarray, disp_a: float, disp_b: float) -> np.ndarray:
    """(n, 14): 1 + NegativeBinomial(mean mu-1, size r) truncated to 1..14, log r = a + b log mu."""
    from scipy import stats  # on first use: scipy.stats costs ~0.6 s of start-up
    mu = np.clip(np.asarray(mu, dtype=np.float64), 1.0, MAX_DAYS)
    m1 = np.maximum(mu - 1.0, 1e-3)[:, None]
    r = np.exp(disp_a + disp_b * np.log(mu))[:, None]
    pmf = stats.nbinom.pmf(DAYS[None, :] - 1, r, r / (r + m1))
    pmf = np.maximum(pmf, 1e-12)
    return pmf / pmf.sum(axis=1, keepdims=True)


def binned_distribution(mu: np.ndarray, centers: Sequence[float], table: Sequence[Sequence[float]]) -> np.ndarray:
    """(n, 14): observed stay histograms of validation patients grouped by predicted mu, linearly
    interpolated between group centres (flat beyond the outer ones)."""
    mu = np.asarray(mu, dtype=np.float64).reshape(-1)
    c = np.asarray(centers, dtype=np.float64)
    t = np.asarray(table, dtype=np.float64)
    out = np.column_stack([np.interp(mu, c, t[:, k]) for k in range(MAX_DAYS)])
    out = np.maximum(out, 1e-12)
    return out / out.sum(axis=1, keepdims=True)


def los_distribution(mu: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """(n, 14) probabilities of a stay of 1..14 days for expected stays `mu`, per the bundle's family."""
    if params["family"] == "binned":
        return binned_distribution(mu, params["bin_centers"], params["bin_table"])
    return nb_distribution(mu, params["disp_a"], params["disp_b"])


def dist_mean(dist: np.ndarray) -> np.ndarray:
    return np.atleast_2d(dist) @ DAYS


def dist_quantile(dist: np.ndarray, q: float) -> np.ndarray:
    """Smallest day k with P(LOS <= k) >= q (integer days)."""
    cdf = np.cumsum(np.atleast_2d(dist), axis=1)
    return 1 + (cdf < q - 1e-12).sum(axis=1).clip(max=MAX_DAYS - 1)


def interval_from_distribution(dist: np.ndarray, tail_low: float, tail_high: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer interval [q(tail_low), q(1 - tail_high)], both ends inclusive.

    Because LOS is discrete, nominal tails of 10%/10% over-cover; the tails are calibrated on
    validation patients so that the inclusive interval covers about 80%.
    """
    return dist_quantile(dist, tail_low), dist_quantile(dist, 1.0 - tail_high)


def point_from_distribution(mu: np.ndarray, dist: np.ndarray, median_weight: float) -> np.ndarray:
    """Blend of the expected stay (best for squared error) and the median (best for absolute error)."""
    mu = np.clip(np.asarray(mu, dtype=np.float64), 1.0, MAX_DAYS)
    return (1.0 - median_weight) * mu + median_weight * dist_quantile(dist, 0.5)


def discharge_hazards(dist: np.ndarray, horizon_days: int) -> np.ndarray:
    """Daily discharge hazards h_k = P(LOS = k | LOS >= k), k = 1..horizon_days, per row.

    The UCI study only holds stays of 1-14 days, so the model knows nothing beyond day 14: from day
    14 on the hazard is held at its day 10-13 level (a geometric tail) instead of dropping to 0 or 1.
    """
    dist = np.atleast_2d(np.asarray(dist, dtype=np.float64))
    surv_before = 1.0 - np.concatenate([np.zeros((len(dist), 1)), np.cumsum(dist, axis=1)[:, :-1]], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        h = np.where(surv_before > 1e-12, dist / np.maximum(surv_before, 1e-300), 1.0)
    tail = np.clip(np.nanmean(h[:, 9:13], axis=1), 0.05, 0.95)
    out = np.empty((len(dist), horizon_days))
    n = min(horizon_days, MAX_DAYS - 1)
    out[:, :n] = np.clip(h[:, :n], 0.0, 1.0)
    out[:, n:] = tail[:, None]
    return out


def remaining_stay_survival(dist: np.ndarray, days_so_far: int, horizon: int) -> np.ndarray:
    """P(still in hospital on day days_so_far + k | still in hospital on day days_so_far), k=1..horizon.

    Convention: admitted on day 0, a stay of L days occupies a bed on days 0..L-1 and is discharged
    on day L. A patient present on day t has L > t. Accepts one distribution (14,) -> (horizon,) or
    a batch (n, 14) -> (n, horizon).
    """
    if days_so_far < 0 or horizon < 0:
        raise ValueError("days_so_far and horizon must be >= 0")
    d = np.asarray(dist, dtype=np.float64)
    single = d.ndim == 1
    h = discharge_hazards(d, days_so_far + horizon)
    # present on day t+k  <=>  not discharged on days t+1..t+k; discharge on day j has hazard h_j
    surv = np.cumprod(1.0 - h[:, days_so_far:days_so_far + horizon], axis=1)
    return surv[0] if single else surv


def presence_curves(dists: np.ndarray, days_so_far: Sequence[int], horizon: int) -> np.ndarray:
    """(n, horizon) P(inpatient i still in a bed on day d), d = 0 (today, = 1) .. horizon-1.

    The `inpatient_presence` input of services.capacity.forecast.forecast_ward.
    """
    d = np.atleast_2d(np.asarray(dists, dtype=np.float64))
    if len(d) != len(days_so_far):
        raise ValueError("one days_so_far per distribution")
    out = np.ones((len(d), horizon))
    for i, t in enumerate(days_so_far):
        if horizon > 1:
            out[i, 1:] = remaining_stay_survival(d[i], int(t), horizon - 1)
    return out


# ---------------------------------------------------------------- the service
@dataclass(frozen=True)
class LosEstimateRow:
    """One encounter's stay estimate; probs[k-1] = P(LOS = k days)."""

    encounter_id: int
    expected_days: float
    point_days: float
    low_days: int
    high_days: int
    probs: tuple[float, ...]


class LosBundleError(RuntimeError):
    """The LOS bundle is missing or its metadata is unusable."""


class LosService:
    """Loads the LOS bundle once (sha256-checked) and turns UCI-schema encounters into distributions."""

    def __init__(self, bundle_dir: Path | str = BUNDLE_DIR, bundle: ModelBundle | None = None) -> None:
        self.bundle: ModelBundle = bundle if bundle is not None else load_bundle(bundle_dir)
        meta = self.bundle.session.get_modelmeta().custom_metadata_map
        try:
            self.params: dict[str, Any] = json.loads(meta["wardlens_los_params"])
            self.tables: dict[str, dict] = json.loads(meta["wardlens_los_encodings"])
        except (KeyError, ValueError) as e:
            raise LosBundleError(f"LOS model metadata missing or damaged: {e}") from e
        missing = {"family", "median_weight", "tail_low", "tail_high"} - set(self.params)
        if missing:
            raise LosBundleError(f"LOS model metadata lacks {', '.join(sorted(missing))}; retrain it")
        if list(self.params.get("feature_names", [])) != list(MODEL_FEATURE_NAMES):
            raise LosBundleError("LOS model was built for a different feature layout; retrain it")
        self._input = self.bundle.session.get_inputs()[0].name
        self._output = self.bundle.session.get_outputs()[0].name

    # raw model output
    def expected_days(self, encounters: pd.DataFrame) -> np.ndarray:
        """Model's expected stay for every row (history rows of the same patients may be included)."""
        if len(encounters) == 0:
            return np.zeros(0)
        x = los_model_matrix(encounters, self.tables)
        out = self.bundle.session.run([self._output], {self._input: x})[0]
        return np.clip(np.asarray(out, dtype=np.float64).reshape(-1), 1.0, MAX_DAYS)

    def distribution_from_mu(self, mu: np.ndarray) -> np.ndarray:
        return los_distribution(mu, self.params)

    def distribution(self, encounters: pd.DataFrame) -> np.ndarray:
        """(n, 14) P(LOS = 1..14 days) per row of a UCI-schema frame."""
        return self.distribution_from_mu(self.expected_days(encounters))

    def point(self, dist: np.ndarray, mu: np.ndarray | None = None) -> np.ndarray:
        mu = dist_mean(dist) if mu is None else mu
        return point_from_distribution(mu, dist, self.params["median_weight"])

    def interval(self, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """80% interval (integer days, inclusive) with the validation-calibrated tails."""
        return interval_from_distribution(dist, self.params["tail_low"], self.params["tail_high"])

    def estimates(self, encounters: pd.DataFrame) -> list[LosEstimateRow]:
        mu = self.expected_days(encounters)
        dist = self.distribution_from_mu(mu)
        point = self.point(dist, mu)
        lo, hi = self.interval(dist)
        ids = encounters["encounter_id"].to_numpy()
        return [LosEstimateRow(int(ids[i]), float(mu[i]), float(point[i]), int(lo[i]), int(hi[i]),
                               tuple(float(p) for p in dist[i])) for i in range(len(mu))]

    def expected_discharge_date(self, admission_date: dt.date, dist: np.ndarray,
                                mu: float | None = None) -> tuple[dt.date, dt.date, dt.date]:
        """(point, earliest, latest) discharge dates for one encounter's distribution (14,).

        A stay of L days admitted on date A is discharged on A + L days. Pass the model's expected
        stay `mu` (LosEstimateRow.expected_days) to get exactly the point of `estimates`.
        """
        d = np.atleast_2d(dist)
        point = float(self.point(d, None if mu is None else np.array([mu]))[0])
        lo, hi = self.interval(d)
        return (admission_date + dt.timedelta(days=int(round(point))),
                admission_date + dt.timedelta(days=int(lo[0])), admission_date + dt.timedelta(days=int(hi[0])))

    @staticmethod
    def remaining_stay_survival(dist: np.ndarray, days_so_far: int, horizon: int) -> np.ndarray:
        return remaining_stay_survival(dist, days_so_far, horizon)


# ---------------------------------------------------------------- CLI scoring
def bundled_los() -> LosService:
    """The bundled LOS model (loaded once per process, services.inference.shared)."""
    return shared_model("los", LosService)


class LosCsvError(ValueError):
    """A file-level problem with a CSV to score (unreadable, empty, not CSV, missing columns)."""


def _row_problem(row: dict[str, str]) -> str | None:
    """The importer's row check (services.records.validation); the stay's length may be blank (an inpatient)."""
    return uci_row_problem(row, stay_length_known=False)


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, fields) per record; gzip allowed. Raises LosCsvError for the file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as f:  # type: ignore[operator]
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise LosCsvError(f"{path.name} is empty")
            rows = []
            line = reader.line_num
            for rec in reader:
                rows.append((line + 1, rec))  # line where the record starts (1-based, header = 1)
                line = reader.line_num
    except (UnicodeDecodeError, OSError, EOFError, csv.Error) as e:
        raise LosCsvError(f"cannot read {path}: {e}") from e
    return [h.strip() for h in header], rows


LOS_OUTPUT_COLUMNS: tuple[str, ...] = ("line", "encounter_id", "los_days", "los_low", "los_high", "error")


def score_los_csv(input_path: str | os.PathLike, output_path: str | os.PathLike,
                  service: LosService | None = None) -> dict[str, Any]:
    """Score a UCI-schema CSV: one output row per input row, in input order.

    Columns (LOS_OUTPUT_COLUMNS): `line` is the row's line in the input file (the header is line 1), then
    encounter_id, los_days (point estimate), los_low and los_high (80% interval, whole days), and `error`:
    empty for a scored row, else the reason the row was not scored (its estimate columns stay empty), as
    `score readmission` does. Earlier encounters of the same patient in the file feed the history
    features; rejected rows do not. Raises LosCsvError for file-level problems.
    Returns {"rows", "scored", "rejected", "errors": [{"line", "encounter_id", "reason"}], "messages", "output"}.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    if not input_path.is_file():
        raise LosCsvError(f"input file not found: {input_path}")
    header, records = _read_rows(input_path)
    needed = [c for c in ENCOUNTER_COLUMNS if c != "readmitted"]
    missing = [c for c in needed if c not in header]
    if missing:
        raise LosCsvError(f"{input_path.name} lacks columns: {', '.join(missing)}")
    if len(set(header)) != len(header):
        raise LosCsvError(f"{input_path.name} has duplicate column names")
    errors: list[dict[str, Any]] = []
    results: dict[int, dict[str, Any]] = {}  # line -> output row
    order: list[int] = []
    good: list[dict[str, str]] = []
    good_lines: list[int] = []
    seen: dict[str, int] = {}
    for line, rec in records:
        if not rec or all(not v.strip() for v in rec):
            continue  # blank line
        order.append(line)
        row = dict(zip(header, rec)) if len(rec) == len(header) else {}
        eid = row.get("encounter_id", "").strip()
        if not row:
            reason: str | None = f"has {len(rec)} fields, expected {len(header)}"
        else:
            reason = _row_problem(row)
            if reason is None and eid in seen:
                reason = f"duplicate encounter_id {eid} (first on line {seen[eid]})"
        if reason is not None:
            errors.append({"line": line, "encounter_id": eid, "reason": reason})
            results[line] = {"line": line, "encounter_id": eid, "error": reason}
            continue
        seen[eid] = line
        row["time_in_hospital"] = row["time_in_hospital"].strip() if row["time_in_hospital"].strip().isdigit() else "0"
        good.append(row)
        good_lines.append(line)
    if good:
        frame = normalise_uci_frame(pd.DataFrame(good, columns=header))
        svc = service or bundled_los()
        for line, est in zip(good_lines, svc.estimates(frame)):
            results[line] = {"line": line, "encounter_id": est.encounter_id, "los_days": f"{est.point_days:.2f}",
                             "los_low": est.low_days, "los_high": est.high_days, "error": ""}
    with csv_output(output_path, LOS_OUTPUT_COLUMNS, inputs=(input_path,)) as w:  # neutralised, 0600, whole
        w.writeheader()
        for line in order:
            w.writerow(results[line])
    return {"rows": len(order), "scored": len(good), "rejected": len(errors), "errors": errors,
            "messages": [f"line {e['line']}: {e['reason']}" for e in errors], "output": str(output_path)}
