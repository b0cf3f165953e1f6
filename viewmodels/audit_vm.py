"""The audit log for administrators: recent events and a filter (the store check is on the Store page)."""
from __future__ import annotations

from PySide6.QtCore import QObject, Slot

from models.domain import AuditEvent, Permission
from services.desk import Desk
from viewmodels.background import BackgroundRunner
from viewmodels.base import StatusViewModel
from viewmodels.session_vm import user_message
from viewmodels.table_model import Column, ListTableModel

AUDIT_COLUMNS: list[Column[AuditEvent]] = [
    Column("#", lambda e: e.id, align_right=True),
    Column("When (UTC)", lambda e: e.ts[:19].replace("T", " ")),
    Column("User", lambda e: e.username),
    Column("Action", lambda e: e.action),
    Column("What", lambda e: f"{e.entity} {e.entity_id}".strip()),
    Column("Detail", lambda e: e.detail),
]


class AuditViewModel(StatusViewModel):
    LIMIT = 5000

    def __init__(self, session: Desk, runner: BackgroundRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.runner = session, runner
        self.model: ListTableModel[AuditEvent] = ListTableModel(AUDIT_COLUMNS, self)
        self._events: list[AuditEvent] = []
        self._filter = ""

    @property
    def allowed(self) -> bool:
        return self.session.can(Permission.READ_AUDIT)


    @Slot()
    def refresh(self) -> None:
        self.runner.run("Reading the audit log", lambda p, c: self.session.site.audit_log(self.LIMIT), on_success=self._loaded,
                        on_failure=lambda e: self._set_status(user_message(e)), owner=self)

    def _loaded(self, events: list[AuditEvent]) -> None:
        self._events = events
        self._apply()

    @Slot(str)
    def set_filter(self, text: str) -> None:
        if text != self._filter:
            self._filter = text
            self._apply()

    def _apply(self) -> None:
        q = self._filter.strip().lower()
        rows = [e for e in self._events if not q or q in f"{e.username} {e.action} {e.entity} {e.entity_id} {e.detail}".lower()]
        self.model.set_rows(rows)
        self._set_status(f"{len(rows):,} of the latest {len(self._events):,} events")
