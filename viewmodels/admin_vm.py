"""Store-wide administrator actions from the menus: a verified backup to a chosen file (e.g. a USB drive)."""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot

from models.domain import Permission
from services.desk import Desk
from viewmodels.background import BackgroundRunner
from viewmodels.base import StatusViewModel
from viewmodels.session_vm import user_message


class AdminViewModel(StatusViewModel):
    failed = Signal(str)

    def __init__(self, session: Desk, runner: BackgroundRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.runner = session, runner

    @property
    def can_backup(self) -> bool:
        return self.session.can(Permission.BACKUP)

    @Slot(str)
    def backup(self, path: str) -> None:
        """Copy, verify, then name the file: the copy is checked before it is called a backup (services.site.backup)."""
        self._set_status(f"Writing a verified backup to {path}…")
        self.runner.run("Backing up", lambda p, c: self.session.site.backup(path),
                        on_success=lambda r: self.notice.emit(f"Backup written and verified: {path} (and "
                                                              f"{path}.keys), audit chain of {r.audit_rows:,} rows."),
                        on_failure=lambda e: self.failed.emit(user_message(e)), owner=self)
