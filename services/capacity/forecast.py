"""Per-ward 14-day occupancy forecast with an uncertainty band, and staff needed per shift.

Pure maths, no store and no Qt. Day 0 is today's census.

Occupancy on day d = (current inpatients still present) + (new admissions still present):
- each current inpatient i is present on day d with probability s_i(d) (their remaining-stay survival
  curve), independently: a Poisson-binomial count;
- admissions arrive as a Poisson process with a rate per weekday; an arrival on day j (1 <= j <= d)
  is present on day d iff its stay L > d - j. Thinning a Poisson count keeps it Poisson, so the new
  patients present on day d are Poisson with mean sum_j rate(j) * P(L > d - j).
The two parts are independent, so the exact distribution is the convolution of a Poisson-binomial
and a Poisson pmf; the band and P(occupancy > capacity) are read from it exactly.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from services.site.settings import DEFAULT_STAFFING  # the one default, also what `config` shows

HORIZON_DAYS = 14


@dataclass(frozen=True)
class DayForecast:
    date: dt.date
    day_index: int
    mean: float
    variance: float
    low: int            # lower band quantile of occupancy
    high: int           # upper band quantile of occupancy
    capacity: int
    p_over_capacity: float
    at_risk: bool       # high > capacity or p_over_capacity >= risk threshold
    staying: float = 0.0    # of the mean: today's patients still in (discharges take it down)
    arrivals: float = 0.0   # of the mean: new admissions present that day (the ward's usual arrivals, the waiting list)


@dataclass(frozen=True)
class WardForecast:
    ward: str
    capacity: int
    band: float
    days: list[DayForecast]

    @property
    def days_at_risk(self) -> list[dt.date]:
        return [d.date for d in self.days if d.at_risk]

    @property
    def peak(self) -> DayForecast | None:
        """The day of the whole forecast with the highest expected occupancy (the earliest of equal days).

        The one peak every view states: the Beds & Staff chart marks it and the ward report prints it, so the
        two always agree (the report once took the busiest of the first 7 days while the chart showed 14).
        """
        return max(self.days, key=lambda d: (round(d.mean, 1), -d.day_index)) if self.days else None

    @property
    def peak_text(self) -> str:
        """"28.2 beds on Tue 01 Dec (80% band 21–35)": the peak in words, for the chart and the report."""
        p = self.peak
        if p is None:
            return "no forecast"
        if p.low == p.high:   # no spread (today's known census, say): a count, not an estimate with a band
            return f"{p.low} beds on {p.date:%a %d %b}"
        return f"{p.mean:.1f} beds on {p.date:%a %d %b} (80% band {p.low}–{p.high})"


@dataclass(frozen=True)
class ShiftStaffing:
    date: dt.date
    shift: str
    patients_per_nurse: float
    nurses_for_mean: int
    nurses_for_high: int

    @property
    def nurses_text(self) -> str:
        """ "3" or "3–4": nurses for the expected census – for the upper end of its 80% band (page and report)."""
        if self.nurses_for_mean == self.nurses_for_high:
            return str(self.nurses_for_mean)
        return f"{self.nurses_for_mean}–{self.nurses_for_high}"


@dataclass
class StaffingRatios:
    """Patients per nurse, per ward and shift; `default` applies to wards not listed."""

    default: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_STAFFING))
    per_ward: dict[str, dict[str, float]] = field(default_factory=dict)

    def for_ward(self, ward: str) -> dict[str, float]:
        return self.per_ward.get(ward, self.default)


# ---------------------------------------------------------------- distributions
def poisson_binomial_pmf(probs: Sequence[float] | np.ndarray) -> np.ndarray:
    """Exact pmf of a sum of independent Bernoullis (dynamic programming, O(n^2))."""
    pmf = np.array([1.0])
    for p in np.clip(np.asarray(probs, dtype=np.float64), 0.0, 1.0):
        nxt = np.zeros(len(pmf) + 1)
        nxt[:-1] += pmf * (1.0 - p)
        nxt[1:] += pmf * p
        pmf = nxt
    return pmf


def occupancy_pmf(present_probs: Sequence[float] | np.ndarray, poisson_mean: float, tail: float = 1e-12) -> np.ndarray:
    """pmf of Poisson-binomial(present_probs) + Poisson(poisson_mean), independent."""
    pb = poisson_binomial_pmf(present_probs)
    if poisson_mean <= 0:
        return pb
    from scipy import stats  # here, not at import: scipy.stats costs ~0.6 s of application start-up

    kmax = int(stats.poisson.isf(tail, poisson_mean)) + 1
    po = stats.poisson.pmf(np.arange(kmax + 1), poisson_mean)
    return np.convolve(pb, po)


def pmf_quantile(pmf: np.ndarray, q: float) -> int:
    """Smallest k with P(X <= k) >= q."""
    cdf = np.cumsum(pmf)
    return int(min(np.searchsorted(cdf, q - 1e-12), len(pmf) - 1))


# ---------------------------------------------------------------- admissions
def weekday_admission_rates(admission_dates: Iterable[dt.date], start: dt.date | None = None,
                            end: dt.date | None = None) -> dict[int, float]:
    """Mean admissions per calendar day for each weekday (0 = Monday), over [start, end].

    Days with no admission count as zeros: the divisor is the number of such weekdays in the span,
    not the number of days that happened to have admissions.
    """
    dates = [d.date() if isinstance(d, dt.datetime) else d for d in admission_dates]
    if not dates:
        return {w: 0.0 for w in range(7)}
    start = start or min(dates)
    end = end or max(dates)
    if end < start:
        raise ValueError("end before start")
    counts = [0] * 7
    for d in dates:
        if start <= d <= end:
            counts[d.weekday()] += 1
    n_days = [0] * 7
    span = (end - start).days + 1
    for k in range(7):
        first = (k - start.weekday()) % 7  # offset of the first weekday k in the span
        n_days[k] = 0 if first >= span else 1 + (span - 1 - first) // 7
    return {w: (counts[w] / n_days[w] if n_days[w] else 0.0) for w in range(7)}


def admissions_present_mean(rates_by_weekday: Mapping[int, float], los_dist: Sequence[float] | np.ndarray,
                            start: dt.date, horizon: int = HORIZON_DAYS) -> np.ndarray:
    """Expected number of NEW patients (arriving on days 1..d) present on each day d = 0..horizon-1.

    los_dist[k-1] = P(stay = k days); a patient arriving on day j occupies a bed on days j..j+L-1.
    """
    p = np.asarray(los_dist, dtype=np.float64)
    if not np.isfinite(p).all() or p.sum() <= 0:   # a new site with no finished stay: no usual arrivals known
        return np.zeros(horizon)
    p = p / p.sum()
    surv = 1.0 - np.concatenate([[0.0], np.cumsum(p)])  # surv[m] = P(L > m)
    surv = np.clip(surv, 0.0, 1.0)
    out = np.zeros(horizon)
    for d in range(horizon):
        for j in range(1, d + 1):
            m = d - j
            lam = float(rates_by_weekday.get((start + dt.timedelta(days=j)).weekday(), 0.0))
            out[d] += lam * (surv[m] if m < len(surv) else 0.0)
    return out


# ---------------------------------------------------------------- forecast
def forecast_ward(ward: str, capacity: int, inpatient_presence: Sequence[Sequence[float]] | np.ndarray,
                  rates_by_weekday: Mapping[int, float], admission_los_dist: Sequence[float] | np.ndarray,
                  start: dt.date, horizon: int = HORIZON_DAYS, band: float = 0.80,
                  risk_threshold: float = 0.10, waiting: float = 0.0) -> WardForecast:
    """Occupancy forecast for one ward.

    inpatient_presence: (n_patients, horizon) P(patient present on day d), d = 0..horizon-1 (day 0 is
    usually 1: they are in a bed now). Build row i from services.capacity.los.remaining_stay_survival:
    [1, *remaining_stay_survival(dist_i, days_so_far_i, horizon - 1)].
    band: central probability of the [low, high] band (0.80 -> 10th and 90th percentiles).
    A day is at risk when high > capacity or P(occupancy > capacity) >= risk_threshold.
    waiting: admissions on the waiting list expected on this ward; they are tomorrow's first arrivals (as beds free):
    the ward's usual arrivals already include patients from the list, so only those beyond that day's usual number
    add, and they stay as the ward's new admissions do.
    """
    pres = np.asarray(inpatient_presence, dtype=np.float64).reshape(-1, horizon) if len(inpatient_presence) else np.zeros((0, horizon))
    if pres.shape[1] != horizon:
        raise ValueError(f"inpatient_presence needs {horizon} columns")
    new_mean = admissions_present_mean(rates_by_weekday, admission_los_dist, start, horizon)
    if waiting > 0:
        # the waiting list is tomorrow's first arrivals: beyond the ward's usual arrivals of that day, the rest adds
        usual = float(rates_by_weekday.get((start + dt.timedelta(days=1)).weekday(), 0.0))
        extra = max(0.0, waiting - usual)
        p_los = np.asarray(admission_los_dist, dtype=np.float64)
        if np.isfinite(p_los).all() and p_los.sum() > 0:
            surv = np.clip(1.0 - np.concatenate([[0.0], np.cumsum(p_los / p_los.sum())]), 0.0, 1.0)   # P(L > m)
        else:   # no stay on record to say how long they stay: they stay (the cautious reading for beds)
            surv = np.ones(horizon)
        new_mean = new_mean + extra * np.array([surv[d - 1] if 1 <= d <= len(surv) else 0.0 for d in range(horizon)])
    q_lo, q_hi = (1.0 - band) / 2.0, 1.0 - (1.0 - band) / 2.0
    days = []
    for d in range(horizon):
        p = np.clip(pres[:, d], 0.0, 1.0)
        mean = float(p.sum() + new_mean[d])
        var = float((p * (1.0 - p)).sum() + new_mean[d])  # Poisson variance = its mean
        pmf = occupancy_pmf(p, float(new_mean[d]))
        p_over = float(pmf[capacity + 1:].sum()) if capacity + 1 < len(pmf) else 0.0
        lo, hi = pmf_quantile(pmf, q_lo), pmf_quantile(pmf, q_hi)
        days.append(DayForecast(start + dt.timedelta(days=d), d, mean, var, lo, hi, capacity, p_over,
                                hi > capacity or p_over >= risk_threshold, float(p.sum()), float(new_mean[d])))
    return WardForecast(ward, capacity, band, days)


def staffing_by_date(staffing: Iterable[ShiftStaffing]) -> list[tuple[dt.date, dict[str, ShiftStaffing]]]:
    """Shifts grouped by date, earliest first: the rows of the staffing table (Beds & Staff and the ward report)."""
    by_date: dict[dt.date, dict[str, ShiftStaffing]] = {}
    for s in staffing:
        by_date.setdefault(s.date, {})[s.shift] = s
    return sorted(by_date.items())


def staff_needed(forecast: WardForecast, ratios: StaffingRatios) -> list[ShiftStaffing]:
    """Nurses per shift: ceil(occupancy / patients-per-nurse), for the mean and for the upper band."""
    out = []
    for day in forecast.days:
        for shift, ratio in ratios.for_ward(forecast.ward).items():
            if ratio <= 0:
                raise ValueError(f"patients per nurse must be > 0 (ward {forecast.ward}, shift {shift})")
            out.append(ShiftStaffing(day.date, shift, ratio, nurses_for(day.mean, ratio), nurses_for(day.high, ratio)))
    return out


def nurses_for(occupancy: float, patients_per_nurse: float) -> int:
    # round away float noise first so that 8.0000000001 / 4 does not ask for a third nurse
    return int(math.ceil(round(occupancy / patients_per_nurse, 9)))
