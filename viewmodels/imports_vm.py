"""Imports page (administrators): a UCI encounter CSV, FHIR R4 files or a Bulk Data folder, or HL7 v2 ADT messages
into the store with progress, the counts per kind, the rejected records with file, place and reason, their export,
and a cancel that leaves nothing half-imported (one transaction: services.records.sources)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from models.domain import Permission
from services.core.errors import Cancelled, WardLensError
from services.records.csv_mapping import load_mapping
from services.desk import Desk
from services.records.intake import RecordsReport, Rejection
from viewmodels.background import BackgroundRunner, Task
from viewmodels.base import StatusViewModel
from viewmodels.session_vm import user_message
from viewmodels.table_model import Column, ListTableModel

REJECT_COLUMNS: list[Column[Rejection]] = [Column("File", lambda r: r.file), Column("Where", lambda r: r.where),
                                           Column("Reason", lambda r: r.reason)]


WATCH_INTERVAL_MS = 30_000


class ImportsViewModel(StatusViewModel):
    progressChanged = Signal(int, int)   # done, total (bytes read)
    runningChanged = Signal(bool)
    imported = Signal(str)               # the summary, once rows were stored (other pages re-read)
    watchChanged = Signal(str)           # the watched folder's last pass, in words ("" when the folder is off)

    def __init__(self, session: Desk, runner: BackgroundRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.runner = session, runner
        self.model: ListTableModel[Rejection] = ListTableModel(REJECT_COLUMNS, self)
        self.report: RecordsReport | None = None
        self._task: Task | None = None
        self._watch_task: Task | None = None
        self.watch_status = ""
        # the watched folder: an administrator's desk takes the files the hospital's systems drop (off when unset)
        self._watch = QTimer(self)
        self._watch.setInterval(WATCH_INTERVAL_MS)
        self._watch.timeout.connect(self.watch_pass)
        if self.allowed:
            self._watch.start()

    @property
    def allowed(self) -> bool:
        return self.session.can(Permission.IMPORT)

    @property
    def running(self) -> bool:
        return self._task is not None

    @Slot(str)
    def start(self, path: str, mapping: str | dict | None = None) -> None:
        """Import a file or folder; `mapping`: a saved column mapping (its path) or one made on the page."""
        if self._task is not None or not path:
            return
        self.model.set_rows([])
        self.report = None
        self._set_status(f"Importing {Path(path).name}…")
        self._task = self.runner.run(
            "Importing", lambda p, c: self.session.records.import_files([Path(path)], progress=p, cancel=c,
                                                                        mapping=mapping),
            on_success=self._done, on_failure=self._failed,
            on_progress=lambda d, t, _m: self.progressChanged.emit(d, t), owner=self)
        self.runningChanged.emit(True)

    def mapping_names_files(self, mapping: str) -> bool:
        """Whether a saved mapping reads an export folder (it names a file per kind) rather than one CSV."""
        try:
            doc = load_mapping(mapping)
        except WardLensError:
            return False   # the import itself then says what is wrong with it
        return any(isinstance(v, dict) and v.get("file") for v in doc.values())

    def watched_folder(self) -> str:
        return self.session.site.settings.get("import_folder")

    @Slot()
    def watch_pass(self) -> None:
        """One pass over the watched folder, in the background; skipped while an import runs or a pass is under way
        (both write the store in one transaction each)."""
        folder = self.watched_folder()
        if not folder or self._task is not None or self._watch_task is not None or not self.allowed:
            return
        self._watch_task = self.runner.run(
            "Importing from the watched folder", lambda p, c: self.session.records.import_watched_folder(folder, c),
            on_success=self._watched, on_failure=self._watch_failed, owner=self)

    def _watched(self, results: list) -> None:
        self._watch_task = None
        if not results:
            return
        done = sum(r.ok for r in results)
        failed = [r.name for r in results if not r.ok]
        text = (f"Watched folder: {done} file{'s' if done != 1 else ''} imported" +
                (f", {len(failed)} moved to failed/ with a reason file ({', '.join(failed[:3])}"
                 f"{' …' if len(failed) > 3 else ''})" if failed else "") + ".")
        self.watch_status = text
        self.watchChanged.emit(text)
        self.imported.emit(text)

    def _watch_failed(self, exc: BaseException) -> None:
        self._watch_task = None
        self.watch_status = f"Watched folder not read: {user_message(exc)}"
        self.watchChanged.emit(self.watch_status)

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
