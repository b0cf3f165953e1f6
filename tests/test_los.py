"""LOS maths (distribution, interval, survival), ONNX parity of the export path, and score_los_csv."""
from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.capacity.features import MODEL_FEATURE_NAMES, build_los_features
from services.capacity.los import (BUNDLE_DIR, presence_curves, LosCsvError, LosService, binned_distribution, dist_mean, dist_quantile,
                          interval_from_distribution, los_distribution, nb_distribution, remaining_stay_survival,
                          score_los_csv)
from services.inference.onnx_runtime import create_session
from services.records.uci_schema import ENCOUNTER_COLUMNS, MEDICATIONS

HAS_BUNDLE = (BUNDLE_DIR / "model.onnx").exists()


def uci_rows(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        r = {c: "No" for c in MEDICATIONS}
        r.update({"encounter_id": str(1000 + i), "patient_nbr": str(50 + i // 2), "race": "Caucasian",
                  "gender": ["Male", "Female"][i % 2], "age": f"[{10 * (3 + i % 6)}-{10 * (4 + i % 6)})", "weight": "?",
                  "admission_type_id": str(1 + i % 3), "discharge_disposition_id": "1",
                  "admission_source_id": ["7", "1", "4"][i % 3], "time_in_hospital": str(1 + i % 9),
                  "payer_code": "MC", "medical_specialty": ["InternalMedicine", "?", "Cardiology"][i % 3],
                  "num_lab_procedures": "40", "num_procedures": "1", "num_medications": "12",
                  "number_outpatient": "0", "number_emergency": str(i % 2), "number_inpatient": str(i % 3),
                  "diag_1": ["428", "250.13", "V57", "414"][i % 4], "diag_2": "401", "diag_3": "?",
                  "number_diagnoses": str(5 + i % 4), "max_glu_serum": "None", "A1Cresult": "None",
                  "change": "No", "diabetesMed": "Yes", "readmitted": "NO"})
        rows.append(r)
    return pd.DataFrame(rows, columns=list(ENCOUNTER_COLUMNS))


def test_distribution_is_a_pmf_and_tracks_mu() -> None:
    mu = np.array([1.0, 2.5, 4.4, 9.0, 14.0])
    d = nb_distribution(mu, 1.0, 0.0)
    assert np.allclose(d, los_distribution(mu, {"family": "nb", "disp_a": 1.0, "disp_b": 0.0}))
    assert d.shape == (5, 14) and np.allclose(d.sum(1), 1) and (d >= 0).all()
    assert np.all(np.diff(dist_mean(d)) > 0)
    assert abs(dist_mean(d)[2] - 4.4) < 0.3


def test_binned_distribution_interpolates_between_centres() -> None:
    t1, t2 = np.eye(14)[0] * 0.8 + 0.2 / 14, np.eye(14)[4] * 0.8 + 0.2 / 14
    params = {"family": "binned", "bin_centers": [2.0, 6.0], "bin_table": [t1.tolist(), t2.tolist()]}
    d = los_distribution(np.array([1.0, 2.0, 4.0, 9.0]), params)
    assert np.allclose(d.sum(1), 1)
    assert np.allclose(d[0], t1) and np.allclose(d[1], t1) and np.allclose(d[3], t2)
    assert np.allclose(d[2], (t1 + t2) / 2)
    assert np.allclose(binned_distribution([4.0], [2.0, 6.0], [t1, t2]), d[2:3])


def test_quantile_and_interval_are_inclusive_integers() -> None:
    d = np.zeros((1, 14))
    d[0, [0, 1, 2, 3]] = [0.1, 0.2, 0.3, 0.4]  # cdf 0.1 0.3 0.6 1.0
    assert dist_quantile(d, 0.1)[0] == 1 and dist_quantile(d, 0.11)[0] == 2 and dist_quantile(d, 0.5)[0] == 3
    lo, hi = interval_from_distribution(d, 0.1, 0.1)
    assert (lo[0], hi[0]) == (1, 4)


def test_remaining_stay_survival_hand_case() -> None:
    d = np.zeros(14)
    d[:4] = [0.1, 0.2, 0.3, 0.4]
    s = remaining_stay_survival(d, 0, 4)
    # P(L>1)=0.9, P(L>2)=0.7, P(L>3)=0.4, P(L>4)=0
    assert np.allclose(s, [0.9, 0.7, 0.4, 0.0])
    # already there 2 days: P(L>3 | L>2) = 0.4/0.7, P(L>4 | L>2) = 0
    assert np.allclose(remaining_stay_survival(d, 2, 2), [0.4 / 0.7, 0.0])


def test_survival_beyond_14_days_uses_geometric_tail() -> None:
    d = nb_distribution(np.array([6.0]), 1.0, 0.0)[0]
    s = remaining_stay_survival(d, 20, 5)
    assert np.all(s > 0) and np.all(np.diff(s) < 0)
    ratios = s[1:] / s[:-1]
    assert np.allclose(ratios, ratios[0])
    batch = remaining_stay_survival(np.vstack([d, d]), 3, 7)
    assert batch.shape == (2, 7) and np.allclose(batch[0], remaining_stay_survival(d, 3, 7))
    with pytest.raises(ValueError):
        remaining_stay_survival(d, -1, 3)


def test_presence_curves_feed_capacity() -> None:
    d = np.zeros(14)
    d[:4] = [0.1, 0.2, 0.3, 0.4]
    pres = presence_curves(np.vstack([d, d]), [0, 2], 3)
    assert np.allclose(pres, [[1.0, 0.9, 0.7], [1.0, 0.4 / 0.7, 0.0]])


def test_features_use_only_earlier_encounters() -> None:
    df = uci_rows(8)
    f = build_los_features(df)
    assert list(f.columns) == list(MODEL_FEATURE_NAMES[: len(f.columns)]) and not f.isna().any().any()
    # patient 50 has encounters 1000 and 1001: only the later one sees history
    assert f.loc[0, "hist_n_prev"] == 0 and f.loc[1, "hist_n_prev"] == 1
    assert f.loc[1, "hist_prev_los_last"] == 1.0
    # changing the later stay's own LOS or in-stay counts changes nothing of its features
    df2 = df.copy()
    df2.loc[1, ["time_in_hospital", "num_medications", "num_lab_procedures", "num_procedures"]] = [14, 80, 99, 6]
    assert np.allclose(build_los_features(df2).loc[1], f.loc[1])
    # reversed row order gives the same features per encounter
    rev = build_los_features(df.iloc[::-1].reset_index(drop=True)).iloc[::-1].reset_index(drop=True)
    assert np.allclose(rev.to_numpy(), f.to_numpy())


def test_onnx_parity_of_export_path() -> None:
    import xgboost as xgb

    from training.los import to_onnx
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, len(MODEL_FEATURE_NAMES))).astype(np.float32)
    y = 1 + 13 / (1 + np.exp(-x[:, 0] - x[:, 3]))
    m = xgb.XGBRegressor(n_estimators=80, max_depth=4, n_jobs=1).fit(x, y)
    sess = create_session(to_onnx(m, "xgboost", x.shape[1]).SerializeToString())
    got = sess.run(None, {sess.get_inputs()[0].name: x[:200]})[0].reshape(-1)
    assert np.max(np.abs(got - m.predict(x[:200]))) <= 1e-5


