"""Exported model: ONNX equals the trained XGBoost, contributions are exact (synthetic data, no shared data)."""
from __future__ import annotations

import numpy as np
import pytest

from services.inference.onnx_runtime import create_session
from services.risk.readmission import TreeArrays
from training.readmission import _logistic_fit, booster_tree_arrays, export_onnx, pr_auc, roc_auc

xgb = pytest.importorskip("xgboost")


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 8)).astype(np.float32)
    x[:, 3] = rng.integers(0, 5, 3000)
    x[rng.random(3000) < 0.05, 5] = np.nan  # exercise the default (missing-value) directions
    logit = 0.8 * x[:, 0] - 0.5 * x[:, 1] * (x[:, 2] > 0) + 0.3 * x[:, 3] - 2
    y = (rng.random(3000) < 1 / (1 + np.exp(-logit))).astype(int)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 4, "eta": 0.2, "nthread": 2,
                         "tree_method": "hist", "base_score": 0.2}, xgb.DMatrix(x, label=y), 40)
    trees = booster_tree_arrays(booster)
    a, b = _logistic_fit(booster.predict(xgb.DMatrix(x), output_margin=True), y)
    session = create_session(export_onnx(booster, x.shape[1], a, b))
    return x, y, booster, trees, a, b, session


def test_onnx_matches_native_xgboost(trained) -> None:
    x, _, booster, _, a, b, session = trained
    prob, margin = session.run(["probability", "margin"], {"input": x[:500]})
    native = booster.predict(xgb.DMatrix(x[:500]), output_margin=True)
    assert np.max(np.abs(margin.ravel() - native)) < 1e-5
    expected = 1 / (1 + np.exp(-(a * native.astype(np.float64) + b)))
    assert np.max(np.abs(prob.ravel() - expected)) < 1e-5


def test_contributions_sum_to_margin_and_match_saabas(trained, tmp_path) -> None:
    x, _, booster, trees, a, b, session = trained
    trees.save(tmp_path / "t.npz")
    loaded = TreeArrays.from_bytes((tmp_path / "t.npz").read_bytes())
    contrib, bias = loaded.contributions(x[:500])
    native = booster.predict(xgb.DMatrix(x[:500]), output_margin=True)
    assert np.max(np.abs(contrib.sum(1) + bias - native)) < 1e-5
    # XGBoost's own Saabas attributions (approx_contribs) agree feature by feature
    ref = booster.predict(xgb.DMatrix(x[:500]), pred_contribs=True, approx_contribs=True)
    assert np.max(np.abs(contrib - ref[:, :-1])) < 1e-4
    # calibrated: a * contributions + (a * bias + b) is the calibrated logit
    assert np.allclose((a * contrib).sum(1) + a * bias + b, a * native + b, atol=1e-5)
    # ... and the logit of the ONNX graph itself (trees.npz from the booster, ONNX from onnxmltools)
    prob, margin = (v.ravel().astype(np.float64) for v in session.run(["probability", "margin"], {"input": x[:500]}))
    logit = (a * contrib).sum(1) + a * bias + b
    assert np.max(np.abs(logit - (a * margin + b))) < 1e-5
    assert np.max(np.abs(1 / (1 + np.exp(-logit)) - prob)) < 1e-6


def test_metric_helpers_match_sklearn() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    p = np.round(rng.random(400), 2)  # ties on purpose
    assert roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert pr_auc(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    a, b = _logistic_fit(3 * rng.normal(size=400), y)
    assert np.isfinite([a, b]).all()


def test_onnx_is_converted_by_onnxmltools_with_platt_appended(trained) -> None:
    import onnx

    x, _, booster, _, a, b, _ = trained
    model = onnx.load_from_string(export_onnx(booster, x.shape[1], a, b))
    ops = [n.op_type for n in model.graph.node]
    assert ops == ["TreeEnsembleRegressor", "Mul", "Add", "Sigmoid"]
    assert "onnxmltools" in model.producer_name
    assert [o.name for o in model.graph.output] == ["probability", "margin"]


def test_booster_with_feature_names_converts(trained) -> None:
    x, y, _, _, a, b, _ = trained
    names = [f"feat_{i}" for i in range(x.shape[1])]
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 2}, xgb.DMatrix(x, label=y,
                        feature_names=names), 10)
    session = create_session(export_onnx(booster, x.shape[1], a, b))
    margin = session.run(["margin"], {"input": x[:200]})[0].ravel()
    assert np.max(np.abs(margin - booster.predict(xgb.DMatrix(x[:200], feature_names=names), output_margin=True))) < 1e-5
    assert booster.feature_names == names  # the caller's booster is not changed


def test_recalibrate_onnx_changes_only_platt(trained) -> None:
    from services.modelops.readmission_build import recalibrate_onnx

    x, _, booster, _, a, b, session = trained
    new = create_session(recalibrate_onnx(export_onnx(booster, x.shape[1], a, b), 0.5, -1.0))
    p0, m0 = session.run(["probability", "margin"], {"input": x[:300]})
    p1, m1 = new.run(["probability", "margin"], {"input": x[:300]})
    assert np.array_equal(m0, m1)
    assert np.max(np.abs(p1.ravel() - 1 / (1 + np.exp(-(0.5 * m1.ravel().astype(np.float64) - 1.0))))) < 1e-6


def test_refit_with_oof_scales_trees_and_gives_out_of_fold_margins(trained) -> None:
    from training.readmission import refit_with_oof

    x, y, _, _, _, _, _ = trained
    groups = np.arange(len(y)) // 3  # three encounters per patient
    final, oof, info = refit_with_oof(x, y, groups, {"max_depth": 3, "eta": 0.2, "rounds": 20}, 2000, 3, lambda m: None)
    assert info["rounds"] == 30 and final.num_boosted_rounds() == 30  # 20 rounds for 2000 rows -> 30 for 3000
    assert oof.shape == (len(y),) and np.isfinite(oof).all()
    assert roc_auc(y, oof) > 0.6
    in_sample = final.predict(xgb.DMatrix(x), output_margin=True)
    assert not np.allclose(oof, in_sample)  # out-of-fold, not the refit model's own (in-sample) margins
