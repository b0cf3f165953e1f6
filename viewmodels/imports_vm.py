"""Imports page (administrators): a UCI encounter CSV, FHIR R4 files or a Bulk Data folder, or HL7 v2 ADT messages
into the store with progress, the counts per kind, the rejected records with file, place and reason, their export,
and a cancel that leaves nothing half-imported (one transaction: services.records.sources)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from models.domain import Permission
from services.core.errors import Cancelled
from services.desk import Desk
from services.records.intake import RecordsReport, Rejection
from viewmodels.background import BackgroundRunner, Task
from viewmodels.base import StatusViewModel
from viewmodels.session_vm import user_message
from viewmodels.table_model import Column, ListTableModel

REJECT_COLUMNS: list[Column[Rejection]] = [Column("File", lambda r: r.file), Column("Where", lambda r: r.where),
                                           Column("Reason", lambda r: r.reason)]


class ImportsViewModel(StatusViewModel):
    progressChanged = Signal(int, int)   # done, total (bytes read)
    runningChanged = Signal(bool)
    imported = Signal(str)               # the summary, once rows were stored (other pages re-read)

    def __init__(self, session: Desk, runner: BackgroundRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.runner = session, runner
        self.model: ListTableModel[Rejection] = ListTableModel(REJECT_COLUMNS, self)
        self.report: RecordsReport | None = None
        self._task: Task | None = None

    @property
    def allowed(self) -> bool:
        return self.session.can(Permission.IMPORT)

    @property
    def running(self) -> bool:
        return self._task is not None

    @Slot(str)
    def start(self, path: str) -> None:
        if self._task is not None or not path:
            return
        self.model.set_rows([])
        self.report = None
        self._set_status(f"Importing {Path(path).name}…")
        self._task = self.runner.run(
            "Importing", lambda p, c: self.session.records.import_files([Path(path)], progress=p, cancel=c),
            on_success=self._done, on_failure=self._failed,
            on_progress=lambda d, t, _m: self.progressChanged.emit(d, t), owner=self)
        self.runningChanged.emit(True)

    @Slot()
    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _finish(self) -> None:
        self._task = None
        self.runningChanged.emit(False)

    def _done(self, report: RecordsReport) -> None:
        self._finish()
        self.report = report
        self.model.set_rows(report.rejected)
        shown = (f" (the first {len(report.rejected):,} rejected records are listed)"
                 if report.rejected_total > len(report.rejected) else "")
        self._set_status(report.summary() + shown + ".\n" + "\n".join(report.lines()))
        if report.changed:
            self.imported.emit(report.summary())

    def _failed(self, exc: BaseException) -> None:
        self._finish()
        self._set_status("Cancelled: nothing was imported." if isinstance(exc, Cancelled)
                         else f"Nothing was imported: {user_message(exc)}")

    @Slot(str)
    def export_rejects(self, path: str) -> None:
        rows = [(r.file, r.where, r.reason) for r in (self.report.rejected if self.report else [])]
        if not rows or not path:
            return
        self.runner.run("Exporting rejected rows", lambda p, c: self.session.records.export_table(
            ["file", "where", "reason"], rows, path, "rejected import rows", identified=False),
            on_success=lambda n: self._set_status(f"{n} rejected rows written to {Path(path).name}."),
            on_failure=lambda e: self._set_status(f"Not written: {user_message(e)}"), owner=self)
