"""Analytics service: statistics checked by hand on small frames, the drift rule on constructed data,
and the four dashboards on the demo store (as the analyst, who sees de-identified data only)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from services.analytics import dashboards as A
from services.desk import open_desk
from services.core.errors import PermissionDenied
from tests.conftest import copy_store


# --- statistics by hand ---------------------------------------------------------------------------
def test_wilson_interval_matches_hand_computation():
    # 10/100: p = .1, z^2/n = .038416; centre = (.1 + .019208) / 1.038416; half = 1.96 sqrt(.0009 + .00009604) / 1.038416
    lo, hi = A.wilson_interval(10, 100)
    assert lo == pytest.approx(0.055229, abs=1e-5) and hi == pytest.approx(0.174367, abs=1e-5)
    lo, hi = A.wilson_interval(0, 10)  # zero events: lower bound 0, upper z^2/(n + z^2)
    assert lo == 0.0 and hi == pytest.approx(1.959964 ** 2 / (10 + 1.959964 ** 2), abs=1e-6)
    assert A.wilson_interval(0, 0) == (0.0, 1.0)


def test_confusion_matrix_at_threshold_counts_ties_as_flagged():
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.2, 0.5, 0.5, 0.1, 0.7, 0.3])
    assert A.confusion_at(y, p, 0.5) == {"tp": 2, "fn": 1, "fp": 2, "tn": 2}


def test_calibration_bins_and_ece_by_hand():
    y, p = np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])
    bins = A.calibration_bins(y, p, bins=2)
    assert [(b["n"], b["mean_predicted"], b["observed"]) for b in bins] == [(2, pytest.approx(0.15), 0.0),
                                                                           (2, pytest.approx(0.35), 1.0)]
    assert A.ece(y, p, bins=2) == pytest.approx((2 * 0.15 + 2 * 0.65) / 4)
    # chance floor shrinks as the sample grows
    rng = np.random.default_rng(0)
    assert A.ece_chance_floor(rng.uniform(0.05, 0.3, 200)) > A.ece_chance_floor(rng.uniform(0.05, 0.3, 20000))


def test_rate_rows_counts_events_per_group_in_order():
    keys = pd.Series(["b", "a", "b", "b", "a", "c"])
    events = pd.Series([1, 0, 0, 1, 1, 0])
    rows = A.rate_rows(keys, events, order=["c", "b", "a", "z"])
    assert [(r.label, r.n, r.events) for r in rows] == [("c", 1, 0), ("b", 3, 2), ("a", 2, 1)]
    assert rows[1].rate == pytest.approx(2 / 3) and (rows[1].low, rows[1].high) == A.wilson_interval(2, 3)


# --- drift rule -----------------------------------------------------------------------------------
CARD = {"roc_auc": (0.686, 0.672, 0.702), "brier": (0.0946, 0.0906, 0.0987), "ece": (0.0063, 0.0045, 0.0123)}


def test_drift_fires_when_local_auc_is_below_the_card_interval():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.02, 0.3, 3000)
    y = rng.random(3000) < 0.12          # outcome unrelated to the risk: AUC about 0.5
    v = A.drift_check(y, p, CARD)
    auc = next(c for c in v.checks if c.name == "roc_auc")
    assert v.enough and v.drift and auc.outside and auc.status == "below card interval"
    assert auc.local == pytest.approx(roc_auc_score(y, p)) and auc.local_high < 0.672
    assert "Possible drift" in v.message and "ROC AUC" in v.message


def test_no_drift_inside_the_interval_and_no_verdict_on_few_outcomes():
    rng = np.random.default_rng(2)
    p = rng.uniform(0.02, 0.4, 5000)
    y = rng.random(5000) < p             # calibrated by construction
    a, b = roc_auc_score(y, p), np.mean((p - y) ** 2)
    card = {"roc_auc": (a, a - 0.02, a + 0.02), "brier": (b, b - 0.01, b + 0.01), "ece": (0.01, 0.0, 0.03)}
    v = A.drift_check(y, p, card)
    assert v.enough and not v.drift and all(c.status == "within card interval" for c in v.checks)
    tight = A.drift_check(y, p, {**card, "ece": (0.001, 0.0, 0.002)})  # above the card, within chance here
    ece = next(c for c in tight.checks if c.name == "ece")
    assert ece.local > 0.002 and ece.status == "within chance level" and not tight.drift
    assert "above the card's interval" in tight.message and "within what chance alone reaches" in tight.message
    assert "lie within the model card's 95% intervals" not in tight.message
    few = A.drift_check(y[:150], p[:150] * 0 + 0.5, CARD)  # AUC 0.5, far outside, but only 150 outcomes
    assert not few.enough and not few.drift and few.message.startswith("Too few outcomes")
    assert all(c.status == "too few outcomes" for c in few.checks)


def test_card_metrics_reads_the_bundled_card():
    from services.risk.assessment import bundled_readmission
    m = A.card_metrics(bundled_readmission().bundle.card)
    value, low, high = m["roc_auc"]
    assert low < value < high and {"brier", "ece"} <= set(m)


# --- on the demo store ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def analyst(_demo_master, tmp_path_factory):
    store = copy_store(_demo_master, tmp_path_factory.mktemp("analytics"))
    s = open_desk(store, "analyst.demo", "wardlens-analyst")
    yield s
    s.lock()


@pytest.fixture(scope="module")
def cohort(analyst):
    return analyst.analytics.dashboards.load()


def test_load_is_deidentified_and_audited(analyst, cohort):
    internal = dict(analyst.session.db.conn.execute("SELECT id, patient_id FROM encounters").fetchall())
    assert (cohort.frame["_eid"].map(internal) == cohort.frame["patient_nbr"]).all()  # row keys, not hospital numbers
    assert {"given_name", "family_name", "birth_date"}.isdisjoint(cohort.frame.columns)
    rows = analyst.session.db.conn.execute("SELECT action, entity FROM audit_log WHERE username = 'analyst.demo'").fetchall()
    assert ("read", "analytics") in rows
    assert np.isnan(cohort.prob[~cohort.eligible]).all() and np.isfinite(cohort.prob[cohort.eligible]).all()


def test_readmission_dashboard_matches_the_store(analyst, cohort):
    d = A.readmission_dashboard(cohort)
    n, k = analyst.session.db.conn.execute(
        "SELECT count(*), sum(readmitted = '<30') FROM encounters WHERE status = 'discharged' AND readmitted IN "
        "('NO', '>30', '<30') AND coalesce(discharge_disposition_id, 1) NOT IN (2, 10, 11, 13, 14, 19, 20, 21, 29)").fetchone()
    assert (d.overall.n, d.overall.events) == (n, k)
    assert sum(r.n for r in d.by_ward.rows) == n and sum(r.events for r in d.by_ward.rows) == k
    assert len(d.by_month.rows) <= 12 and all(r.low <= r.rate <= r.high for r in d.by_dx.rows)
    inpatients = analyst.session.db.conn.execute("SELECT count(*) FROM encounters WHERE status = 'inpatient' AND "
                                         "coalesce(discharge_disposition_id, 1) NOT IN (2, 10, 11, 13, 14, 19, 20, 21, 29)").fetchone()[0]
    assert d.risk.counts.sum() == inpatients and "inpatients" in d.risk.caption


def test_performance_dashboard_on_known_outcomes(cohort):
    p = A.performance_dashboard(cohort)
    y, prob = cohort.readmitted[cohort.known], cohort.prob[cohort.known]
    assert p.n == len(y) and p.positives == y.sum() and sum(p.confusion.values()) == p.n
    assert p.auc == pytest.approx(roc_auc_score(y, prob)) and p.brier == pytest.approx(np.mean((prob - y) ** 2))
    assert p.confusion == A.confusion_at(y, prob, cohort.threshold) and len(p.calibration) == 10
    assert p.fpr[0] == 0 and p.tpr[-1] == 1 and {c.name for c in p.drift.checks} == {"roc_auc", "brier", "ece"}
    assert "model card" in p.roc_caption and p.drift.message


def test_los_and_exploration_dashboards(cohort):
    los = A.los_dashboard(cohort)
    assert los.n == int((cohort.frame["status"] == "discharged").sum()) == los.actual_counts.sum()
    assert 0 < los.mae < 5 and 0 <= los.coverage <= 1 and los.expected_counts.sum() == pytest.approx(los.n)
    e = A.exploration_dashboard(cohort)
    assert e.missing.labels[0] == "weight" and (e.missing.values > 0).all()
    assert e.correlation.matrix.shape == (len(A.NUMERIC),) * 2 and np.allclose(np.diag(e.correlation.matrix), 1)
    assert len(e.anomalies) == 10 and all(a.why for a in e.anomalies)
    assert len(e.importance.labels) == 12 and (np.diff(e.importance.values) <= 0).all()
    assert "k = " in e.clusters.caption and "no numeric BMI or glucose" in e.clusters.caption
    assert len(set(e.clusters.groups)) == len(e.clusters.group_names) >= 2


def test_chart_export_needs_the_export_permission(_demo_master, tmp_path):
    store = copy_store(_demo_master, tmp_path / "s")
    nurse = open_desk(store, "nurse.demo", "wardlens-nurse")
    try:
        with pytest.raises(PermissionDenied):
            nurse.analytics.dashboards.require_export()
    finally:
        nurse.lock()
