"""Census, forecast and bed placement on the demo store (services), and the Beds & Staff page."""
from __future__ import annotations

import re

import datetime as dt

import numpy as np
import pytest

from tests.conftest import identities

from services.desk import open_desk
from services.capacity.beds import BedService
from services.capacity.census import CensusService
from services.core.errors import PermissionDenied, ValidationError

NURSE = ("nurse.demo", "wardlens-nurse")


def test_inpatient_estimates_are_consistent(demo_store):
    s = open_desk(demo_store, *NURSE)
    inp = s.capacity.census.inpatients()
    assert len(inp) > 50
    today = dt.date.today()
    for p in inp:
        assert p.los_low <= p.los_high and p.los_low >= min(p.days_in + 1, 15)
        assert p.discharge_latest >= today or p.days_in >= 14
        assert p.presence[0] == 1.0 and all(a >= b - 1e-12 for a, b in zip(p.presence, p.presence[1:]))
        assert 0.0 <= p.p_discharge_48h <= 1.0
    s.lock()


def test_forecast_day_zero_is_todays_census_and_capacity_is_the_wards(demo_store):
    s = open_desk(demo_store, *NURSE)
    census = s.capacity.census
    inp = census.inpatients()
    for f in census.forecasts(inpatients=inp):
        here = sum(1 for p in inp if p.ward == f.ward)
        assert f.days[0].mean == pytest.approx(here) and f.days[0].low == f.days[0].high == here
        assert len(f.days) == 14 and all(d.low <= d.mean + 1e-9 and d.mean <= d.high + 1 for d in f.days)
        staff = census.staffing(f)
        assert {x.shift for x in staff} == {"day", "evening", "night"}
    s.lock()


def test_weekday_rates_come_from_the_store_history(demo_store):
    s = open_desk(demo_store, *NURSE)
    wid = s.session.db.conn.execute("SELECT id FROM wards WHERE name = 'Medicine A'").fetchone()[0]
    today = dt.date.today()
    rates = s.capacity.census.weekday_rates(wid, today)
    start = today - dt.timedelta(days=90)
    n = s.session.db.conn.execute("SELECT count(*) FROM encounters WHERE ward_id = ? AND admit_time >= ? AND admit_time < ?",
                          (wid, start.isoformat(), today.isoformat())).fetchone()[0]
    assert sum(rates.values()) * 90 / 7 == pytest.approx(n, rel=0.1)
    dist = s.capacity.census.admission_los_distribution(wid, today)
    assert dist.shape == (14,) and np.isclose(dist.sum(), 1.0)
    s.lock()


def test_recommendations_respect_constraints_and_placement_is_checked_and_audited(demo_store):
    s = open_desk(demo_store, *NURSE)
    beds = s.capacity.beds
    result, waiting, free = beds.recommend()
    by_id = {str(b.id): b for b in free}
    wait = {str(w.id): w for w in waiting}
    for a in result.assignments:
        b, w = by_id[a.bed_id], wait[a.patient_id]
        assert b.ward_type == w.ward_type and (b.isolation or not w.needs_isolation)
        assert b.sex_bay in (None, w.sex)
    assert len(result.assignments) + len(result.unassigned) == len(waiting)
    occupied = s.session.db.conn.execute("SELECT bed_id FROM encounters WHERE status = 'inpatient' AND bed_id IS NOT NULL").fetchone()[0]
    with pytest.raises(ValidationError, match="occupied"):
        beds.place(waiting[0].id, occupied)
    assert result.assignments, "the demo store has free beds that fit someone waiting"
    a = result.assignments[0]
    enc = beds.place(int(a.patient_id), int(a.bed_id))
    row = s.session.db.conn.execute("SELECT status, bed_id FROM encounters WHERE id = ?", (enc,)).fetchone()
    assert row == ("inpatient", int(a.bed_id))
    assert s.session.db.conn.execute("SELECT count(*) FROM audit_log WHERE action = 'bed_assigned'").fetchone()[0] == 1
    with pytest.raises(ValidationError, match="no longer waiting"):
        beds.place(int(a.patient_id), int(a.bed_id))
    s.lock()
    analyst = open_desk(demo_store, "analyst.demo", "wardlens-analyst")
    with pytest.raises(PermissionDenied):
        analyst.capacity.beds.place(waiting[-1].id, free[0].id)
    analyst.lock()


