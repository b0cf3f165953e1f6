"""`python -m training readmission [--data DIR] [--out DIR] [--sample N] [--n-boot B] [--quick]`

Trains the 30-day readmission model on UCI Diabetes 130 (target readmitted == "<30"), compares it
on one patient-grouped split with logistic regression, random forest, an MLP and the LACE / HOSPITAL
scores, calibrates the chosen XGBoost model on validation (Platt on the tree margin; with --refit: refits
it on train + validation and fits Platt on patient-grouped out-of-fold margins), exports ONNX
plus hash-checked sidecars and writes the model card from what was measured on the test split.

Rules kept here: patients (patient_nbr), never rows, are split; hyper-parameters and the number of
trees are chosen on the validation patients only; the refit and its out-of-fold calibration use train
and validation patients, never test; the test patients are scored once at the end.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from services.risk.clinical_scores import PROXIES, hospital_series, lace_series
from services.records.uci_schema import INELIGIBLE_DISPOSITIONS
from services.records.uci_table import DEFAULT_DATA_ROOT, eligible_mask, read_uci_csv
from services.risk.features import FEATURE_NAMES, build_features, feature_label
from services.inference.onnx_runtime import MODELS_DIR, create_session, write_sha256
from services.modelops.readmission_build import (_logistic_fit, _logit, booster_tree_arrays, brier,  # noqa: F401 - re-exported
                                         calibration_bins, calibration_intercept, calibration_slope, ece,
                                         export_onnx, pr_auc, roc_auc)
from training.cards import bootstrap_ci, group_bootstrap_indices, provenance, write_card

SPLIT_SEED = "wardlens-readmission-v1"
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)  # train, validation, test (by patient)
THREADS = 2


# ----- split --------------------------------------------------------------------------------------

def patient_unit(patient_nbr: np.ndarray, salt: str = SPLIT_SEED) -> np.ndarray:
    """A fixed pseudo-random number in [0, 1) per patient (keyed hash: independent of which rows are present)."""
    uniq, inv = np.unique(np.asarray(patient_nbr), return_inverse=True)
    vals = np.array([int.from_bytes(hashlib.blake2b(f"{salt}:{p}".encode(), digest_size=8).digest(), "big") / 2**64
                     for p in uniq])
    return vals[inv]


def assign_split(patient_nbr: np.ndarray) -> np.ndarray:
    """'train' / 'val' / 'test' per row; all encounters of a patient land in the same part."""
    u = patient_unit(patient_nbr)
    tr, va, _ = SPLIT_FRACTIONS
    return np.where(u < tr, "train", np.where(u < tr + va, "val", "test"))


def load_data(data_dir: Path, sample: int | None = None) -> pd.DataFrame:
    df = read_uci_csv(data_dir / "diabetic_data.csv.gz", require_target=True)
    if sample and sample < len(df):
        # whole patients, chosen by a second keyed hash, so histories stay complete
        u = patient_unit(df["patient_nbr"].to_numpy(), salt="sample")
        df = df[u < sample / len(df)].reset_index(drop=True)
    return df


# ----- metrics ------------------------------------------------------------------------------------

def _confusion(y: np.ndarray, p: np.ndarray, t: float) -> tuple[int, int, int, int]:
    yb, pb = np.asarray(y, dtype=bool), np.asarray(p) >= t
    return int((~yb & ~pb).sum()), int((~yb & pb).sum()), int((yb & ~pb).sum()), int((yb & pb).sum())


def threshold_metrics(t: float) -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    def acc(y, p):
        tn, fp, fn, tp = _confusion(y, p, t)
        return (tn + tp) / len(y)

    def prec(y, p):
        tn, fp, fn, tp = _confusion(y, p, t)
        return tp / (tp + fp) if tp + fp else 0.0

    def rec(y, p):
        tn, fp, fn, tp = _confusion(y, p, t)
        if tp + fn == 0:
            raise ValueError("no positives")
        return tp / (tp + fn)

    def f1(y, p):
        tn, fp, fn, tp = _confusion(y, p, t)
        return 2 * tp / (2 * tp + fp + fn) if tp else 0.0

    return {"accuracy": acc, "precision": prec, "recall": rec, "f1": f1,
            "tn": lambda y, p: _confusion(y, p, t)[0], "fp": lambda y, p: _confusion(y, p, t)[1],
            "fn": lambda y, p: _confusion(y, p, t)[2], "tp": lambda y, p: _confusion(y, p, t)[3]}


def metric_functions(threshold: float) -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    return {"roc_auc": roc_auc, "pr_auc": pr_auc, "brier": brier, "ece": ece,
            "calibration_slope": calibration_slope, "calibration_intercept": calibration_intercept,
            **threshold_metrics(threshold)}


def point_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    return {k: float(fn(y, p)) for k, fn in metric_functions(threshold).items()}


def metrics_with_ci(y: np.ndarray, p: np.ndarray, groups: np.ndarray, threshold: float, n_boot: int,
                    seed: int = 0) -> dict[str, dict[str, float]]:
    idx = group_bootstrap_indices(groups, n_boot, seed)
    return {k: bootstrap_ci(fn, [y, p], groups, indices=idx) for k, fn in metric_functions(threshold).items()}


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """Operating threshold: the F1-maximising cut on VALIDATION predictions, rounded to 0.001."""
    cands = np.unique(np.round(np.quantile(p, np.linspace(0.5, 0.995, 200)), 3))
    scores = [threshold_metrics(float(t))["f1"](y, p) for t in cands]
    return float(cands[int(np.argmax(scores))])


# ----- models -------------------------------------------------------------------------------------

def _xgb_params(cfg: dict[str, Any]) -> dict[str, Any]:
    return {"objective": "binary:logistic", "eval_metric": "logloss", "nthread": THREADS, "tree_method": "hist",
            "max_bin": 128, "seed": 0, **cfg}


def train_xgboost(x_tr, y_tr, x_va, y_va, configs: list[dict[str, Any]], max_rounds: int, log) -> tuple[Any, dict]:
    import xgboost as xgb

    dtr = xgb.DMatrix(x_tr, label=y_tr)
    dva = xgb.DMatrix(x_va, label=y_va)
    best = None
    for cfg in configs:
        t = time.time()
        b = xgb.train(_xgb_params(cfg), dtr, max_rounds, evals=[(dva, "val")], early_stopping_rounds=100,
                      verbose_eval=False)
        b = b[: b.best_iteration + 1]  # keep only the trees up to the best validation round
        auc = roc_auc(y_va, b.predict(dva))
        log(f"  xgboost {cfg} rounds={b.num_boosted_rounds()} val_auc={auc:.4f} ({time.time() - t:.0f}s)")
        if best is None or auc > best[0]:
            best = (auc, b, dict(cfg, rounds=b.num_boosted_rounds()))
    return best[1], best[2]


def refit_with_oof(x: np.ndarray, y: np.ndarray, groups: np.ndarray, cfg: dict[str, Any], n_train_sel: int,
                   folds: int, log) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """Refit the chosen configuration on train + validation, and out-of-fold margins for calibration.

    The number of trees chosen by early stopping on validation (for `n_train_sel` training rows) is scaled
    by the number of rows each fit sees. Folds are patient-grouped (keyed hash), so no patient's
    encounters are both fitted and predicted; the out-of-fold margins are what Platt is fitted on.
    """
    import xgboost as xgb

    rounds_sel = int(cfg["rounds"])
    params = _xgb_params({k: v for k, v in cfg.items() if k != "rounds"})
    fold = np.minimum((patient_unit(groups, salt="wardlens-readmission-oof") * folds).astype(int), folds - 1)
    oof = np.zeros(len(y))
    for k in range(folds):
        t = time.time()
        fit = fold != k
        rounds = max(1, int(round(rounds_sel * fit.sum() / n_train_sel)))
        b = xgb.train(params, xgb.DMatrix(x[fit], label=y[fit]), rounds)
        oof[~fit] = b.predict(xgb.DMatrix(x[~fit]), output_margin=True)
        log(f"  out-of-fold {k + 1}/{folds}: {rounds} rounds, fold AUC {roc_auc(y[~fit], oof[~fit]):.4f} "
            f"({time.time() - t:.0f}s)")
    rounds_full = max(1, int(round(rounds_sel * len(y) / n_train_sel)))
    t = time.time()
    final = xgb.train(params, xgb.DMatrix(x, label=y), rounds_full)
    log(f"  refit on train + validation: {rounds_full} rounds ({time.time() - t:.0f}s); out-of-fold AUC "
        f"{roc_auc(y, oof):.4f}")
    info = {"rows": int(len(y)), "rounds_chosen_on_validation": rounds_sel, "rounds": rounds_full, "folds": folds,
            "out_of_fold_roc_auc": roc_auc(y, oof),
            "rule": "trees scaled by rows: rounds = validation-chosen rounds x rows / training rows"}
    return final, oof, info


def fit_baselines(x_tr, y_tr, x_va, y_va, quick: bool, log) -> dict[str, Any]:
    """Logistic regression, random forest and MLP: small grids tuned on validation ROC-AUC."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out: dict[str, Any] = {}

    def pick(name: str, candidates: list[tuple[dict, Any]]) -> None:
        best = None
        for cfg, model in candidates:
            t = time.time()
            with warnings.catch_warnings():
                if quick:  # the smoke run caps MLP iterations on purpose
                    warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(x_tr, y_tr)
            auc = roc_auc(y_va, model.predict_proba(x_va)[:, 1])
            log(f"  {name} {cfg} val_auc={auc:.4f} ({time.time() - t:.0f}s)")
            if best is None or auc > best[0]:
                best = (auc, model, cfg)
        out[name] = (best[1], best[2])

    pick("logistic_regression", [({"C": c}, make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)))
                                 for c in ([0.1] if quick else [0.01, 0.1])])
    pick("random_forest", [({"n_estimators": n, "min_samples_leaf": leaf, "max_features": "sqrt"},
                            RandomForestClassifier(n_estimators=n, min_samples_leaf=leaf, max_features="sqrt",
                                                   n_jobs=THREADS, random_state=0))
                           for n, leaf in ([(30, 20)] if quick else [(200, 20)])])
    pick("mlp", [({"hidden": h, "alpha": a}, make_pipeline(StandardScaler(), MLPClassifier(
        hidden_layer_sizes=h, alpha=a, early_stopping=True, validation_fraction=0.1, n_iter_no_change=5,
        max_iter=20 if quick else 200, batch_size=512, random_state=0)))
        for h, a in ([((32,), 1e-2)] if quick else [((64, 32), 1e-2)])])
    return out


