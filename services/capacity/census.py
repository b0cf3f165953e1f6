"""The census as bed coordinators see it: who is in which bed, when each is likely to go home, how full
each ward will be over the next 14 days, and the staff each shift needs. Built from the store and the
LOS model; the maths lives in services.capacity.los and services.capacity.forecast."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from models.domain import Encounter, Permission, days_in_hospital
from services.capacity.forecast import HORIZON_DAYS, StaffingRatios, WardForecast, forecast_ward, staff_needed, \
    weekday_admission_rates
from services.capacity.los import MAX_DAYS, LosEstimateRow, LosService, bundled_los
from services.records.patients import PatientService
from services.site.session import Session
from services.site.settings import SettingsService

HISTORY_WINDOW_DAYS = 90   # admissions per weekday are learned from this many days of the store's history


def los_service() -> LosService:
    """The LOS model the census uses: the bundled one, loaded once per process."""
    return bundled_los()


@dataclass(frozen=True)
class StayEstimate:
    """An encounter's stay as everyone shows it (census, worklist, patient page, both reports)."""

    point_days: float
    low_days: int
    high_days: int
    days_so_far: int
    expected_discharge: dt.date | None   # the median day of the remaining stay; None: beyond the model's range
    earliest: dt.date | None
    latest: dt.date | None
    beyond_model: bool = False           # in hospital for the model's whole range (14 days) or longer

    @property
    def stay_text(self) -> str:
        """"4.4 d (2–6)", or what the model cannot say for a stay past its range."""
        if self.beyond_model:
            return f"over {MAX_DAYS} d (beyond model range)"
        return f"{self.point_days:.1f} d ({self.low_days}–{self.high_days})"

    @property
    def discharge_text(self) -> str:
        return "beyond model range" if self.expected_discharge is None else f"{self.expected_discharge:%a %d %b}"

    @property
    def window_text(self) -> str:
        return "—" if self.earliest is None else f"{self.earliest:%a %d %b} – {self.latest:%a %d %b}"


def stay_estimate(svc: LosService, est: LosEstimateRow, admit: dt.date, today: dt.date) -> StayEstimate:
    """The one rule for a patient still in hospital after `days` days: the admission-time distribution cut
    to stays longer than that and renormalised (never "5 days" for a patient in for 6, never a date in the
    past). The model knows stays of 1..14 days only: from day 14 on it has nothing to say, and says so."""
    days = days_in_hospital(today, admit)
    likely = _median_stay(est.probs, days)
    if days <= 0:
        point, lo, hi = est.point_days, est.low_days, est.high_days
    else:
        dist = np.asarray(est.probs, dtype=np.float64)
        cond = np.where(np.arange(1, len(dist) + 1) > days, dist, 0.0)
        if days >= MAX_DAYS or cond.sum() < 1e-9:
            return StayEstimate(est.point_days, est.low_days, est.high_days, days, None, None, None, True)
        cond = (cond / cond.sum())[None, :]
        point = max(float(svc.point(cond)[0]), days + 0.5)
        lo_a, hi_a = svc.interval(cond)
        lo, hi = int(lo_a[0]), int(hi_a[0])
    return StayEstimate(round(point, 1), lo, hi, days, admit + dt.timedelta(days=likely),
                        admit + dt.timedelta(days=lo), admit + dt.timedelta(days=hi))


def _median_stay(probs, days: int) -> int:
    """The expected discharge day: the first stay length by which the patient, still in after `days` days, is more
    likely than not to have gone home (the median of the remaining stay). Not the rounded mean: stays are skewed to
    the right, so the mean lies past the likeliest days and no one would ever be due tomorrow."""
    dist = np.asarray(probs, dtype=np.float64)
    lengths = np.arange(1, len(dist) + 1)
    cond = np.where(lengths > max(days, 0), dist, 0.0)
    if cond.sum() < 1e-12:
        return max(days, 0) + 1
    cdf = np.cumsum(cond / cond.sum())
    return int(lengths[int(np.searchsorted(cdf, 0.5 - 1e-9))])


@dataclass(frozen=True)
class Occupant:
    """A patient in a bed now, as the record says (no estimate)."""

    patient_id: int
    patient_label: str
    mrn: str
    encounter_nbr: int
    ward: str
    ward_id: int | None
    bed: str
    admit_time: dt.datetime
    days_in: int


