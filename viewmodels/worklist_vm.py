"""The discharge worklist and the alerts that stay until acknowledged."""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from models.domain import Permission
from services.desk import Desk
from services.risk.alerts import Alert
from services.risk.interventions import Recommendation
from services.risk.worklist import WorklistRow
from viewmodels.background import BackgroundRunner
from viewmodels.base import StatusViewModel
from viewmodels.session_vm import user_message
from viewmodels.table_model import Column, ListTableModel

def _factors_tip(r: WorklistRow) -> str:
    return "What raises the risk:\n" + "\n".join(f"• {f.text}" for f in r.risk.factors) if r.risk.factors else ""


# Fits a 1280-px screen beside the detail pane: short values first, the long factor text last, where the
# view lets it take what is left (elided, the full list in its tooltip and in the detail pane).
WORKLIST_COLUMNS: list[Column[WorklistRow]] = [
    Column("Risk", lambda r: f"{r.risk.percent} {r.risk.band}", align_right=True,
           tooltip="30-day readmission risk if discharged as planned, and its band"),
    Column("Patient", lambda r: r.inpatient.patient_label),
    Column("Ward / bed", lambda r: f"{r.inpatient.ward} {r.inpatient.bed}"),
    Column("Days", lambda r: r.inpatient.days_in, align_right=True, tooltip="Days in hospital so far"),
    Column("Stay", lambda r: r.inpatient.stay.stay_text,
           tooltip="Predicted stay: point estimate and 80% interval in days"),
    Column("Discharge", lambda r: r.inpatient.stay.discharge_text,
           tooltip="Expected discharge: the day by which the patient is more likely than not to have gone home"),
    Column("≤ 48 h", lambda r: f"{100 * r.inpatient.p_discharge_48h:.0f}%", align_right=True,
           tooltip="Chance the patient has gone home within 48 hours, from the predicted stay"),
    Column("To do", lambda r: f"{r.open_interventions} of {len(r.interventions)}" if r.interventions else "none",
           align_right=True, tooltip="recommended interventions still open, of those recommended"),
    Column("Top factors", lambda r: "" if r.risk.probability is None else   # not scored: no claim either way
           ("; ".join(f.text for f in r.risk.factors[:2]) or "none above average"),
           cell_tooltip=_factors_tip,
           tooltip="What raises the risk most (all factors in the tooltip and the pane on the right)"),
]


