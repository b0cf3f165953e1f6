"""The census as bed coordinators see it: who is in which bed, when each is likely to go home, how full
each ward will be over the next 14 days, and the staff each shift needs. Built from the store and the
LOS model; the maths lives in services.capacity.los and services.capacity.forecast."""
from __future__ import annotations

import datetime as dt
import json
import threading
from dataclasses import dataclass

import numpy as np

from models.domain import Permission
from services.capacity.forecast import HORIZON_DAYS, StaffingRatios, WardForecast, forecast_ward, staff_needed, \
    weekday_admission_rates
from services.capacity.los import LosService
from services.records.patients import encounters_uci_frame
from services.site.session import Session

HISTORY_WINDOW_DAYS = 90   # admissions per weekday are learned from this many days of the store's history
_los: LosService | None = None
_lock = threading.Lock()


def los_service() -> LosService:
    global _los
    with _lock:
        if _los is None:
            _los = LosService()
        return _los


@dataclass(frozen=True)
class InpatientEstimate:
    patient_id: int
    patient_label: str
    mrn: str
    encounter_nbr: int
    ward: str
    ward_id: int | None
    bed: str
    admit_time: dt.datetime
    days_in: int
    los_point: float
    los_low: int
    los_high: int
    expected_discharge: dt.date
    discharge_earliest: dt.date
    discharge_latest: dt.date
    p_discharge_48h: float
    presence: tuple[float, ...]   # P(still in hospital) on day 0..13 from today


def _uci_model_frame(frame):
    return frame.drop(columns=[c for c in ("status", "admit_time", "discharge_time", "_pid", "_eid") if c in frame])


def _conditional_stay(svc: LosService, dist: np.ndarray, days_in: int, e) -> tuple[float, int, int]:
    """Point and 80% interval of the whole stay given the patient is still here after `days_in` days.

    The admission-time distribution is cut to stays longer than days_in and renormalised, so a
    patient in for 6 days is never told "5 days"; past the model's 14-day horizon we only know
    "longer than now".
    """
    if days_in <= 0:
        return e.point_days, e.low_days, e.high_days
    cond = np.where(np.arange(1, len(dist) + 1) > days_in, dist, 0.0)
    if cond.sum() < 1e-9:
        return float(days_in + 1), days_in + 1, days_in + 1
    cond = (cond / cond.sum())[None, :]
    lo, hi = svc.interval(cond)
    return float(svc.point(cond)[0]), int(lo[0]), int(hi[0])


class CensusService:
    def __init__(self, session: Session) -> None:
        self.s = session

    def inpatients(self, today: dt.date | None = None, patient_id: int | None = None) -> list[InpatientEstimate]:
        """Current inpatients (all, or one patient's) with their predicted stay, judged from admission
        and the days so far."""
        self.s.require(Permission.READ_DEIDENTIFIED, "see the census")
        today = today or dt.date.today()
        c = self.s.db.conn
        only = "" if patient_id is None else " AND e.patient_id = ?"
        rows = c.execute(
            "SELECT e.patient_id, e.encounter_nbr, coalesce(w.name, ''), e.ward_id, coalesce(b.label, ''), e.admit_time, "
            "p.mrn, p.family_name, p.given_name FROM encounters e JOIN patients p ON p.id = e.patient_id "
            "LEFT JOIN wards w ON w.id = e.ward_id LEFT JOIN beds b ON b.id = e.bed_id "
            f"WHERE e.status = 'inpatient'{only} ORDER BY w.name, b.label", () if patient_id is None else (patient_id,)
        ).fetchall()
        if not rows:
            return []
        frame = encounters_uci_frame(c, sorted({r[0] for r in rows}))
        wanted = {r[1] for r in rows}
        svc = los_service()
        # History rows are fed along so the features can use earlier stays; only inpatient rows are read.
        est = {e.encounter_id: e for e in svc.estimates(_uci_model_frame(frame)) if e.encounter_id in wanted}
        out = []
        for pid, nbr, ward, ward_id, bed, admit, mrn, family, given in rows:
            e = est[nbr]
            admit_dt = dt.datetime.fromisoformat(admit) if admit else dt.datetime.combine(today, dt.time())
            days_in = max(0, (today - admit_dt.date()).days)
            dist = np.asarray(e.probs)
            surv = svc.remaining_stay_survival(dist, min(days_in, 13), HORIZON_DAYS - 1)
            presence = (1.0, *map(float, surv))
            point, low, high = _conditional_stay(svc, dist, days_in, e)
            out.append(InpatientEstimate(
                pid, self.s.patient_label(pid, mrn, family, given), self.s.patient_ref(pid, mrn), nbr, ward, ward_id, bed, admit_dt, days_in, round(point, 1), low, high,
                admit_dt.date() + dt.timedelta(days=int(round(point))), admit_dt.date() + dt.timedelta(days=low),
                admit_dt.date() + dt.timedelta(days=high), float(1.0 - presence[2]), presence))
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
        out = []
        for wid, name, capacity in self.s.db.conn.execute("SELECT id, name, capacity FROM wards ORDER BY name").fetchall():
            presence = [p.presence for p in inpatients if p.ward_id == wid]
            out.append(forecast_ward(name, capacity, presence, self.weekday_rates(wid, today),
                                     self.admission_los_distribution(wid, today), today))
        return out

    def staffing_ratios(self) -> StaffingRatios:
        row = self.s.db.conn.execute("SELECT value FROM settings WHERE key = 'staffing_ratios'").fetchone()
        if not row:
            return StaffingRatios()
        data = json.loads(row[0])
        return StaffingRatios(default=data.get("default", StaffingRatios().default), per_ward=data.get("per_ward", {}))

    def staffing(self, forecast: WardForecast):
        return staff_needed(forecast, self.staffing_ratios())
