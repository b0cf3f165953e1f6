"""The analyst's dashboards: readmission, model performance, length of stay and exploration.

refresh() reads the store once off the GUI thread (services.analytics.dashboards.AnalyticsService.load), then
computes the four dashboards as separate background jobs; each result replaces the previous one and
is announced by its own signal, so views update their charts in place as each arrives. A newer
refresh wins over an older one still running. Chart export goes through export_chart(), which
checks the role and audits before the view's own writer puts the PNG on disk.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal, Slot

from models.domain import Permission
from services.analytics import dashboards as analytics
from services.core.errors import Cancelled
from services.core.outputs import write_output
from services.desk import Desk
from viewmodels.background import BackgroundRunner
from viewmodels.base import StatusViewModel
from viewmodels.observable import set_if_changed
from viewmodels.session_vm import user_message
from viewmodels.table_model import Column, ListTableModel

DASHBOARDS = ("readmission", "performance", "los", "exploration")
_COMPUTE: dict[str, Callable[[analytics.Cohort], Any]] = {
    "readmission": analytics.readmission_dashboard, "performance": analytics.performance_dashboard,
    "los": analytics.los_dashboard, "exploration": analytics.exploration_dashboard,
}
_TITLES = {"readmission": "readmission", "performance": "model performance", "los": "length of stay",
           "exploration": "exploration"}
_METRIC_NAMES = {"roc_auc": "ROC AUC", "brier": "Brier score", "ece": "Calibration error (ECE)"}


@dataclass(frozen=True)
class MetricRow:
    metric: str
    local: str
    card: str
    status: str


def _metric_rows(perf: analytics.PerformanceDashboard) -> list[MetricRow]:
    rows = []
    for c in perf.drift.checks:
        local = (f"{c.local:.3f} (chance up to {c.local_high:.3f})" if c.name == "ece"
                 else f"{c.local:.3f} ({c.local_low:.3f}–{c.local_high:.3f})")
        rows.append(MetricRow(_METRIC_NAMES.get(c.name, c.name), local,
                              f"{c.card:.3f} ({c.card_low:.3f}–{c.card_high:.3f})", c.status))
    return rows


METRIC_COLUMNS: list[Column[MetricRow]] = [
    Column("Metric", lambda r: r.metric),
    Column("This hospital (95% CI)", lambda r: r.local, tooltip="Encounters of this store with a known 30-day outcome"),
    Column("Model card (95% CI)", lambda r: r.card, tooltip="The bundled model's test-set figures"),
    Column("Verdict", lambda r: r.status),
]
ANOMALY_COLUMNS: list[Column[analytics.Anomaly]] = [
    Column("Encounter", lambda a: a.encounter),
    Column("Ward", lambda a: a.ward),
    Column("Score", lambda a: f"{a.score:.3f}", align_right=True, tooltip="Isolation Forest anomaly score (higher = more unusual)"),
    Column("Why", lambda a: a.why),
]


class DashboardsViewModel(StatusViewModel):
    readmissionChanged = Signal(object)    # analytics.ReadmissionDashboard
    performanceChanged = Signal(object)    # analytics.PerformanceDashboard
    losChanged = Signal(object)            # analytics.LosDashboard
    explorationChanged = Signal(object)    # analytics.ExplorationDashboard
    busyChanged = Signal(bool)
    progressChanged = Signal(int, int, str)
    errorChanged = Signal(str)
    driftChanged = Signal(str)             # drift message ("" until known)
    refreshed = Signal()                   # all four dashboards of one refresh are in

    def __init__(self, session: Desk, runner: BackgroundRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.runner = runner
        self.service = session.analytics.dashboards
        self.metrics_model: ListTableModel[MetricRow] = ListTableModel(METRIC_COLUMNS, self)
        self.anomalies_model: ListTableModel[analytics.Anomaly] = ListTableModel(ANOMALY_COLUMNS, self)
        self.results: dict[str, Any] = {name: None for name in DASHBOARDS}
        self._busy = False
        self._error = ""
        self._drift = ""
        self._generation = 0
        self._pending: set[str] = set()
        self.loaded_once = False

    # --- state ------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._busy


    @property
    def error(self) -> str:
        return self._error

    @property
    def drift(self) -> str:
        return self._drift

    @property
    def can_export(self) -> bool:
        return self.session.can(Permission.EXPORT)

    def _set_busy(self, v: bool) -> None:
        set_if_changed(self, "_busy", v, "busyChanged")

    def _set_error(self, v: str) -> None:
        set_if_changed(self, "_error", v, "errorChanged")

    # --- commands ---------------------------------------------------------------------------------
    @Slot()
    def ensure_loaded(self) -> None:
        """First look at the page: compute once; later looks keep what is there until refresh()."""
        if not self.loaded_once and not self._busy:
            self.refresh()

    @Slot()
    def refresh(self) -> None:
        self.loaded_once = True
        self._generation += 1
        gen = self._generation
        self._set_busy(True)
        self._set_error("")
        self._set_status("Reading encounters…")
        self.runner.run("Reading encounters for the dashboards", lambda p, c: self.service.load(p, c),
                        on_success=lambda cohort: self._loaded(gen, cohort), on_failure=lambda e: self._failed(gen, e),
                        on_progress=lambda d, t, m: gen == self._generation and self.progressChanged.emit(d, t + 4, m),
                        owner=self)

    def _loaded(self, gen: int, cohort: analytics.Cohort) -> None:
        if gen != self._generation:
            return
        self._pending = set(DASHBOARDS)
        self._encounters = len(cohort.frame)
        self.progressChanged.emit(0, len(DASHBOARDS), "Computing dashboards")
        self._compute_next(gen, cohort, list(DASHBOARDS))

    def _compute_next(self, gen: int, cohort: analytics.Cohort, queue: list[str]) -> None:
        """One dashboard at a time: each already uses the cores through numpy, BLAS and OpenMP, so
        running them side by side on the shared cohort bought no speed, only contention."""
        if gen != self._generation or not queue:
            return
        name, rest = queue[0], queue[1:]
        fn = _COMPUTE[name]

        def job(p, c):
            c.raise_if_cancelled()
            return fn(cohort)

        def done(result: Any) -> None:
            self._computed(gen, name, result)
            self._compute_next(gen, cohort, rest)
        self.runner.run(f"Computing the {_TITLES[name]} dashboard", job, on_success=done,
                        on_failure=lambda e: self._failed(gen, e), owner=self)

    def _computed(self, gen: int, name: str, result: Any) -> None:
        if gen != self._generation:
            return
        self.results[name] = result
        if name == "performance":
            self.metrics_model.set_rows(_metric_rows(result))
            set_if_changed(self, "_drift", result.drift.message, "driftChanged")
        elif name == "exploration":
            self.anomalies_model.set_rows(list(result.anomalies))
        getattr(self, f"{name}Changed").emit(result)
        self._pending.discard(name)
        done = len(DASHBOARDS) - len(self._pending)
        self.progressChanged.emit(done, len(DASHBOARDS), f"{_TITLES[name].capitalize()} ready")
        if not self._pending:
            deid = "" if self.session.sees_names else ", de-identified"
            self._set_status(f"{self._encounters:,} encounters{deid}; updated {dt.datetime.now():%H:%M}")
            self._set_busy(False)
            self.refreshed.emit()

    def _failed(self, gen: int, exc: BaseException) -> None:
        if gen != self._generation:
            return
        self._generation += 1  # drop the other jobs of this refresh
        self._pending.clear()
        if isinstance(exc, Cancelled):
            self._set_status("Dashboards not updated (cancelled)")
        else:
            self._set_error(user_message(exc))
            self._set_status("")
        self._set_busy(False)

    def export_chart(self, chart: str, path: str, render: Callable[[], bytes]) -> bool:
        """Role check, then the view's `render()` gives the chart as PNG bytes, written by the output rules; audited."""
        try:
            self.service.require_export()
            write_output(path, "png", render())
            self.service.record_export(chart, path)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self._set_error(user_message(exc))
            return False
        self._set_error("")
        self._set_status(f"Chart saved to {path}")
        return True
