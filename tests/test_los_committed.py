"""The committed LOS bundle: its card's test metrics re-computed from the model, and 80% coverage."""
from __future__ import annotations

import numpy as np
import pytest

from services.records.uci_table import read_uci_csv
from services.capacity.los import BUNDLE_DIR, LosService
from tests.conftest import shared_path
from training.los import evaluate, patient_split

pytestmark = pytest.mark.skipif(not (BUNDLE_DIR / "model.onnx").exists(), reason="no committed LOS bundle")


@pytest.fixture(scope="module")
def recomputed():
    src = shared_path("diabetes130", "diabetic_data.csv.gz")
    svc = LosService()
    card = svc.bundle.card
    if card["data"].get("sampled"):
        pytest.skip("committed bundle was trained on a sample")
    df = read_uci_csv(src)
    if len(df) != card["data"]["rows"]:
        pytest.skip("shared data differs from what the committed model was trained on")
    part = patient_split(df["patient_nbr"].to_numpy(), card["split"]["seed"])
    te = np.flatnonzero(part == 2)
    assert len(te) == card["split"]["rows"]["test"]
    mu = svc.expected_days(df)[te]  # history features need the patients' other rows: score the whole table
    y = df["time_in_hospital"].to_numpy(float)[te]
    got = evaluate(y, mu, svc.params, df["patient_nbr"].to_numpy()[te], 0, 0)
    return card, got, svc, mu, y


@pytest.mark.slow
def test_card_metrics_match_the_model(recomputed) -> None:
    card, got, *_ = recomputed
    for key in ("r2", "mae_days", "rmse_days", "r2_of_expected_stay", "interval80_mean_width_days"):
        assert got[key]["value"] == pytest.approx(card["metrics_test"][key]["value"], abs=1e-4), key
    assert got["interval80_coverage"]["value"] == pytest.approx(card["metrics_test"]["interval80_coverage"]["value"], abs=1e-3)


def test_interval_coverage_on_test_split(recomputed) -> None:
    _, got, svc, mu, y = recomputed
    cov = got["interval80_coverage"]["value"]
    assert 0.78 <= cov <= 0.82, f"80% interval covers {cov:.3f} of test stays"
    lo, hi = svc.interval(svc.distribution_from_mu(mu))
    assert np.all(lo <= hi) and lo.min() >= 1 and hi.max() <= 14