def test_onnx_parity_random_forest_path() -> None:
    from sklearn.ensemble import RandomForestRegressor

    from training.los import to_onnx
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, len(MODEL_FEATURE_NAMES))).astype(np.float32)
    y = 1 + 3 * (x[:, 0] > 0) + rng.random(400)
    m = RandomForestRegressor(n_estimators=10, min_samples_leaf=5, random_state=0).fit(x, y)
    sess = create_session(to_onnx(m, "random_forest", x.shape[1]).SerializeToString())
    got = sess.run(None, {sess.get_inputs()[0].name: x[:100]})[0].reshape(-1)
    assert np.max(np.abs(got - m.predict(x[:100]))) <= 1e-5


def test_no_in_stay_or_discharge_columns_among_features() -> None:
    forbidden = ("num_lab_procedures", "num_medications", "num_procedures", "A1C", "glu", "change", "diabetesMed",
                 "discharge_disposition", "time_in_hospital", "readmitted", *MEDICATIONS)
    assert not [n for n in MODEL_FEATURE_NAMES if any(f.lower() in n.lower() for f in forbidden)]


@pytest.mark.skipif(not HAS_BUNDLE, reason="no committed LOS bundle in resources/models/los")
def test_service_outputs_and_dates() -> None:
    svc = LosService()
    df = uci_rows(12)
    d = svc.distribution(df)
    assert d.shape == (12, 14) and np.allclose(d.sum(1), 1)
    ests = svc.estimates(df)
    assert all(e.low_days <= e.high_days and 1 <= e.point_days <= 14 for e in ests)
    adm = dt.date(2026, 1, 5)
    point, early, late = svc.expected_discharge_date(adm, d[0])
    assert early <= point <= late and early > adm