@dataclass(frozen=True)
class InpatientEstimate(Occupant):
    """An occupant with their predicted stay (days_in is the same count as stay.days_so_far)."""

    stay: StayEstimate
    p_discharge_48h: float
    presence: tuple[float, ...]   # P(still in hospital) on day 0..13 from today

    # the census columns, read from the one stay estimate
    los_point = property(lambda self: self.stay.point_days)
    los_low = property(lambda self: self.stay.low_days)
    los_high = property(lambda self: self.stay.high_days)
    expected_discharge = property(lambda self: self.stay.expected_discharge)
    discharge_earliest = property(lambda self: self.stay.earliest)
    discharge_latest = property(lambda self: self.stay.latest)
    beyond_model = property(lambda self: self.stay.beyond_model)


def uci_model_frame(frame):
    """The UCI columns the models read (the store's bookkeeping columns dropped)."""
    return frame.drop(columns=[c for c in ("status", "admit_time", "discharge_time", "_pid", "_eid") if c in frame])


class CensusService:
    def __init__(self, session: Session, patients: PatientService, settings: SettingsService) -> None:
        self.s = session
        self.patients = patients
        self.settings = settings

    @property
    def los(self) -> LosService:
        """The LOS model, loaded on first use (not at unlock: opening a session stays fast)."""
        return los_service()

    def occupants(self, today: dt.date | None = None, patient_id: int | None = None) -> list[Occupant]:
        """Who is in which bed now, from the record alone (no model): what the census and the ward report
        still show when the LOS model cannot be used."""
        self.s.require(Permission.READ_DEIDENTIFIED, "see the census")
        today = today or dt.date.today()
        only = "" if patient_id is None else " AND e.patient_id = ?"
        out = []
        for pid, nbr, ward, ward_id, bed, admit in self.s.db.conn.execute(
                "SELECT e.patient_id, e.encounter_nbr, coalesce(w.name, ''), e.ward_id, coalesce(b.label, ''), "
                "e.admit_time FROM encounters e LEFT JOIN wards w ON w.id = e.ward_id "
                f"LEFT JOIN beds b ON b.id = e.bed_id WHERE e.status = 'inpatient'{only} ORDER BY w.name, b.label",
                () if patient_id is None else (patient_id,)):
            admit_dt = dt.datetime.fromisoformat(admit) if admit else dt.datetime.combine(today, dt.time())
            out.append(Occupant(pid, self.s.patient_label(pid), self.s.patient_ref(pid), nbr,
                                ward, ward_id, bed, admit_dt, days_in_hospital(today, admit_dt.date())))
        return out

    def inpatients(self, today: dt.date | None = None, patient_id: int | None = None) -> list[InpatientEstimate]:
        """Current inpatients (all, or one patient's) with their predicted stay, judged from admission
        and the days so far."""
        today = today or dt.date.today()
        occupants = self.occupants(today, patient_id)
        if not occupants:
            return []
        frame = self.patients.uci_frame(sorted({o.patient_id for o in occupants}), log=False)
        wanted = {o.encounter_nbr for o in occupants}
        svc = self.los
        # History rows are fed along so the features can use earlier stays; only inpatient rows are read.
        est = {e.encounter_id: e for e in svc.estimates(uci_model_frame(frame)) if e.encounter_id in wanted}
        out = []
        for o in occupants:
            e = est[o.encounter_nbr]
            stay = stay_estimate(svc, e, o.admit_time.date(), today)
            surv = svc.remaining_stay_survival(np.asarray(e.probs), min(stay.days_so_far, 13), HORIZON_DAYS - 1)
            presence = (1.0, *map(float, surv))
            out.append(InpatientEstimate(**vars(o), stay=stay, p_discharge_48h=float(1.0 - presence[2]),
                                         presence=presence))
        self.s.log("read", "census", "", f"{len(out)} inpatients")
        return out

    def weekday_rates(self, ward_id: int, today: dt.date) -> dict[int, float]:
        start = today - dt.timedelta(days=HISTORY_WINDOW_DAYS)
        dates = [dt.datetime.fromisoformat(a).date() for (a,) in self.s.db.conn.execute(
            "SELECT admit_time FROM encounters WHERE ward_id = ? AND admit_time >= ? AND admit_time < ?",
            (ward_id, start.isoformat(), today.isoformat()))]
        return weekday_admission_rates(dates, start, today - dt.timedelta(days=1))

    def admission_los_distribution(self, ward_id: int, today: dt.date) -> np.ndarray:
        """What a new admission to this ward stays: the ward's recent observed stays (1..14 days)."""
        start = today - dt.timedelta(days=HISTORY_WINDOW_DAYS * 2)
        los = [r[0] for r in self.s.db.conn.execute(
            "SELECT time_in_hospital FROM encounters WHERE ward_id = ? AND status = 'discharged' AND admit_time >= ? "
            "AND time_in_hospital IS NOT NULL", (ward_id, start.isoformat()))]
        counts = np.bincount(np.clip(np.asarray(los, dtype=int), 1, 14), minlength=15)[1:].astype(float)
        if counts.sum() < 20:  # too few stays: the hospital-wide shape instead of a noisy ward one
            counts += np.bincount(np.clip(np.asarray([r[0] for r in self.s.db.conn.execute(
                "SELECT time_in_hospital FROM encounters WHERE time_in_hospital IS NOT NULL")], dtype=int), 1, 14),
                minlength=15)[1:]
        return counts / max(counts.sum(), 1.0)

    def forecasts(self, today: dt.date | None = None, inpatients: list[InpatientEstimate] | None = None
                  ) -> list[WardForecast]:
        self.s.require(Permission.READ_DEIDENTIFIED, "see the bed forecast")
        today = today or dt.date.today()
        inpatients = self.inpatients(today) if inpatients is None else inpatients
        waiting = self.waiting_by_ward()
        out = []
        for wid, name, capacity in self.s.db.conn.execute("SELECT id, name, capacity FROM wards ORDER BY name").fetchall():
            presence = [p.presence for p in inpatients if p.ward_id == wid]
            open_ward = capacity > 0   # a ward with every bed out of service admits no one
            out.append(forecast_ward(name, capacity, presence, self.weekday_rates(wid, today) if open_ward else {},
                                     self.admission_los_distribution(wid, today), today,
                                     waiting=waiting.get(wid, 0.0) if open_ward else 0.0))
        return out

    def waiting_by_ward(self) -> dict[int, float]:
        """Admissions waiting for a bed, shared among the wards of the type each needs by their beds in service (a
        waiting surgical patient is 0.8 of a patient to a 24-bed surgical ward beside a 6-bed one). A patient who
        needs a type no open ward has is in no ward's forecast; the waiting list on Beds & Staff still shows them."""
        c = self.s.db.conn
        wards = c.execute("SELECT id, ward_type, capacity FROM wards").fetchall()
        out: dict[int, float] = {}
        for ward_type, n in c.execute("SELECT ward_type, count(*) FROM waiting_admissions WHERE status = 'waiting' "
                                      "GROUP BY ward_type"):
            fitting = [(wid, cap) for wid, wt, cap in wards if (not ward_type or wt == ward_type) and cap > 0]
            total = sum(cap for _, cap in fitting)
            for wid, cap in fitting:
                out[wid] = out.get(wid, 0.0) + n * cap / total
        return out

    def staffing_ratios(self) -> StaffingRatios:
        """The site's patients-per-nurse ratios (setting staffing_ratios, validated when it was set)."""
        data = self.settings.value("staffing_ratios")
        return StaffingRatios(default=data.get("default", StaffingRatios().default), per_ward=data.get("per_ward", {}))

    def stay(self, patient_id: int, encounter: Encounter, today: dt.date) -> StayEstimate:
        """One encounter's stay as the census states it; a discharged stay keeps its admission-time estimate."""
        self.s.require(Permission.READ_DEIDENTIFIED, "see length-of-stay estimates")
        frame = self.patients.uci_frame([patient_id], log=False)
        frame = frame[frame["encounter_id"] <= encounter.encounter_nbr]
        est = next(e for e in self.los.estimates(uci_model_frame(frame)) if e.encounter_id == encounter.encounter_nbr)
        if not encounter.is_inpatient:
            return StayEstimate(est.point_days, est.low_days, est.high_days, encounter.length_of_stay(), None, None, None)
        return stay_estimate(self.los, est, encounter.admit_time.date(), today)

    def wards(self) -> list[tuple[str, int]]:
        """(name, beds) of every ward."""
        self.s.require(Permission.READ_DEIDENTIFIED, "see wards")
        return [(str(n), int(c)) for n, c in self.s.db.conn.execute("SELECT name, capacity FROM wards ORDER BY name")]

    @property
    def los_version(self) -> str:
        return f"los-{self.los.bundle.version} (sha256 {self.los.bundle.sha256[:12]})"

    def staffing(self, forecast: WardForecast):
        return staff_needed(forecast, self.staffing_ratios())
