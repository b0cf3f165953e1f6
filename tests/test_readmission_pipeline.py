"""The training pipeline end to end on a small sample, and the committed card re-computed from the
committed model on the same patient-grouped test split."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import shared_path


@pytest.mark.slow
def test_pipeline_end_to_end_on_a_small_sample(tmp_path: Path) -> None:
    data = shared_path("diabetes130", "diabetic_data.csv.gz").parent
    from services.inference.onnx_runtime import clear_cache
    from services.risk.readmission import ReadmissionService
    from training.readmission import main

    out = tmp_path / "bundle"
    assert main(["--data", str(data), "--sample", "3000", "--quick", "--n-boot", "5", "--out", str(out)]) == 0
    for name in ("model.onnx", "model.onnx.sha256", "card.json", "card.md", "meta.json", "meta.json.sha256",
                 "trees.npz", "trees.npz.sha256"):
        assert (out / name).exists(), name
    card = json.loads((out / "card.json").read_text(encoding="utf-8"))
    assert set(card["comparison"]) == {"xgboost", "logistic_regression", "random_forest", "mlp", "lace_index",
                                       "hospital_score"}
    for model in card["comparison"].values():
        for k in ("roc_auc", "pr_auc", "brier", "ece", "calibration_slope", "calibration_intercept", "accuracy",
                  "precision", "recall", "f1", "tn", "fp", "fn", "tp"):
            assert {"value", "ci_low", "ci_high"} <= set(model["test"][k])
    assert len(card["calibration_curve"]) == 10 and card["subgroups"] and card["threshold_table"]
    assert card["model"]["onnx_vs_native_max_abs_margin_diff"] < 1e-5
    assert card["model"]["contribution_sum_max_abs_diff"] < 1e-5
    assert (out / "card.md").read_text(encoding="utf-8").startswith("# Model card")
    clear_cache()
    svc = ReadmissionService(out)
    assert svc.bands[-1][1] == card["metrics"]["operating_threshold"]["value"]


@pytest.mark.slow
def test_committed_card_metrics_recompute_from_committed_model() -> None:
    path = shared_path("diabetes130", "diabetic_data.csv.gz")
    from services.records.uci_table import eligible_mask, read_uci_csv
    from services.risk.features import build_features
    from services.risk.readmission import BUNDLE_DIR, ReadmissionService
    from training.readmission import assign_split, point_metrics

    if not (BUNDLE_DIR / "card.json").exists():
        pytest.skip("readmission bundle not built yet")
    card = json.loads((BUNDLE_DIR / "card.json").read_text(encoding="utf-8"))
    if card["data"]["sample"] != "full":
        pytest.skip("committed bundle was trained on a sample")
    df = read_uci_csv(path, require_target=True)
    test = (assign_split(df["patient_nbr"].to_numpy()) == "test") & eligible_mask(df).to_numpy()
    assert int(test.sum()) == card["split"]["eligible_encounters"]["test"]
    x = build_features(df).to_numpy(np.float32)[test]
    y = (df["readmitted"] == "<30").to_numpy()[test].astype(np.int64)
    prob, _ = ReadmissionService().predict_matrix(x)
    got = point_metrics(y, prob, card["metrics"]["operating_threshold"]["value"])
    for k, v in card["metrics"]["test_chosen_model"].items():
        assert got[k] == pytest.approx(v["value"], abs=1e-6), k