@pytest.mark.skipif(not HAS_BUNDLE, reason="no committed LOS bundle in resources/models/los")
def test_score_los_csv_well_formed_and_reports_bad_rows(tmp_path: Path) -> None:
    df = uci_rows(10)
    df.loc[3, "admission_type_id"] = "x"          # bad row (line 5)
    df.loc[6, "encounter_id"] = df.loc[5, "encounter_id"]  # duplicate (line 8)
    df.loc[8, "time_in_hospital"] = ""            # current inpatient: LOS unknown, still scored
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    df.to_csv(src, index=False)
    with open(src, "a") as f:
        f.write("1,2,3\n")                          # short row (line 12)
    rep = score_los_csv(src, out)
    assert rep["scored"] == 8 and rep["rejected"] == 3 and rep["rows"] == 11
    assert [e["line"] for e in rep["errors"]] == [5, 8, 12]
    assert "admission_type_id" in rep["errors"][0]["reason"] and "duplicate" in rep["errors"][1]["reason"]
    assert "first on line 7" in rep["errors"][1]["reason"] and "fields" in rep["errors"][2]["reason"]
    assert rep["messages"][0].startswith("line 5: admission_type_id")
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    # every input row has its output row, in input order, with its line and the reason it was not scored
    assert list(rows[0]) == ["line", "encounter_id", "los_days", "los_low", "los_high", "error"]
    assert [int(r["line"]) for r in rows] == list(range(2, 13))
    bad = {int(r["line"]): r for r in rows if r["error"]}
    assert set(bad) == {5, 8, 12} and all(r["los_days"] == r["los_low"] == r["los_high"] == "" for r in bad.values())
    assert bad[5]["encounter_id"] == df.loc[3, "encounter_id"] and "admission_type_id" in bad[5]["error"]
    assert "duplicate" in bad[8]["error"] and "fields" in bad[12]["error"]
    ok = [r for r in rows if not r["error"]]
    assert len(ok) == 8 and {r["encounter_id"] for r in ok} == set(df["encounter_id"]) - {"1003"}
    for r in ok:
        assert 1 <= int(r["los_low"]) <= float(r["los_days"]) + 1 and int(r["los_high"]) <= 14
        assert int(r["los_low"]) <= int(r["los_high"])