def test_beds_page_offscreen(qtbot, owner, qt_settings, demo_store):
    from ui.beds_view import BedsView
    from viewmodels.background import BackgroundRunner
    from viewmodels.beds_vm import BedsViewModel
    s = open_desk(demo_store, *NURSE)
    vm = BedsViewModel(s, BackgroundRunner(owner), owner)
    view = BedsView(vm)
    qtbot.addWidget(view)
    with qtbot.waitSignal(vm.loaded, timeout=30_000):
        vm.refresh()
    assert view.ward.count() == 5
    vm.select_ward("Medicine A")
    assert vm.forecast.ward == "Medicine A"
    assert len(view.chart.mean.getData()[0]) == 14
    assert vm.inpatients_model.rowCount() > 0 and vm.staff_model.rowCount() == 14
    assert view.waiting.rowCount() == len(vm.snapshot.recommendations) > 0
    # picking a ward in the combo, including one marked "⚠" for possible overflow, shows that ward
    for i in range(view.ward.count()):
        view.ward.setCurrentIndex(i)
        assert vm.forecast is not None and vm.forecast.ward == view.ward.itemData(i)
        assert f"{view.ward.itemData(i)}: next 14 days" in view.chart.getPlotItem().titleLabel.text
        assert vm.staff_model.rowCount() == 14
    assert any("⚠" in view.ward.itemText(i) for i in range(view.ward.count()))
    s.lock()


def test_ward_report_saved_from_the_beds_page(qtbot, owner, demo_store, tmp_path):
    from viewmodels.background import BackgroundRunner
    from viewmodels.beds_vm import BedsViewModel
    s = open_desk(demo_store, *NURSE)
    vm = BedsViewModel(s, BackgroundRunner(owner), owner)
    with qtbot.waitSignal(vm.loaded, timeout=30_000):
        vm.refresh()
    vm.select_ward("Surgery")
    out = tmp_path / "ward.pdf"
    with qtbot.waitSignal(vm.statusChanged, timeout=30_000, check_params_cb=lambda t: "saved" in t):
        vm.save_ward_report(str(out))
    assert out.read_bytes().startswith(b"%PDF")
    s.lock()


def test_no_demo_admission_lies_in_the_future():
    """Inpatients admitted 'today' get an admission time before now, whatever the hour of the build."""
    import datetime as dt

    from services.records.demo import demo_frame
    frame = demo_frame()
    admits = [dt.datetime.fromisoformat(a) for a in frame["admit_time"] if a]
    assert admits and max(admits) <= dt.datetime.now()
    assert any(a.date() == dt.date.today() for a in admits) or dt.datetime.now().hour < 1  # today's admissions exist


def test_an_analyst_sees_pseudonyms_not_hospital_numbers_on_the_bed_pages(demo_store):
    s = open_desk(demo_store, "analyst.demo", "wardlens-analyst")
    try:
        numbers = {who.mrn for who in identities(demo_store).values()}
        inp = s.capacity.census.inpatients()
        assert inp and all(e.mrn.startswith("P-") and e.patient_label == f"Patient {e.mrn}" for e in inp)
        waiting = s.capacity.beds.waiting()
        assert waiting and all(w.patient_label.startswith("Patient P-") for w in waiting)
        refs = {e.mrn for e in inp} | {w.patient_label.removeprefix("Patient ") for w in waiting}
        assert all(re.fullmatch(r"P-[0-9a-f]{16}", r) for r in refs) and not refs & numbers
    finally:
        s.lock()


def test_expected_discharge_is_the_median_day_of_the_remaining_stay():
    from services.capacity.census import _median_stay
    likely_tomorrow = [0.6, 0.2, 0.1, 0.1] + [0.0] * 10
    assert _median_stay(likely_tomorrow, 0) == 1             # more likely than not home after one night
    skewed = [0.15, 0.2, 0.2, 0.12, 0.08, 0.07, 0.06, 0.04, 0.03, 0.02, 0.01, 0.01, 0.005, 0.005]
    mean = sum((i + 1) * p for i, p in enumerate(skewed)) / sum(skewed)
    assert _median_stay(skewed, 0) == 3 and round(mean) == 4  # the rounded mean lies past the likeliest days
    assert _median_stay(skewed, 5) == 7                      # cut to stays longer than 5 days, then the median
    assert _median_stay(skewed, 20) == 21                    # past the model's range: never a day in the past


def test_due_within_48_hours_agrees_with_the_chance_of_going_home(desks):
    import datetime as dt
    dr = desks("dr.demo")
    today = dt.date.today()
    inpatients = dr.capacity.census.inpatients(today)
    for p in inpatients:
        if p.expected_discharge is None:
            continue
        due = p.expected_discharge <= today + dt.timedelta(days=2)
        assert due == (p.p_discharge_48h >= 0.5 - 1e-9), (p.mrn, p.expected_discharge, p.p_discharge_48h)
    rows = dr.risk.worklist.discharge_worklist(today=today, inpatients=inpatients)
    assert rows and all(r.inpatient.p_discharge_48h >= 0.5 - 1e-9 for r in rows)
