"""`python -m training los` end to end on a small patient sample, written to a temporary folder."""
from __future__ import annotations

import pytest

import json
from pathlib import Path

import numpy as np

from services.capacity.los import LosService, score_los_csv
from services.inference.onnx_runtime import load_bundle
from tests.conftest import shared_path
from training.los import main


@pytest.mark.slow
def test_pipeline_small_sample(tmp_path: Path) -> None:
    shared_path("diabetes130", "diabetic_data.csv.gz")
    data_root = shared_path()
    out = tmp_path / "los"
    rc = main(["--data", str(data_root), "--out", str(out), "--sample", "2500", "--n-boot", "10",
               "--rf-trees", "20", "--max-rounds", "150", "--n-jobs", "2"])
    assert rc == 0
    for name in ("model.onnx", "card.json", "card.md", "model.onnx.sha256"):
        assert (out / name).exists(), name
    card = json.loads((out / "card.json").read_text())
    assert {r["model"] for r in card["model_comparison"]} == {"xgboost", "random_forest"}
    assert card["onnx"]["parity_max_abs_diff"] <= 1e-5
    for key in ("r2", "mae_days", "rmse_days", "interval80_coverage"):
        m = card["metrics_test"][key]
        assert m["ci_low"] <= m["value"] <= m["ci_high"]
    assert card["feature_importance"] and "time_in_hospital" not in json.dumps(card["feature_importance"])
    forbidden = ("num_lab_procedures", "num_medications", "num_procedures", "A1Cresult", "max_glu_serum",
                 "discharge_disposition", "time_in_hospital")
    names = [r["feature"] for r in card["feature_importance"]]
    assert not any(f in n for f in forbidden for n in names)
    assert set(card["goal_status"]) == {"r2", "mae_days", "interval80_coverage"}
    # the bundle loads through the hash-checked loader and scores a CSV
    svc = LosService(bundle=load_bundle(out, use_cache=False))
    src = shared_path("diabetes130", "diabetic_data.csv.gz")
    import pandas as pd
    head = pd.read_csv(src, dtype=str, keep_default_na=False, nrows=50)
    head.to_csv(tmp_path / "in.csv", index=False)
    rep = score_los_csv(tmp_path / "in.csv", tmp_path / "out.csv", service=svc)
    assert rep["scored"] == 50 and rep["rejected"] == 0
    res = pd.read_csv(tmp_path / "out.csv")
    assert (res["los_low"] <= res["los_high"]).all() and np.isfinite(res["los_days"]).all()