def test_score_los_csv_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(LosCsvError, match="not found"):
        score_los_csv(tmp_path / "nope.csv", tmp_path / "o.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("encounter_id,patient_nbr\n1,2\n")
    with pytest.raises(LosCsvError, match="lacks columns"):
        score_los_csv(bad, tmp_path / "o.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(LosCsvError, match="empty"):
        score_los_csv(empty, tmp_path / "o.csv")
    binary = tmp_path / "img.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x81")
    with pytest.raises(LosCsvError):
        score_los_csv(binary, tmp_path / "o.csv")


def test_encoding_keys_use_admission_columns_only() -> None:
    from services.capacity.features import ENCODING_KEYS, ENCODINGS
    allowed = {"diag_1", "diag_2", "diag_3", "medical_specialty", "admission_source_id", "admission_type_id", "age",
               "payer_code", "number_diagnoses"}
    used = {c.split(":")[0] for cols in ENCODING_KEYS.values() for c in cols}
    assert used <= allowed
    assert {k for k, _ in ENCODINGS} <= set(ENCODING_KEYS) and {t for _, t in ENCODINGS} == {"los", "long", "short"}


def test_target_encodings_prefix_keys_and_short_share() -> None:
    from services.capacity.features import apply_target_encodings, encoding_key, fit_target_encodings
    df = uci_rows(12)
    # "diag_1:3" keys group every 250.x under 250
    assert set(encoding_key(df, "d1p")) == {"428", "250", "V57", "414"}
    los = df["time_in_hospital"].astype(float).to_numpy()
    tables = fit_target_encodings(df, los, smoothing=0.0, min_count=1)
    assert tables["te_d1_short"]["prior"] == pytest.approx(float((los <= 2).mean()))
    enc = apply_target_encodings(df, tables)
    sel = df["diag_1"] == "428"
    assert enc.loc[sel, "te_d1_short"].iloc[0] == pytest.approx(float((los[sel.to_numpy()] <= 2).mean()), abs=1e-5)
    # unseen codes fall back to the prior
    other = df.copy()
    other["diag_1"] = "999"
    assert apply_target_encodings(other, tables)["te_d1_los"].iloc[0] == pytest.approx(tables["te_d1_los"]["prior"], abs=1e-5)


def test_seed_average_is_one_tree_ensemble_with_onnx_parity() -> None:
    import xgboost as xgb

    from training.los import average_models, quantize_leaves, to_onnx
    rng = np.random.default_rng(2)
    x = rng.normal(size=(900, len(MODEL_FEATURE_NAMES))).astype(np.float32)
    y = 1 + 13 / (1 + np.exp(-x[:, 0] - x[:, 3])) + rng.normal(size=900)
    members = [xgb.XGBRegressor(n_estimators=300, max_depth=3, learning_rate=0.1, subsample=0.8, random_state=s,
                                early_stopping_rounds=10, n_jobs=1).fit(x[:600], y[:600], eval_set=[(x[600:], y[600:])],
                                                                         verbose=False) for s in range(3)]
    avg = np.mean([m.predict(x) for m in members], axis=0)
    merged = average_models(members)
    assert merged.get_booster().num_boosted_rounds() == sum(m.best_iteration + 1 for m in members)
    assert np.max(np.abs(merged.predict(x) - avg)) <= 1e-4
    merged = quantize_leaves(merged)
    assert np.max(np.abs(merged.predict(x) - avg)) <= 0.01
    sess = create_session(to_onnx(merged, "xgboost", x.shape[1]).SerializeToString())
    got = sess.run(None, {sess.get_inputs()[0].name: x[:200]})[0].reshape(-1)
    assert np.max(np.abs(got - merged.predict(x[:200]))) <= 1e-5


def test_point_blend_rule_takes_the_smallest_weight_under_the_mae_limit() -> None:
    from training.los import fit_median_weight, mae
    rng = np.random.default_rng(3)
    mu = rng.uniform(2, 8, 3000)
    y = np.clip(np.round(1 + rng.gamma(1.5, (mu - 1) / 1.5)), 1, 14)
    groups = np.arange(3000)
    dist = nb_distribution(mu, 1.0, 0.0)
    w, info = fit_median_weight(mu, dist, y, groups, seed=0, mae_goal=10.0, n_boot=20)
    assert w == 0.0 and info["chosen_w"] == 0.0  # a loose goal: the mean alone (best R2)
    w, info = fit_median_weight(mu, dist, y, groups, seed=0, mae_goal=0.0, n_boot=20)
    assert w == min(info["grid"], key=lambda r: r["val_mae"])["w"]  # unreachable goal: the lowest MAE
    rows = {r["w"]: r["val_mae"] for r in info["grid"]}
    target = sorted(rows.values())[len(rows) // 2] + info["val_mae_se"]
    w, info = fit_median_weight(mu, dist, y, groups, seed=0, mae_goal=target, n_boot=20)
    assert rows[w] <= info["val_mae_limit"] and all(rows[v] > info["val_mae_limit"] for v in rows if v < w)
