"""Local retraining and recalibration of the readmission model on this hospital's own encounters.

Data: the store's encounters whose 30-day outcome is known: eligible (not death, hospice or an acute transfer), discharged
at least OUTCOME_DAYS ago (or imported without a discharge time) and labelled NO / >30 / <30. Features
come from services.risk.features.build_features, the one feature path the app scores with, with
every encounter of the store as history. Patients, never rows, are split by a keyed hash into
train / calibration / test (SPLIT_FRACTIONS); the test patients are scored once, by both models.

retrain(): XGBoost on train (early stopping on calibration), Platt calibration on the calibration
patients, ONNX + tree sidecar exported by services/modelops/readmission_build.py (the code the bundled model
was built with), then the gate: candidate and active model on the SAME test patients; better only if
the patient-bootstrap 95% interval of the ROC-AUC difference (candidate - active) lies entirely above 0.

recalibrate(): keeps the active model's trees and refits only its Platt calibration (a * margin + b) on
the train and calibration patients; ranking is unchanged, so its gate asks the Brier difference
(candidate - active) to lie entirely below 0, and the card shows ECE, Brier, slope and intercept before
and after, with intervals.

Both store a CANDIDATE inside the encrypted store (services.modelops.registry), audited in the same
transaction, with a card written from what was measured; nothing is stored when cancelled or refused.
Promotion is a separate, admin-only step (ModelRegistry.promote).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.domain import Permission
from services.core.errors import WardLensError
from services.records.uci_table import eligible_mask, normalise_uci_frame
from services.risk.features import FEATURE_NAMES, build_features
from services.risk.assessment import ReadmissionModel
from services.modelops.registry import ModelRegistry, sha256_hex
from services.records.patients import encounters_uci_frame
from services.core.progress import CancelToken, ProgressFn, no_progress
from services.risk.readmission import ReadmissionService, TreeArrays
from services.modelops.readmission_build import (booster_tree_arrays, bootstrap_interval, brier, calibration_bins,
                                         core_metrics, ece, export_onnx, group_bootstrap_indices, logistic_fit,
                                         recalibrate_onnx,
                                         roc_auc)
from services.site.session import Session
from services.records.uci_schema import READMITTED_VALUES

OUTCOME_DAYS = 30
SPLIT_SALT = "wardlens-local-split-v1"
SPLIT_FRACTIONS = (0.60, 0.20, 0.20)        # train, calibration, test (by patient)
MIN_KNOWN = 300                             # encounters with a known outcome, to retrain
MIN_KNOWN_RECALIBRATE = 200                 # ... to recalibrate (two parameters only)
MIN_EVENTS = 30                             # readmitted, and as many not readmitted, in all
MIN_SPLIT_EVENTS = 10                       # readmitted (and not) in each of calibration and test


class LocalTrainingError(WardLensError):
    """Local training cannot run or its result cannot be used (the message says why)."""


class InsufficientData(LocalTrainingError):
    pass


@dataclass(frozen=True)
class TrainingConfig:
    """XGBoost settings for local data (small: shallow trees, strong regularisation, early stopping)."""

    max_rounds: int = 300
    max_depth: int = 3
    eta: float = 0.05
    min_child_weight: float = 10.0
    subsample: float = 0.8
    colsample_bytree: float = 0.6
    reg_lambda: float = 5.0
    early_stopping_rounds: int = 30
    n_boot_gate: int = 1000      # paired patient bootstrap for the differences
    n_boot_card: int = 200       # intervals of each model's metrics
    # one core stays with the GUI thread: XGBoost on every core starved it for ~200 ms at a time
    threads: int = field(default_factory=lambda: max(1, (os.cpu_count() or 2) - 1))

    def xgb_params(self) -> dict[str, Any]:
        return {"objective": "binary:logistic", "eval_metric": "logloss", "tree_method": "hist", "max_bin": 128,
                "seed": 0, "nthread": self.threads, "max_depth": self.max_depth, "eta": self.eta,
                "min_child_weight": self.min_child_weight, "subsample": self.subsample,
                "colsample_bytree": self.colsample_bytree, "lambda": self.reg_lambda}


@dataclass(frozen=True)
class LocalData:
    x: np.ndarray                # features of the known encounters (float32, FEATURE_NAMES)
    y: np.ndarray                # 1 = readmitted within 30 days
    groups: np.ndarray           # patient key (for the split and the bootstrap)
    split: np.ndarray            # "train" / "cal" / "test"
    summary: dict[str, Any]      # counts and dates for the card

    def part(self, *names: str) -> np.ndarray:
        return np.isin(self.split, names)


@dataclass(frozen=True)
class Gate:
    """Candidate against the active model on the same local test patients."""

    kind: str                                # "retrain" or "recalibration"
    against: str                             # version of the active model
    criterion: str                           # "roc_auc" (retrain) or "brier" (recalibration)
    better: bool
    reason: str
    differences: dict[str, dict[str, float]]  # metric -> {value, ci_low, ci_high} of candidate - active
    candidate: dict[str, dict[str, float]]
    active: dict[str, dict[str, float]]
    n_test: int
    n_events: int
    n_patients: int

    def as_card(self, against_origin: str) -> dict[str, Any]:
        return {"against": {"version": self.against, "origin": against_origin}, "kind": self.kind,
                "criterion": self.criterion, "better": self.better, "reason": self.reason,
                "test": {"encounters": self.n_test, "readmitted": self.n_events, "patients": self.n_patients},
                "difference_candidate_minus_active": self.differences,
                "candidate": self.candidate, "active": self.active}


@dataclass(frozen=True)
class TrainingResult:
    version_id: int
    version: str
    kind: str
    gate: Gate
    card: dict[str, Any] = field(compare=False)

    @property
    def message(self) -> str:
        verdict = "can be promoted" if self.gate.better else "is not shown to be better; it stays a candidate"
        return f"Stored candidate {self.version}: {self.gate.reason} It {verdict}."


# ----- data ---------------------------------------------------------------------------------------

def patient_unit(keys: np.ndarray, salt: str = SPLIT_SALT) -> np.ndarray:
    """A fixed pseudo-random number in [0, 1) per patient (keyed hash, independent of the other rows)."""
    uniq, inv = np.unique(np.asarray(keys), return_inverse=True)
    vals = np.array([int.from_bytes(hashlib.blake2b(f"{salt}:{k}".encode(), digest_size=8).digest(), "big") / 2**64
                     for k in uniq])
    return vals[inv]


def known_outcome_mask(df: pd.DataFrame, today: dt.date) -> np.ndarray:
    """Eligible, discharged at least OUTCOME_DAYS before `today` (or no discharge time), labelled."""
    discharged = pd.to_datetime(df["discharge_time"], errors="coerce")
    # Timestamps, not .dt.date: a column with no dates at all (imported history) is datetime64 of NaT,
    # whose .dt.date cannot be compared with a date.
    cutoff = pd.Timestamp(today - dt.timedelta(days=OUTCOME_DAYS))
    matured = (discharged.isna() | (discharged <= cutoff)).to_numpy()
    return (eligible_mask(df).to_numpy() & (df["status"] == "discharged").to_numpy()
            & df["readmitted"].isin(READMITTED_VALUES).to_numpy() & matured)


def local_dataset(conn, today: dt.date | None = None, min_known: int = MIN_KNOWN, action: str = "retrain",
                  progress: ProgressFn = no_progress, cancel: CancelToken | None = None) -> LocalData:
    """The store's encounters with a known outcome, featured with the shared code, split by patient.

    Raises InsufficientData with the counts when there is too little to train and test honestly.
    """
    today = today or dt.date.today()
    progress(0, 100, "Reading encounters")
    raw = encounters_uci_frame(conn)
    cancel and cancel.raise_if_cancelled()
    if raw.empty:
        raise InsufficientData(f"The store holds no encounters; at least {min_known} with a known 30-day outcome "
                               f"are needed to {action}.")
    df = normalise_uci_frame(raw)
    progress(5, 100, "Building features")
    feats = build_features(df).to_numpy(dtype=np.float32)  # reads only its columns; a selection would copy
    cancel and cancel.raise_if_cancelled()
    known = known_outcome_mask(df, today)
    y = (df["readmitted"] == "<30").to_numpy()[known].astype(np.int64)
    n, pos = int(known.sum()), int(y.sum())
    if n < min_known:
        raise InsufficientData(f"Only {n} encounters with a known 30-day outcome; at least {min_known} are needed to "
                               f"{action} (outcomes count once the patient has been discharged {OUTCOME_DAYS} days).")
    if pos < MIN_EVENTS or n - pos < MIN_EVENTS:
        raise InsufficientData(f"Only {min(pos, n - pos)} encounters {'readmitted' if pos < n - pos else 'not readmitted'} "
                               f"within 30 days among {n} with a known outcome; at least {MIN_EVENTS} of each are "
                               f"needed to {action}.")
    groups = df["patient_nbr"].to_numpy()[known]
    u = patient_unit(groups)
    tr, ca, _ = SPLIT_FRACTIONS
    split = np.where(u < tr, "train", np.where(u < tr + ca, "cal", "test"))
    for part, label in (("cal", "calibration"), ("test", "test")):
        sel = split == part
        k = int(y[sel].sum())
        if min(k, int(sel.sum()) - k) < MIN_SPLIT_EVENTS:
            raise InsufficientData(
                f"The {label} patients ({len(np.unique(groups[sel]))}) have only {k} readmitted and {int(sel.sum()) - k} "
                f"not readmitted encounters; at least {MIN_SPLIT_EVENTS} of each are needed to {action} "
                f"({n} encounters with a known outcome in all).")
    dis = pd.to_datetime(df["discharge_time"], errors="coerce")[known].dropna()
    summary = {
        "source": "this hospital's encrypted store (encounters with a known 30-day outcome)",
        "encounters_with_known_outcome": n, "readmitted_within_30_days": pos, "prevalence": pos / n,
        "patients": int(len(np.unique(groups))), "encounters_in_store": int(len(df)),
        "outcome_rule": f"eligible (not death, hospice or an acute transfer), discharged at least {OUTCOME_DAYS} days before "
                        f"{today.isoformat()}, readmitted recorded as NO, >30 or <30; target readmitted == '<30'",
        "discharges_from": str(dis.min().date()) if len(dis) else "unknown",
        "discharges_to": str(dis.max().date()) if len(dis) else "unknown",
    }
    return LocalData(feats[known], y, groups, split, summary)


def split_summary(data: LocalData) -> dict[str, Any]:
    return {"method": f"by patient with a keyed hash ({SPLIT_SALT}), fractions train/calibration/test "
                      f"{SPLIT_FRACTIONS}",
            "parts": {name: {"encounters": int(data.part(p).sum()), "patients": int(len(np.unique(data.groups[data.part(p)]))),
                             "readmitted": int(data.y[data.part(p)].sum())}
                      for p, name in (("train", "train"), ("cal", "calibration"), ("test", "test"))}}


# ----- evaluation ---------------------------------------------------------------------------------

def metrics_with_ci(y: np.ndarray, p: np.ndarray, indices: list[np.ndarray]) -> dict[str, dict[str, float]]:
    return {k: bootstrap_interval(fn, [y, p], indices) for k, fn in core_metrics().items()}


def compare(y: np.ndarray, p_candidate: np.ndarray, p_active: np.ndarray, groups: np.ndarray, kind: str,
            against: str, n_boot: int = 1000, n_boot_card: int = 200, seed: int = 0) -> Gate:
    """The promotion gate on one test set: paired patient bootstrap of the differences."""
    idx = group_bootstrap_indices(groups, n_boot, seed)
    diffs = {
        "roc_auc": bootstrap_interval(lambda yy, a, b: roc_auc(yy, a) - roc_auc(yy, b), [y, p_candidate, p_active], idx),
        "brier": bootstrap_interval(lambda yy, a, b: brier(yy, a) - brier(yy, b), [y, p_candidate, p_active], idx),
        "ece": bootstrap_interval(lambda yy, a, b: ece(yy, a) - ece(yy, b), [y, p_candidate, p_active], idx),
    }
    card_idx = idx[:n_boot_card]
    cand, act = metrics_with_ci(y, p_candidate, card_idx), metrics_with_ci(y, p_active, card_idx)
    if kind == "recalibration":
        d = diffs["brier"]
        better = bool(d["n_boot"] and d["ci_high"] < 0)
        reason = (f"Brier score {cand['brier']['value']:.4f} against {act['brier']['value']:.4f}; difference "
                  f"{d['value']:+.4f} (95% CI {d['ci_low']:+.4f} to {d['ci_high']:+.4f}) "
                  f"{'entirely below 0.' if better else 'does not lie entirely below 0.'}")
        criterion = "brier"
    else:
        d = diffs["roc_auc"]
        better = bool(d["n_boot"] and d["ci_low"] > 0)
        reason = (f"ROC-AUC {cand['roc_auc']['value']:.3f} against {act['roc_auc']['value']:.3f}; difference "
                  f"{d['value']:+.3f} (95% CI {d['ci_low']:+.3f} to {d['ci_high']:+.3f}) "
                  f"{'entirely above 0.' if better else 'does not lie entirely above 0.'}")
        criterion = "roc_auc"
    return Gate(kind, against, criterion, better, reason, diffs, cand, act, int(len(y)), int(np.sum(y)),
                int(len(np.unique(groups))))


def _bands(y: np.ndarray, p: np.ndarray) -> tuple[float, list[dict[str, Any]]]:
    """Operating threshold (F1-maximising cut on the fitting patients) and risk bands, as the bundled model."""
    cands = np.unique(np.round(np.quantile(p, np.linspace(0.5, 0.99, 100)), 3))
    f1 = []
    for t in cands:
        flag = p >= t
        tp = int((flag & (y == 1)).sum())
        f1.append(2 * tp / (flag.sum() + y.sum()) if tp else 0.0)
    thr = float(cands[int(np.argmax(f1))])
    medium = round(float(np.mean(y)), 3)
    if medium >= thr:
        medium = round(thr / 2, 3)
    return thr, [{"name": "low", "min": 0.0}, {"name": "medium", "min": medium}, {"name": "high", "min": thr}]


# ----- the two actions ----------------------------------------------------------------------------

class _Rounds:
    """XGBoost callback: progress per round and cancel at a safe point."""

    def __new__(cls, progress: ProgressFn, cancel: CancelToken | None, total: int, lo: int, hi: int):
        import xgboost as xgb

        class Callback(xgb.callback.TrainingCallback):
            def after_iteration(self, model, epoch, evals_log) -> bool:
                cancel and cancel.raise_if_cancelled()
                if epoch % 5 == 0:
                    progress(lo + (hi - lo) * (epoch + 1) // total, 100, f"Training trees: round {epoch + 1}")
                return False
        return Callback()


def _package(onnx_bytes: bytes, trees: TreeArrays, cal_a: float, cal_b: float, thr: float, bands: list[dict[str, Any]],
             prefix: str, origin: str) -> tuple[str, bytes, bytes, bytes, ReadmissionService]:
    sha = sha256_hex(onnx_bytes)
    version = f"{prefix}-{sha[:12]}"
    meta = {"version": version, "feature_names": list(FEATURE_NAMES), "calibration": {"a": cal_a, "b": cal_b},
            "operating_threshold": thr, "bands": bands, "model_sha256": sha, "origin": origin,
            "outputs": {"probability": "calibrated P(readmitted < 30 days)", "margin": "raw tree margin (log-odds)"}}
    meta_json = (json.dumps(meta, indent=1) + "\n").encode("utf-8")
    trees_npz = trees.to_bytes()
    svc = ReadmissionService.from_bytes(onnx_bytes, meta_json, trees_npz,
                                        {"model.onnx": sha, "meta.json": sha256_hex(meta_json),
                                         "trees.npz": sha256_hex(trees_npz)}, source=f"candidate {version}")
    return version, onnx_bytes, meta_json, trees_npz, svc


def _card(kind: str, version: str, sha: str, session: Session, data: LocalData, gate: Gate, against_origin: str,
          model: dict[str, Any], y_te: np.ndarray, p_te: np.ndarray, seconds: float) -> dict[str, Any]:
    import xgboost as xgb

    return {
        "name": "readmission", "kind": kind, "version": version, "sha256": sha,
        "title": ("30-day readmission risk at discharge, retrained on this hospital's data" if kind == "retrain" else
                  "30-day readmission risk at discharge, recalibrated on this hospital's data"),
        "model": model,
        "data": data.summary,
        "split": {**split_summary(data), "tuning": "early stopping and calibration on the calibration patients; "
                                                   "the test patients are scored once, by both models"},
        "features": {"count": len(FEATURE_NAMES),
                     "code": "services/risk/features.py (the same code the application scores with)"},
        "metrics": {"test_chosen_model": gate.candidate,  # the key analytics.card_metrics reads for drift
                    "bootstrap": f"{gate.candidate['roc_auc']['n_boot']} resamples of test patients (95% percentile "
                                 "intervals); differences: paired resamples of the same patients for both models"},
        "calibration": {"method": "Platt on the tree margin", "a": model["calibration"]["a"],
                        "b": model["calibration"]["b"],
                        "before_after_on_test": {k: {"active": gate.active[k], "candidate": gate.candidate[k]}
                                                 for k in ("ece", "brier", "calibration_slope", "calibration_intercept")},
                        "curve_on_test": calibration_bins(y_te, p_te)},
        "comparison": gate.as_card(against_origin),
        "intended_use": "Decision support at discharge for adult diabetic inpatients of THIS hospital: rank patients "
                        "for transitional-care follow-up. Never a sole basis for a discharge decision. Use only "
                        "after promotion through the comparison gate.",
        "limits": [f"Built from {data.summary['encounters_with_known_outcome']} local encounters with a known outcome "
                   f"({data.summary['readmitted_within_30_days']} readmitted), split into train, calibration and "
                   "test patients: intervals are wide and small differences between models cannot be shown.",
                   "Only readmissions recorded in this store are known; readmissions elsewhere are missed.",
                   "Outcomes count only once the patient has been discharged 30 days; recent practice is not yet "
                   "represented.",
                   "Local data may change over time (case mix, coding); compare again after major changes."],
        "provenance": {"trained_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                       "trained_by": session.user.username, "python": platform.python_version(),
                       "xgboost": xgb.__version__, "seconds": round(seconds, 1)},
    }


def retrain(session: Session, progress: ProgressFn = no_progress, cancel: CancelToken | None = None,
            config: TrainingConfig = TrainingConfig(), today: dt.date | None = None,
            model: ReadmissionModel | None = None) -> TrainingResult:
    """Train a new readmission model on local outcomes and store it as a candidate (admin only)."""
    session.require(Permission.MANAGE_MODELS, "retrain models")
    t0 = time.time()
    registry = ModelRegistry(session, model or ReadmissionModel())  # candidates only: nothing switches here
    try:
        active, act = registry.active_readmission()
        data = local_dataset(session.db.conn, today, MIN_KNOWN, "retrain", progress, cancel)
        import xgboost as xgb

        tr, ca, te = data.part("train"), data.part("cal"), data.part("test")
        dtr = xgb.DMatrix(data.x[tr], label=data.y[tr])
        dca = xgb.DMatrix(data.x[ca], label=data.y[ca])
        progress(20, 100, "Training trees")
        booster = xgb.train(config.xgb_params(), dtr, config.max_rounds, evals=[(dca, "calibration")],
                            early_stopping_rounds=config.early_stopping_rounds, verbose_eval=False,
                            callbacks=[_Rounds(progress, cancel, config.max_rounds, 20, 75)])
        booster = booster[: booster.best_iteration + 1]
        cancel and cancel.raise_if_cancelled()
        progress(75, 100, "Calibrating and exporting")
        trees = booster_tree_arrays(booster)
        cal_a, cal_b = logistic_fit(booster.predict(dca, output_margin=True), data.y[ca])
        if cal_a <= 0:
            raise LocalTrainingError("The trained trees do not rank the calibration patients (Platt slope "
                                     f"{cal_a:.3f} is not positive); nothing was stored.")
        p_ca_raw = 1 / (1 + np.exp(-(cal_a * booster.predict(dca, output_margin=True) + cal_b)))
        thr, bands = _bands(data.y[ca], p_ca_raw)
        version, onnx_bytes, meta_json, trees_npz, cand = _package(export_onnx(booster, len(FEATURE_NAMES), cal_a, cal_b),
                                                                   trees, cal_a, cal_b, thr, bands, "readmission-local",
                                                                   "local retrain")
        native = booster.predict(xgb.DMatrix(data.x[te]), output_margin=True)
        p_te, margin_te = cand.predict_matrix(data.x[te])
        onnx_diff = float(np.max(np.abs(margin_te - native)))
        cancel and cancel.raise_if_cancelled()
        progress(80, 100, "Comparing with the active model on the test patients")
        p_act = active.predict_matrix(data.x[te])[0]
        gate = compare(data.y[te], p_te, p_act, data.groups[te], "retrain", act.version, config.n_boot_gate,
                       config.n_boot_card)
        model = {"type": "XGBoost gradient-boosted trees, Platt-calibrated, ONNX (onnxmltools TreeEnsembleRegressor + sigmoid)",
                 "hyperparameters": {**config.xgb_params(), "rounds": booster.num_boosted_rounds()},
                 "calibration": {"method": "Platt on the tree margin (calibration patients)", "a": cal_a, "b": cal_b},
                 "operating_threshold": thr, "bands": bands, "parent_version": act.version,
                 "onnx_vs_native_max_abs_margin_diff": onnx_diff}
        card = _card("retrain", version, sha256_hex(onnx_bytes), session, data, gate, act.origin, model, data.y[te],
                     p_te, time.time() - t0)
        cancel and cancel.raise_if_cancelled()  # the last point where cancelling is possible: nothing stored yet
        progress(95, 100, "Storing the candidate in the store")
        vid = registry.add_candidate(version, onnx_bytes, meta_json, trees_npz, card, act.version, "model retrain",
                                     f"{data.summary['encounters_with_known_outcome']} local encounters; "
                                     f"against {act.version}: {gate.reason}")
    except Exception as exc:  # noqa: BLE001 - audited, then raised to the caller
        session.log("model retrain", "model", "readmission", f"nothing stored: {exc}")
        raise
    progress(100, 100, "Done")
    return TrainingResult(vid, version, "retrain", gate, card)


def recalibrate(session: Session, progress: ProgressFn = no_progress, cancel: CancelToken | None = None,
                config: TrainingConfig = TrainingConfig(), today: dt.date | None = None,
            model: ReadmissionModel | None = None) -> TrainingResult:
    """Keep the active model's trees, refit its Platt calibration on local outcomes; store a candidate."""
    session.require(Permission.MANAGE_MODELS, "recalibrate models")
    t0 = time.time()
    registry = ModelRegistry(session, model or ReadmissionModel())  # candidates only: nothing switches here
    try:
        active, act = registry.active_readmission()
        data = local_dataset(session.db.conn, today, MIN_KNOWN_RECALIBRATE, "recalibrate", progress, cancel)
        fit, te = data.part("train", "cal"), data.part("test")
        progress(30, 100, "Refitting the calibration")
        margin_fit = active.predict_matrix(data.x[fit])[1]
        cal_a, cal_b = logistic_fit(margin_fit, data.y[fit])
        if cal_a <= 0:
            raise LocalTrainingError(f"On local outcomes the model's margin does not rank patients (slope {cal_a:.3f}); "
                                     "recalibration cannot help: retrain instead. Nothing was stored.")
        cancel and cancel.raise_if_cancelled()
        p_fit = 1 / (1 + np.exp(-(cal_a * margin_fit + cal_b)))
        thr, bands = _bands(data.y[fit], p_fit)
        version, onnx_bytes, meta_json, trees_npz, cand = _package(recalibrate_onnx(active.model_bytes(), cal_a, cal_b),
                                                                   active.trees, cal_a, cal_b, thr, bands,
                                                                   "readmission-recal", "local recalibration")
        progress(50, 100, "Comparing with the active model on the test patients")
        p_te = cand.predict_matrix(data.x[te])[0]
        p_act = active.predict_matrix(data.x[te])[0]
        gate = compare(data.y[te], p_te, p_act, data.groups[te], "recalibration", act.version, config.n_boot_gate,
                       config.n_boot_card)
        cancel and cancel.raise_if_cancelled()
        model = {"type": f"the trees of {act.version} with a new Platt calibration (ONNX re-exported)",
                 "base_version": act.version,
                 "calibration": {"method": "Platt on the tree margin (train and calibration patients)", "a": cal_a,
                                 "b": cal_b, "previous": {"a": active.cal_a, "b": active.cal_b}},
                 "operating_threshold": thr, "bands": bands, "parent_version": act.version}
        card = _card("recalibration", version, sha256_hex(onnx_bytes), session, data, gate, act.origin, model,
                     data.y[te], p_te, time.time() - t0)
        cancel and cancel.raise_if_cancelled()
        progress(95, 100, "Storing the candidate in the store")
        vid = registry.add_candidate(version, onnx_bytes, meta_json, trees_npz, card, act.version, "model recalibrate",
                                     f"{data.summary['encounters_with_known_outcome']} local encounters; "
                                     f"against {act.version}: {gate.reason}")
    except Exception as exc:  # noqa: BLE001 - audited, then raised to the caller
        session.log("model recalibrate", "model", "readmission", f"nothing stored: {exc}")
        raise
    progress(100, 100, "Done")
    return TrainingResult(vid, version, "recalibration", gate, card)