class WorklistViewModel(StatusViewModel):
    loaded = Signal()
    selectedChanged = Signal(object)   # WorklistRow or None
    openPatient = Signal(int)

    def __init__(self, session: Desk, runner: BackgroundRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.runner = session, runner
        self.service = session.risk.worklist
        self.interventions = session.risk.interventions
        self.model: ListTableModel[WorklistRow] = ListTableModel(WORKLIST_COLUMNS, self)
        self.wards: list[str] = []
        self._ward = ""
        self._all: list[WorklistRow] = []
        self._selected: WorklistRow | None = None

    @property
    def can_act(self) -> bool:
        return self.session.can(Permission.READ_PATIENT)

    @property
    def selected(self) -> WorklistRow | None:
        return self._selected


    @Slot()
    def refresh(self) -> None:
        self._set_status("Building the worklist…")
        self.runner.run("Building the discharge worklist", lambda p, c: self.service.discharge_worklist(),
                        on_success=self._loaded, on_failure=lambda e: self._set_status(user_message(e)), owner=self)

    def _loaded(self, rows: list[WorklistRow]) -> None:
        self._all = rows
        self.wards = sorted({r.inpatient.ward for r in rows})
        self._apply()
        self.loaded.emit()

    def _apply(self) -> None:
        rows = [r for r in self._all if not self._ward or r.inpatient.ward == self._ward]
        self.model.set_rows(rows)
        high = sum(1 for r in rows if r.risk.band == "high")
        todo = sum(r.open_interventions for r in rows)
        self._set_status(f"{len(rows)} patient{'' if len(rows) == 1 else 's'} expected home within 48 hours"
                         f"{' on ' + self._ward if self._ward else ''}; {high} at high risk; {todo} interventions open")
        self.select(0 if rows else -1)

    @Slot(str)
    def set_ward(self, ward: str) -> None:
        if ward != self._ward:
            self._ward = ward
            self._apply()

    @Slot(int)
    def select(self, row: int) -> None:
        sel = self.model.row(row) if 0 <= row < self.model.total else None
        if sel is not self._selected:
            self._selected = sel
            self.selectedChanged.emit(sel)

    @Slot(int)
    def activate(self, row: int) -> None:
        if 0 <= row < self.model.total:
            self.openPatient.emit(self.model.row(row).inpatient.patient_id)

    def mark(self, rec: Recommendation, status: str) -> None:
        """Done / declined / reopened, then the row is rebuilt from the store."""
        if rec.id is None:
            return
        words = {"done": "done", "declined": "declined", "recommended": "reopened"}.get(status, status)

        def done(_: object) -> None:
            self.notice.emit(f"{rec.title}: recorded as {words}")
            self._marked()
        self.runner.run("Recording intervention", lambda p, c: self.interventions.mark(rec.id, status),
                        on_success=done, on_failure=lambda e: self._set_status(user_message(e)), owner=self)

    def _marked(self) -> None:
        sel = self._selected
        if sel is None:
            return
        fresh = tuple(self.interventions.for_encounter(sel.inpatient.patient_id, sel.inpatient.encounter_nbr, log=False))
        new = WorklistRow(sel.inpatient, sel.risk, fresh)
        self._all = [new if r is sel else r for r in self._all]
        self._selected = None
        keep = self.model._rows.index(sel) if sel in self.model._rows else 0
        self._apply()
        self.select(keep)


class AlertsViewModel(QObject):
    """Evaluates alerts in the background at unlock and every few minutes; open ones stay listed."""

    alertsChanged = Signal(list)
    openPatient = Signal(int)      # an alert about a patient was opened
    openWard = Signal(str)         # an alert about a ward was opened
    INTERVAL_MS = 10 * 60 * 1000

    def __init__(self, session: Desk, runner: BackgroundRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.runner = session, runner
        self.service = session.risk.alerts
        self.census = session.capacity.census
        self.worklist = session.risk.worklist
        self.alerts: list[Alert] = []
        self._timer = QTimer(self)
        self._timer.setInterval(self.INTERVAL_MS)
        self._timer.timeout.connect(self.refresh)

    @property
    def can_acknowledge(self) -> bool:
        return self.session.can(Permission.READ_PATIENT)

    def start(self) -> None:
        """Alerts are for the care team, who can act on them and acknowledge them; other roles get none."""
        if not self.can_acknowledge:
            return
        self._timer.start()
        self.refresh()

    def open_alert(self, alert_id: int) -> None:
        def opened(target: tuple[str, int | str]) -> None:
            kind, what = target
            if kind == "patient":
                self.openPatient.emit(int(what))
            else:
                self.openWard.emit(str(what))
        self.runner.run("Opening alert", lambda p, c: self.service.target(alert_id), on_success=opened, owner=self)

    @Slot()
    def refresh(self) -> None:
        def job(progress, cancel):
            inpatients = self.census.inpatients()
            risks = self.worklist.inpatient_risks(inpatients)
            self.service.evaluate(inpatients, risks, self.census.forecasts(inpatients=inpatients))
            return self.service.open_alerts()
        self.runner.run("Checking alerts", job, on_success=self._set, owner=self)

    def _set(self, alerts: list[Alert]) -> None:
        if [a.id for a in alerts] != [a.id for a in self.alerts]:
            self.alerts = alerts
            self.alertsChanged.emit(alerts)

    def acknowledge(self, alert_id: int) -> None:
        def job(progress, cancel):
            self.service.acknowledge(alert_id)
            return self.service.open_alerts()
        self.runner.run("Acknowledging alert", job, on_success=self._set, owner=self)
