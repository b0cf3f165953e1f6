"""CSV export of what a table shows, through the export service (permission, escaping, audit)."""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from models.domain import Permission
from services.desk import Desk
from viewmodels.background import BackgroundRunner
from viewmodels.session_vm import user_message
from viewmodels.table_model import ListTableModel


class TableExporter(QObject):
    finished = Signal(str)   # a sentence for the status line: where it went, or why not

    def __init__(self, session: Desk, runner: BackgroundRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.runner = session, runner

    @property
    def can_export_tables(self) -> bool:
        """Identified tables: roles that export and see names (clinician, admin)."""
        return self.session.can(Permission.EXPORT) and self.session.sees_names

    @property
    def can_export_deidentified(self) -> bool:
        return self.session.can(Permission.EXPORT)

    def export_model(self, model: ListTableModel, path: str, what: str) -> None:
        headers, rows = model.headers, model.display_rows()  # a snapshot taken on the GUI thread
        self.runner.run(f"Exporting {what}", lambda p, c: self.session.records.export_table(headers, rows, path, what),
                        on_success=lambda n: self.finished.emit(f"{n:,} rows exported to {path} (the rows listed; "
                                                                "search first to export others)"),
                        on_failure=lambda e: self.finished.emit(user_message(e)), owner=self)

    def export_deidentified(self, path: str) -> None:
        self.runner.run("Exporting de-identified encounters",
                        lambda p, c: self.session.records.export_encounters(path, identified=False),
                        on_success=lambda n: self.finished.emit(f"{n:,} de-identified encounters exported to {path}"),
                        on_failure=lambda e: self.finished.emit(user_message(e)), owner=self)
