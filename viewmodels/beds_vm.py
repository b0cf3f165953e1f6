"""Beds & Staff: per-ward 14-day forecast, staff per shift, the inpatients' expected discharges, and
recommended beds for waiting admissions."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal, Slot

from models.domain import Permission
from services.capacity.bed_assignment import Ward
from services.capacity.beds import BedRecommendation, FreeBed, WaitingRow, recommendations
from services.capacity.census import InpatientEstimate
from services.capacity.forecast import ShiftStaffing, WardForecast, staffing_by_date
from services.core.outputs import write_output
from services.desk import Desk
from viewmodels.background import BackgroundRunner
from viewmodels.base import StatusViewModel
from viewmodels.session_vm import user_message
from viewmodels.table_model import Column, ListTableModel

INPATIENT_COLUMNS: list[Column[InpatientEstimate]] = [
    Column("Bed", lambda r: r.bed),
    Column("Patient", lambda r: r.patient_label),
    Column("Days in", lambda r: r.days_in, align_right=True),
    Column("Predicted stay", lambda r: r.stay.stay_text, align_right=True,
           tooltip="Point estimate and 80% interval, from admission, given the days already spent"),
    Column("Expected home", lambda r: r.stay.discharge_text, tooltip="Expected discharge date"),
    Column("80% window", lambda r: r.stay.window_text,
           tooltip="Discharge falls in this window for 8 in 10 such patients"),
    Column("Home within 48 h", lambda r: f"{100 * r.p_discharge_48h:.0f}%", align_right=True,
           tooltip="Chance of going home within the next 48 hours"),
]


@dataclass(frozen=True)
class StaffRow:
    date: dt.date
    cells: dict[str, ShiftStaffing]


def _staff_text(s: ShiftStaffing | None) -> str:
    if s is None:
        return ""
    return s.nurses_text


@dataclass(frozen=True)
class BedsSnapshot:
    inpatients: list[InpatientEstimate]
    forecasts: list[WardForecast]
    staffing: dict[str, list[ShiftStaffing]]
    recommendations: list[BedRecommendation]
    free_beds: list[FreeBed]
    wards: list[Ward]


class BedsViewModel(StatusViewModel):
    loaded = Signal()
    wardChanged = Signal(str)

    def __init__(self, session: Desk, runner: BackgroundRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.runner = session, runner
        self.census, self.beds = session.capacity.census, session.capacity.beds
        self.inpatients_model: ListTableModel[InpatientEstimate] = ListTableModel(INPATIENT_COLUMNS, self)
        self.staff_model: ListTableModel[StaffRow] = ListTableModel(self._staff_columns(("day", "evening", "night")), self)
        self.snapshot: BedsSnapshot | None = None
        self._ward = ""

    @property
    def can_place(self) -> bool:
        return self.session.can(Permission.MANAGE_BEDS)

    @property
    def ward(self) -> str:
        return self._ward

    @property
    def wards(self) -> list[str]:
        return [f.ward for f in self.snapshot.forecasts] if self.snapshot else []

    @property
    def forecast(self) -> WardForecast | None:
        if not self.snapshot:
            return None
        return next((f for f in self.snapshot.forecasts if f.ward == self._ward), None)



    @staticmethod
    def _staff_columns(shifts) -> list[Column[StaffRow]]:
        return [Column("Date", lambda r: r.date.strftime("%a %d %b"))] + [
            Column(f"{s.capitalize()} nurses", lambda r, s=s: _staff_text(r.cells.get(s)), align_right=True,
                   tooltip="for the expected census – for the upper end of the 80% band") for s in shifts]

    @Slot()
    def refresh(self) -> None:
        self._set_status("Forecasting…")

        def job(progress, cancel):
            progress(0, 3, "Predicting discharges")
            inpatients = self.census.inpatients()
            cancel.raise_if_cancelled()
            progress(1, 3, "Forecasting occupancy")
            forecasts = self.census.forecasts(inpatients=inpatients)
            staffing = {f.ward: self.census.staffing(f) for f in forecasts}
            cancel.raise_if_cancelled()
            progress(2, 3, "Recommending beds")
            result, waiting, free = self.beds.recommend()
            return BedsSnapshot(inpatients, forecasts, staffing, recommendations(result, waiting, free), free,
                                self.beds.wards())

        self.runner.run("Forecasting beds and staff", job, on_success=self._loaded,
                        on_failure=lambda e: self._set_status(user_message(e)), owner=self)

    def _loaded(self, snap: BedsSnapshot) -> None:
        self.snapshot = snap
        at_risk = [f.ward for f in snap.forecasts if f.days_at_risk]
        self._set_status(f"{len(snap.inpatients)} inpatients, {len(snap.free_beds)} free beds; "
                         + (f"demand may exceed capacity on {', '.join(at_risk)}" if at_risk else "no ward expected over capacity"))
        if self._ward not in self.wards:
            self._ward = ""
        self.loaded.emit()
        self.select_ward(self._ward or (self.wards[0] if self.wards else ""), force=True)

    @Slot(str)
    def select_ward(self, ward: str, force: bool = False) -> None:
        if ward == self._ward and not force:
            return
        self._ward = ward
        snap = self.snapshot
        if snap:
            self.inpatients_model.set_rows([p for p in snap.inpatients if p.ward == ward])
            self.staff_model.set_rows([StaffRow(d, cells) for d, cells in staffing_by_date(snap.staffing.get(ward, []))])
        self.wardChanged.emit(ward)

    def compatible_beds(self, waiting: WaitingRow) -> list[FreeBed]:
        """Free beds the coordinator may choose instead of the recommendation (same hard constraints)."""
        snap = self.snapshot
        return self.beds.compatible_beds(waiting, snap.free_beds, snap.wards) if snap else []

    @property
    def can_print(self) -> bool:
        return self.session.can(Permission.PRINT)

    def save_ward_report(self, path: str) -> None:
        """Census, high-risk list and forecast of the ward in view as PDF (audited as a print)."""
        ward = self._ward or None

        def job(progress, cancel):
            pdf = self.session.reports.ward_pdf(ward)
            write_output(path, "pdf", pdf)  # never over a store or a non-PDF; 0600; whole or not at all
            return path
        self.runner.run("Writing the ward report", job, on_success=lambda p: self._set_status(f"Ward report saved to {p}"),
                        on_failure=lambda e: self._set_status(user_message(e)), owner=self)

    def place(self, waiting_id: int, bed_id: int, recommended_bed_id: int | None) -> None:
        snap = self.snapshot
        who = next((r.waiting.patient_label for r in (snap.recommendations if snap else ()) if r.waiting.id == waiting_id),
                   "The patient")
        bed = next((f"{b.ward} {b.label}" for b in (snap.free_beds if snap else ()) if b.id == bed_id), "the bed")

        def done(_: object) -> None:
            self.notice.emit(f"{who} placed in {bed}")
            self.refresh()
        self.runner.run("Placing patient", lambda p, c: self.beds.place(waiting_id, bed_id, recommended_bed_id),
                        on_success=done, on_failure=lambda e: self._set_status(user_message(e)), owner=self)