# ----- main ---------------------------------------------------------------------------------------

SUBGROUP_COLUMNS = {"age": "age", "sex": "gender", "race": "race"}
THRESHOLD_TABLE = (0.05, 0.08, 0.10, 0.12, 0.15, 0.20, 0.25, 0.30, 0.40, 0.50)


def _flat_row(label: str, y: np.ndarray, p: np.ndarray, groups: np.ndarray, t: float, n_boot: int) -> dict[str, Any]:
    row: dict[str, Any] = {"group": label, "n": int(len(y)), "positives": int(y.sum())}
    if len(y) < 30 or y.sum() < 3 or y.sum() == len(y):
        row["note"] = "too few encounters or events for metrics"
        return row
    for k, v in metrics_with_ci(y, p, groups, t, n_boot, seed=1).items():
        row[k] = v["value"]
        if k not in ("tn", "fp", "fn", "tp"):
            row[f"{k}_ci"] = f"{v['ci_low']:.3f}-{v['ci_high']:.3f}"
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training readmission", description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT / "diabetes130")
    ap.add_argument("--out", type=Path, default=MODELS_DIR / "readmission")
    ap.add_argument("--sample", type=int, default=None, help="train on about N rows (whole patients) for a smoke run")
    ap.add_argument("--n-boot", type=int, default=200, help="patient bootstrap resamples for the intervals")
    ap.add_argument("--quick", action="store_true", help="few trees, one config per model (tests)")
    ap.add_argument("--refit", action="store_true",
                    help="refit the chosen XGBoost configuration on train + validation, Platt on patient-grouped "
                         "out-of-fold margins (tried in the second attempt: no validation gain, see docs/readmission.md)")
    args = ap.parse_args(argv)
    t0 = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - t0:6.0f}s] {msg}", flush=True)

    df = load_data(args.data, args.sample)
    x_all = build_features(df).to_numpy(dtype=np.float32)
    y_all = (df["readmitted"] == "<30").to_numpy().astype(np.int64)
    elig = eligible_mask(df).to_numpy()
    split = assign_split(df["patient_nbr"].to_numpy())
    lace_all = lace_series(df).to_numpy(dtype=np.float64)
    hosp_all = hospital_series(df).to_numpy(dtype=np.float64)
    m = {s: (split == s) & elig for s in ("train", "val", "test")}
    log(f"data: {len(df)} rows, {df['patient_nbr'].nunique()} patients, eligible {int(elig.sum())}; "
        + ", ".join(f"{s} {int(v.sum())}" for s, v in m.items()))
    x_tr, y_tr, x_va, y_va, x_te, y_te = x_all[m["train"]], y_all[m["train"]], x_all[m["val"]], y_all[m["val"]], \
        x_all[m["test"]], y_all[m["test"]]
    groups_te = df["patient_nbr"].to_numpy()[m["test"]]

    # --- XGBoost (the deployable model) ---
    configs = ([{"max_depth": 3, "eta": 0.3, "min_child_weight": 5}] if args.quick else [
        {"max_depth": 4, "eta": 0.03, "min_child_weight": 30, "subsample": 0.8, "colsample_bytree": 0.5, "reg_lambda": 5},
        {"max_depth": 6, "eta": 0.02, "min_child_weight": 50, "subsample": 0.7, "colsample_bytree": 0.4, "reg_lambda": 10},
    ])
    booster_sel, xgb_cfg = train_xgboost(x_tr, y_tr, x_va, y_va, configs, 30 if args.quick else 3000, log)
    import xgboost as xgb
    sel_val_auc = roc_auc(y_va, booster_sel.predict(xgb.DMatrix(x_va)))
    refit_info: dict[str, Any] | None = None
    if args.refit:
        # refit on train + validation with the validation-chosen configuration; Platt on out-of-fold margins
        trva = m["train"] | m["val"]
        booster, oof_margin, refit_info = refit_with_oof(x_all[trva], y_all[trva], df["patient_nbr"].to_numpy()[trva],
                                                         xgb_cfg, len(y_tr), 3 if args.quick else 5, log)
        cal_a, cal_b = _logistic_fit(oof_margin, y_all[trva])
        xgb_cfg = dict(xgb_cfg, rounds=refit_info["rounds"],
                       rounds_chosen_on_validation=refit_info["rounds_chosen_on_validation"])
        # validation predictions of the refit model would be in-sample: use its out-of-fold ones there
        p_va_oof = 1 / (1 + np.exp(-(cal_a * oof_margin[m["val"][trva]] + cal_b)))
    else:
        booster = booster_sel
        cal_a, cal_b = _logistic_fit(booster.predict(xgb.DMatrix(x_va), output_margin=True), y_va)
    trees = booster_tree_arrays(booster)
    onnx_bytes = export_onnx(booster, x_all.shape[1], cal_a, cal_b)
    sess = create_session(onnx_bytes, threads=THREADS)

    def onnx_predict(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        prob, margin = sess.run(["probability", "margin"], {"input": np.ascontiguousarray(x, dtype=np.float32)})
        return prob.reshape(-1).astype(np.float64), margin.reshape(-1).astype(np.float64)

    p_va_xgb = p_va_oof if args.refit else onnx_predict(x_va)[0]
    p_te_xgb, margin_te = onnx_predict(x_te)
    native_te = booster.predict(xgb.DMatrix(x_te), output_margin=True)
    onnx_diff = float(np.max(np.abs(margin_te - native_te)))
    contrib, bias = trees.contributions(x_te[:2000])
    contrib_diff = float(np.max(np.abs(contrib.sum(1) + bias - native_te[:2000])))
    log(f"xgboost: {xgb_cfg}; Platt a={cal_a:.4f} b={cal_b:.4f}; ONNX vs native margin max diff {onnx_diff:.2e}; "
        f"contributions sum vs margin max diff {contrib_diff:.2e}")

    # --- comparators, each Platt-calibrated on validation so that calibration metrics compare fairly ---
    preds_va: dict[str, np.ndarray] = {"xgboost": p_va_xgb}
    preds_te: dict[str, np.ndarray] = {"xgboost": p_te_xgb}
    configs_used: dict[str, Any] = {"xgboost": xgb_cfg}
    for name, (model, cfg) in fit_baselines(x_tr, y_tr, x_va, y_va, args.quick, log).items():
        raw_va, raw_te = model.predict_proba(x_va)[:, 1], model.predict_proba(x_te)[:, 1]
        a, b = _logistic_fit(_logit(raw_va), y_va)
        preds_va[name] = 1 / (1 + np.exp(-(a * _logit(raw_va) + b)))
        preds_te[name] = 1 / (1 + np.exp(-(a * _logit(raw_te) + b)))
        configs_used[name] = cfg
    for name, score in (("lace_index", lace_all), ("hospital_score", hosp_all)):
        a, b = _logistic_fit(score[m["val"]], y_va)
        preds_va[name] = 1 / (1 + np.exp(-(a * score[m["val"]] + b)))
        preds_te[name] = 1 / (1 + np.exp(-(a * score[m["test"]] + b)))
        configs_used[name] = {"score_to_probability": f"Platt on validation: a={a:.4f}, b={b:.4f}"}

    val_auc = {k: roc_auc(y_va, v) for k, v in preds_va.items()}
    val_auc["xgboost"] = sel_val_auc  # the train-only fit that chose the configuration (out-of-fold: refit_info)
    thresholds = {k: best_f1_threshold(y_va, v) for k, v in preds_va.items()}
    chosen = "xgboost"
    best_val = max(val_auc, key=val_auc.get)
    log("validation AUC: " + ", ".join(f"{k} {v:.4f}" for k, v in val_auc.items()))

    # --- test: scored once ---
    log("bootstrap intervals on test ...")
    comparison: dict[str, Any] = {}
    for name in preds_te:
        comparison[name] = {"operating_threshold": thresholds[name], "validation_roc_auc": val_auc[name],
                            "test": metrics_with_ci(y_te, preds_te[name], groups_te, thresholds[name], args.n_boot)}
    thr = thresholds[chosen]
    p = preds_te[chosen]
    prevalence_va = float(np.mean(y_va))
    bands = [{"name": "low", "min": 0.0}, {"name": "medium", "min": round(prevalence_va, 3)},
             {"name": "high", "min": thr}]
    if bands[1]["min"] >= thr:  # degenerate tiny samples: keep bands ordered
        bands[1]["min"] = round(thr / 2, 3)
    sub_rows = []
    test_df = df[m["test"]]
    for label, col in SUBGROUP_COLUMNS.items():
        for value in sorted(test_df[col].unique()):
            sel = (test_df[col] == value).to_numpy()
            sub_rows.append(_flat_row(f"{label} {value}", y_te[sel], p[sel], groups_te[sel], thr, args.n_boot))
    thr_rows = []
    band_cuts = sorted({*THRESHOLD_TABLE, thr, bands[1]["min"]})
    for t in band_cuts:
        tn, fp, fn, tp = _confusion(y_te, p, t)
        tnv, fpv, fnv, tpv = _confusion(y_va, preds_va[chosen], t)
        thr_rows.append({"threshold": float(t), "role": "high band" if t == thr else ("medium band" if t == bands[1]["min"] else ""),
                         "test_flagged_share": (tp + fp) / len(y_te), "test_precision": tp / (tp + fp) if tp + fp else 0.0,
                         "test_recall": tp / (tp + fn) if tp + fn else 0.0, "test_specificity": tn / (tn + fp) if tn + fp else 0.0,
                         "val_precision": tpv / (tpv + fpv) if tpv + fpv else 0.0, "val_recall": tpv / (tpv + fnv) if tpv + fnv else 0.0})

    # --- bundle ---
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(onnx_bytes)
    onnx_sha = write_sha256(out / "model.onnx")
    trees.save(out / "trees.npz")
    write_sha256(out / "trees.npz")
    version = f"readmission-{onnx_sha[:12]}"
    meta = {"version": version, "feature_names": list(FEATURE_NAMES), "calibration": {"a": cal_a, "b": cal_b},
            "operating_threshold": thr, "bands": bands, "model_sha256": onnx_sha,
            "outputs": {"probability": "calibrated P(readmitted < 30 days)", "margin": "raw tree margin (log-odds)"}}
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    write_sha256(out / "meta.json")

    n_pat = {s: int(df.loc[split == s, "patient_nbr"].nunique()) for s in ("train", "val", "test")}
    chosen_test = comparison[chosen]["test"]
    card = {
        "name": "readmission", "title": "30-day readmission risk at discharge (diabetic inpatients)", "version": version,
        "model": {"chosen": chosen, "type": ("XGBoost gradient-boosted trees refit on train + validation, Platt-calibrated on patient-grouped out-of-fold margins"
                           if args.refit else "XGBoost gradient-boosted trees, Platt-calibrated on validation") + ", ONNX (onnxmltools TreeEnsembleRegressor + Platt + sigmoid)",
                  "why_chosen": f"deployable with exact per-feature contributions; validation ROC-AUC {val_auc[chosen]:.4f} "
                                f"(best on validation: {best_val} {val_auc[best_val]:.4f})",
                  "hyperparameters": configs_used[chosen], **({"refit": refit_info} if refit_info else {}),
                  "calibration": {"method": (f"Platt on out-of-fold tree margins (train + validation patients, "
                                             f"{refit_info['folds']} patient-grouped folds)" if refit_info else
                                             "Platt on the tree margin (validation)"), "a": cal_a, "b": cal_b},
                  "onnx_vs_native_max_abs_margin_diff": onnx_diff, "contribution_sum_max_abs_diff": contrib_diff,
                  "explanations": "Saabas path contributions from trees.npz (sum + intercept = calibrated logit)"},
        "data": {"source": "UCI Diabetes 130-US hospitals 1999-2008 (Strack et al. 2014), CC BY 4.0, ~10% of patients withheld by the project",
                 "file": "diabetic_data.csv.gz", "rows": int(len(df)), "patients": int(df["patient_nbr"].nunique()),
                 "sample": args.sample or "full", "target": "readmitted == '<30'",
                 "eligibility": f"discharge_disposition_id {', '.join(map(str, sorted(INELIGIBLE_DISPOSITIONS)))} (death, hospice, transfer to another acute-care hospital) excluded from training and evaluation; kept as history",
                 "prevalence": {s: float(y_all[v].mean()) for s, v in m.items()}},
        "split": {"method": f"by patient_nbr with a keyed hash ({SPLIT_SEED}), fractions {SPLIT_FRACTIONS}",
                  "patients": n_pat, "eligible_encounters": {s: int(v.sum()) for s, v in m.items()},
                  "tuning": ("hyper-parameters and the number of trees chosen on validation (model fitted on train); the chosen XGBoost "
                             "configuration then refit on train + validation with Platt on out-of-fold margins; operating "
                             "threshold from the out-of-fold predictions of the validation patients; comparators fitted on "
                             "train and calibrated on validation; test scored once" if refit_info else
                             "hyper-parameters, calibration, thresholds and bands chosen on validation only; test scored once")},
        "features": {"count": len(FEATURE_NAMES), "code": "services/risk/features.py (shared by training, batch scoring and the app)",
                     "history": "only the patient's earlier encounters by encounter_id; earlier '<30' labels are known at the current discharge (see module docstring); race is not an input",
                     "list": [{"name": n, "label": feature_label(n)} for n in FEATURE_NAMES]},
        "metrics": {"test_chosen_model": chosen_test,
                    "bootstrap": f"{args.n_boot} resamples of test patients (95% percentile intervals)",
                    "operating_threshold": {"value": thr, "rule": "maximises F1 on validation"},
                    "goals": {"roc_auc": ">= 0.70", "pr_auc": ">= 0.235", "ece": "<= 0.02", "brier": "<= 0.093"}},
        "comparison": {name: {"config": configs_used[name], **v} for name, v in comparison.items()},
        "calibration_curve": calibration_bins(y_te, p),
        "subgroups": sub_rows,
        "risk_bands": {"bands": bands, "rule": "high = at or above the operating threshold; medium = at or above the validation prevalence (above-average risk); low = below"},
        "threshold_table": thr_rows,
        "clinical_score_proxies": PROXIES,
        "intended_use": "Decision support at discharge for adult diabetic inpatients: rank patients for transitional-care follow-up. "
                        "Shown with its top factors and beside LACE and HOSPITAL; never a sole basis for a discharge decision.",
        "limits": ["Trained on US hospitals 1999-2008 (UCI), diabetic encounters only; recalibrate on local data before clinical use.",
                   "Encounter order is taken from encounter_id; about 1.6% of earlier encounters in UCI look mis-ordered.",
                   "Readmissions to other hospitals are only as complete as the UCI label; no deaths after discharge are known.",
                   "Subgroups with few encounters have wide intervals (see subgroup table); race and sex are not inputs but performance differs by group.",
                   "LACE and HOSPITAL are computed with proxies (see clinical_score_proxies) and are not the validated scores."],
        "training_seconds": round(time.time() - t0, 1),
        "provenance": provenance(),
    }
    write_card(out, card)
    log(f"test {chosen}: " + ", ".join(f"{k} {chosen_test[k]['value']:.4f}" for k in ("roc_auc", "pr_auc", "brier", "ece")))
    log(f"wrote {out}")
    return 0
