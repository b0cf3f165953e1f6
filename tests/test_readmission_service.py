"""ReadmissionService and score_readmission_csv on the committed bundle, with constructed encounters."""
from __future__ import annotations

import csv
import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.records.uci_table import normalise_uci_frame
from services.risk.features import build_features
from services.inference.onnx_runtime import ModelIntegrityError, clear_cache
from services.risk.readmission import BUNDLE_DIR, ReadmissionInputError, ReadmissionService, score_readmission_csv
from services.records.uci_schema import ENCOUNTER_COLUMNS
from tests.test_readmission_helpers import make_row

if not (BUNDLE_DIR / "model.onnx").exists():
    pytest.skip("readmission bundle not built yet (python -m training readmission)", allow_module_level=True)


@pytest.fixture(scope="module")
def service() -> ReadmissionService:
    return ReadmissionService()


def _rows() -> list[dict[str, str]]:
    return [
        make_row(10, 1, readmitted="<30", number_inpatient=1),
        make_row(20, 1, readmitted="", number_inpatient=2, insulin="Up", time_in_hospital=8),
        make_row(30, 2, discharge_disposition_id=11),  # died: not eligible
        make_row(40, 3, age="[40-50)", gender="Male", diag_1="V57"),
    ]


def test_score_frame_probabilities_bands_and_factors(service: ReadmissionService) -> None:
    df = pd.DataFrame(_rows())
    preds = service.score_frame(df)
    assert [p.encounter_id for p in preds] == [10, 20, 30, 40]
    dead = preds[2]
    assert not dead.eligible and dead.probability is None and dead.band == "not eligible"
    for p in (preds[0], preds[1], preds[3]):
        assert 0 < p.probability < 1 and p.band in {name for name, _ in service.bands}
        assert len(p.factors) <= 3 and all(f.contribution > 0 and f.text for f in p.factors)
        assert p.logit == pytest.approx(np.log(p.probability / (1 - p.probability)), abs=1e-4)
    # only the rows asked for are scored, history still counts
    only = service.score_frame(df, [20])
    assert len(only) == 1 and only[0].probability == pytest.approx(preds[1].probability)


def test_contributions_sum_to_calibrated_logit(service: ReadmissionService) -> None:
    x = build_features(normalise_uci_frame(pd.DataFrame(_rows()))).to_numpy(np.float32)
    contrib, intercept = service.explain_matrix(x)
    prob, margin = service.predict_matrix(x)
    logit = service.cal_a * margin + service.cal_b
    assert np.max(np.abs(contrib.sum(1) + intercept - logit)) < 1e-5
    assert np.max(np.abs(1 / (1 + np.exp(-logit)) - prob)) < 1e-5


def test_single_encounter_with_history(service: ReadmissionService) -> None:
    rows = _rows()
    history = pd.DataFrame(rows[:1])
    p = service.score_encounter(rows[1], history=history)
    full = service.score_frame(pd.DataFrame(rows[:2]), [20])[0]
    assert p.probability == pytest.approx(full.probability)
    alone = service.score_encounter(rows[1])
    assert alone.probability != pytest.approx(full.probability)  # the earlier <30 readmission matters


def test_bands_come_from_the_bundle(service: ReadmissionService) -> None:
    names = [n for n, _ in service.bands]
    assert names == ["low", "medium", "high"]
    assert service.band(0.0) == "low" and service.band(0.999) == "high"
    assert service.bands[-1][1] == pytest.approx(service.threshold)


def _write_csv(path: Path, rows: list[list[str]], header: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_score_csv_reports_bad_rows_and_writes_every_row(service: ReadmissionService, tmp_path: Path) -> None:
    header = [c for c in ENCOUNTER_COLUMNS if c != "readmitted"]  # readmitted is optional
    good = [[r[c] for c in header] for r in _rows()]
    bad_int = [make_row(50, 4, admission_type_id="x")[c] for c in header]
    bad_age = [make_row(60, 4, age="[200-210)")[c] for c in header]
    dup = [make_row(10, 9)[c] for c in header]
    short = ["70", "5"]
    rows = good[:2] + [bad_int] + good[2:] + [bad_age, dup, short]
    src = tmp_path / "in.csv.gz"
    _write_csv(tmp_path / "plain.csv", rows, header)
    src.write_bytes(gzip.compress((tmp_path / "plain.csv").read_bytes()))
    out = tmp_path / "out.csv"
    report = score_readmission_csv(src, out, service)
    assert report["rows"] == 8 and report["scored"] == 3 and report["not_eligible"] == 1
    assert [e["line"] for e in report["errors"]] == [4, 7, 8, 9]
    assert "admission_type_id" in report["errors"][0]["reason"] and "duplicate" in report["errors"][2]["reason"]
    assert "expected" in report["errors"][3]["reason"] and report["messages"][0].startswith("line 4:")
    res = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert len(res) == 8 and list(res["line"].astype(int)) == [2, 3, 4, 5, 6, 7, 8, 9]
    ok = res[res["status"] == "ok"]
    assert (ok["risk"].astype(float).between(0, 1)).all() and (ok["factor_1"] != "").all()
    assert (ok["lace"] != "").all() and (ok["hospital"] != "").all()
    dead = res[res["encounter_id"] == "30"].iloc[0]
    assert dead["status"] == "not eligible" and dead["risk"] == "" and dead["lace"] != ""
    assert (res[res["status"] == "error"]["risk"] == "").all()


def test_score_csv_file_level_errors(tmp_path: Path) -> None:
    header = [c for c in ENCOUNTER_COLUMNS if c not in ("readmitted", "age")]
    _write_csv(tmp_path / "nocol.csv", [], header)
    with pytest.raises(ReadmissionInputError, match="missing columns: age"):
        score_readmission_csv(tmp_path / "nocol.csv", tmp_path / "o.csv")
    (tmp_path / "latin.csv").write_bytes(",".join(ENCOUNTER_COLUMNS).encode() + b"\n\xe9\xe8\n")
    with pytest.raises(ReadmissionInputError, match="UTF-8"):
        score_readmission_csv(tmp_path / "latin.csv", tmp_path / "o.csv")
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(ReadmissionInputError, match="empty"):
        score_readmission_csv(tmp_path / "empty.csv", tmp_path / "o.csv")
    with pytest.raises(ReadmissionInputError, match="no such file"):
        score_readmission_csv(tmp_path / "nope.csv", tmp_path / "o.csv")


def test_tampered_sidecar_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "readmission"
    shutil.copytree(BUNDLE_DIR, copy)
    meta = copy / "meta.json"
    meta.write_text(meta.read_text(encoding="utf-8").replace('"high"', '"HIGH"'), encoding="utf-8")
    clear_cache()
    with pytest.raises(ModelIntegrityError):
        ReadmissionService(copy)
