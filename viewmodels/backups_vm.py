"""Backups page (administrators): the backups in the site's backup folder, the day's backup on demand, and a restore
from the list (the session view-model closes the session and puts the backup in place: services.site.backup)."""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot

from models.domain import Permission
from services.desk import Desk
from services.site.daily_backup import BackupEntry, DailyResult
from viewmodels.background import BackgroundRunner
from viewmodels.base import StatusViewModel
from viewmodels.session_vm import user_message
from viewmodels.table_model import Column, ListTableModel

KEPT = {"daily": "daily", "monthly": "monthly", "": "goes at the next daily backup"}

BACKUP_COLUMNS: list[Column[BackupEntry]] = [
    Column("Date", lambda e: e.day.isoformat()),
    Column("Size", lambda e: f"{e.size / 2**20:.1f} MB"),
    Column("Checked", lambda e: "verified when made" if e.verified else "not made by this store's WardLens"),
    Column("Audit rows", lambda e: f"{e.audit_rows:,}" if e.audit_rows else ""),
    Column("Kept as", lambda e: KEPT.get(e.kept_for, e.kept_for)),
    Column("File", lambda e: e.path.name),
]


class BackupsViewModel(StatusViewModel):
    restoreRequested = Signal(str, str)   # backup path, the administrator's password: the session view-model restores

    def __init__(self, session: Desk, runner: BackgroundRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.runner = session, runner
        self.model: ListTableModel[BackupEntry] = ListTableModel(BACKUP_COLUMNS, self)
        self.folder = ""
        self.busy = False

    @property
    def allowed(self) -> bool:
        return self.session.can(Permission.BACKUP) and not self.session.on_server   # the DBA's on a server

    @Slot()
    def refresh(self) -> None:
        def job(_p, _c) -> tuple[str, list[BackupEntry]]:
            from services.site.daily_backup import folder_of
            return str(folder_of(self.session.session)), self.session.site.backups()
        self.runner.run("Reading backups", job, on_success=self._loaded,
                        on_failure=lambda e: self._set_status(user_message(e)), owner=self)

    def _loaded(self, result: tuple[str, list[BackupEntry]]) -> None:
        self.folder, entries = result
        self.model.set_rows(entries)
        self._set_status(f"{len(entries)} backup{'' if len(entries) == 1 else 's'} in {self.folder}" if entries else
                         f"No backups yet in {self.folder}: the first unlock of each day makes one.")

    @Slot()
    def backup_now(self) -> None:
        """Today's backup (if not made yet) and retention, as at the first unlock of the day."""
        if self.busy:
            return
        self.busy = True
        self._set_status("Writing and verifying today's backup…")

        def done(r: DailyResult) -> None:
            self.busy = False
            self._set_status(f"Today's backup {'written and verified' if r.made else 'was already made'}"
                             f"{f'; {len(r.removed)} old backups removed by retention' if r.removed else ''}.")
            self.refresh()

        def failed(exc: BaseException) -> None:
            self.busy = False
            self._set_status(f"The backup could not be made: {user_message(exc)}")
        self.runner.run("Backing up", lambda p, c: self.session.site.daily_backup(), on_success=done,
                        on_failure=failed, owner=self)

    @Slot(int, str)
    def restore(self, row: int, password: str) -> None:
        if 0 <= row < self.model.rowCount() and password:
            self.restoreRequested.emit(str(self.model.row(row).path), password)
