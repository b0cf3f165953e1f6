"""Occupancy forecast maths against hand-computed cases, and staffing from nurse ratios."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from scipy import stats

from services.capacity.forecast import (StaffingRatios, admissions_present_mean, forecast_ward, nurses_for,
                               occupancy_pmf, poisson_binomial_pmf, staff_needed, weekday_admission_rates)

MONDAY = dt.date(2026, 11, 23)


def test_poisson_binomial_hand_case() -> None:
    # p = 0.5, 0.2: P(0)=0.4, P(1)=0.5*0.8+0.5*0.2=0.5, P(2)=0.1
    assert np.allclose(poisson_binomial_pmf([0.5, 0.2]), [0.4, 0.5, 0.1])


def test_poisson_binomial_matches_binomial() -> None:
    assert np.allclose(poisson_binomial_pmf([0.3] * 10), stats.binom.pmf(np.arange(11), 10, 0.3))


def test_occupancy_pmf_convolves_poisson() -> None:
    pmf = occupancy_pmf([1.0, 0.5], 0.7)
    # 1 + Bernoulli(0.5) + Poisson(0.7)
    k = np.arange(len(pmf))
    expected = 0.5 * stats.poisson.pmf(k - 1, 0.7) + 0.5 * stats.poisson.pmf(k - 2, 0.7)
    assert np.allclose(pmf, expected, atol=1e-12)
    assert pmf.sum() == pytest.approx(1.0)


def test_forecast_hand_computed() -> None:
    # Two inpatients, 3-day horizon; admissions 1/day on every weekday, every stay exactly 1 day
    # (arrive day j, present on day j only).
    presence = [[1.0, 0.5, 0.25], [1.0, 1.0, 0.0]]
    los = [1.0] + [0.0] * 13
    f = forecast_ward("A", 2, presence, {w: 1.0 for w in range(7)}, los, MONDAY, horizon=3, band=0.8)
    d0, d1, d2 = f.days
    assert (d0.mean, d0.variance, d0.low, d0.high) == (2.0, 0.0, 2, 2)
    assert d0.p_over_capacity == pytest.approx(0.0) and not d0.at_risk
    # day 1: Bern(0.5) + 1 + Poisson(1): mean 2.5, var 0.25 + 1
    assert d1.mean == pytest.approx(2.5) and d1.variance == pytest.approx(1.25)
    p_le2 = 0.5 * stats.poisson.cdf(1, 1.0) + 0.5 * stats.poisson.cdf(0, 1.0)
    assert d1.p_over_capacity == pytest.approx(1 - p_le2)
    assert d1.at_risk
    # day 2: Bern(0.25) + Poisson(1) (the day-1 arrival left after 1 day)
    assert d2.mean == pytest.approx(1.25) and d2.variance == pytest.approx(0.1875 + 1.0)
    assert d2.date == MONDAY + dt.timedelta(days=2)
    assert f.days_at_risk == [d.date for d in f.days if d.at_risk]


def test_admissions_thinning_by_weekday() -> None:
    # only Tuesdays (weekday 1) admit 2 patients, stay 1 or 2 days with equal chance
    los = [0.5, 0.5] + [0.0] * 12
    m = admissions_present_mean({1: 2.0}, los, MONDAY, horizon=4)
    assert np.allclose(m, [0.0, 2.0, 1.0, 0.0])


def test_band_quantiles_bracket_the_mean() -> None:
    rng = np.random.default_rng(1)
    presence = rng.random((30, 14))
    presence[:, 0] = 1.0
    f = forecast_ward("B", 25, presence, {w: 3.0 for w in range(7)}, [0.2] * 5 + [0.0] * 9, MONDAY)
    for d in f.days:
        assert d.low <= d.mean <= d.high + 1
        assert 0.0 <= d.p_over_capacity <= 1.0


def test_weekday_rates_count_empty_days() -> None:
    # two weeks from Monday; 3 admissions on the first Monday, none on the second
    dates = [MONDAY] * 3 + [MONDAY + dt.timedelta(days=1)]
    rates = weekday_admission_rates(dates, start=MONDAY, end=MONDAY + dt.timedelta(days=13))
    assert rates[0] == pytest.approx(1.5) and rates[1] == pytest.approx(0.5) and rates[6] == 0.0
    assert weekday_admission_rates([]) == {w: 0.0 for w in range(7)}


def test_staffing_ceil_per_shift() -> None:
    assert nurses_for(8.0, 4.0) == 2 and nurses_for(8.01, 4.0) == 3 and nurses_for(0.0, 4.0) == 0
    f = forecast_ward("ICU", 10, [[1.0] * 2] * 5, {}, [1.0] + [0.0] * 13, MONDAY, horizon=2)
    ratios = StaffingRatios(default={"day": 4.0}, per_ward={"ICU": {"day": 2.0, "night": 3.0}})
    rows = staff_needed(f, ratios)
    assert [(r.shift, r.nurses_for_mean, r.nurses_for_high) for r in rows[:2]] == [("day", 3, 3), ("night", 2, 2)]
    assert len(rows) == 4 and math.isclose(rows[0].patients_per_nurse, 2.0)


def test_peak_is_the_busiest_day_of_the_whole_forecast() -> None:
    """One peak for the chart and the ward report: over all 14 days, not the first 7 (the report's old rule)."""
    from services.capacity.forecast import DayForecast, WardForecast
    means = [20.0, 19.0, 18.5, 18.0, 18.0, 18.2, 19.0, 19.5, 21.04, 22.3, 22.34, 21.0, 20.0, 19.0]
    days = [DayForecast(MONDAY + dt.timedelta(days=i), i, m, 1.0, int(m) - 3, int(m) + 3, 24, 0.0, False)
            for i, m in enumerate(means)]
    f = WardForecast("A", 24, 0.8, days)
    assert f.peak is days[9]  # 22.3 and 22.34 show as the same figure: the earlier day
    assert f.peak_text == "22.3 beds on Wed 02 Dec (80% band 19–25)"
    assert max(days[:7], key=lambda d: d.mean).mean == 20.0 != f.peak.mean
    assert WardForecast("B", 10, 0.8, []).peak is None
    known = [DayForecast(MONDAY, 0, 24.0, 0.0, 24, 24, 24, 0.0, False), *days[1:]]
    assert WardForecast("S", 24, 0.8, known).peak_text == "24 beds on Mon 23 Nov"   # today's count: no band


def test_waiting_admissions_and_usual_arrivals_enter_the_forecast_as_its_second_part(desks):
    """A full ward with admissions waiting does not 'empty': the forecast is today's patients still in (falling
    as they go home) plus the arrivals (the ward's usual admissions and its share of the waiting list)."""
    import datetime as dt
    admin = desks("admin")
    census = admin.capacity.census
    today = dt.date.today()
    inpatients = census.inpatients(today)
    before = {f.ward: f for f in census.forecasts(today, inpatients)}
    for f in before.values():
        assert f.days[0].staying == pytest.approx(sum(1 for p in inpatients if p.ward == f.ward))
        assert all(d.mean == pytest.approx(d.staying + d.arrivals) for d in f.days)
        assert f.days[0].arrivals == 0.0 and f.days[-1].staying <= f.days[0].staying
    waiting = census.waiting_by_ward()
    assert sum(waiting.values()) == pytest.approx(admin.session.db.conn.execute(
        "SELECT count(*) FROM waiting_admissions WHERE status = 'waiting'").fetchone()[0])
    surgery = admin.capacity.wards.find("Surgery")
    with admin.session.db.transaction() as c:   # ten more surgical patients waiting for a bed
        pid = c.execute("SELECT id FROM patients LIMIT 1").fetchone()[0]
        c.executemany("INSERT INTO waiting_admissions (patient_id, requested_at, ward_type, needs_isolation, note) "
                      "VALUES (?, ?, 'surgical', 0, '')", [(pid, f"{today} 08:00")] * 10)
    after = {f.ward: f for f in census.forecasts(today, inpatients)}
    assert census.waiting_by_ward()[surgery.id] == pytest.approx(waiting.get(surgery.id, 0.0) + 10)
    assert after["Surgery"].days[1].arrivals == pytest.approx(before["Surgery"].days[1].arrivals + 10)
    assert after["Surgery"].days[1].mean > before["Surgery"].days[1].mean + 9
    assert after["Medicine A"].days[1].mean == pytest.approx(before["Medicine A"].days[1].mean)
