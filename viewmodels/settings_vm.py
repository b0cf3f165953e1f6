"""Settings page (administrators): every setting the product reads, in one form, checked before anything is saved."""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot

from models.domain import Permission
from services.core.errors import ValidationError
from services.desk import Desk
from viewmodels.background import BackgroundRunner
from viewmodels.base import StatusViewModel
from viewmodels.session_vm import user_message

LABELS = {"idle_lock_minutes": "Idle lock (minutes)", "alert_risk_threshold": "Alert risk threshold",
          "staffing_ratios": "Patients per nurse", "hospital_name": "Hospital name", "hospital_logo": "Hospital logo",
          "backup_folder": "Backup folder", "backup_keep_daily": "Daily backups kept",
          "backup_keep_monthly": "Monthly backups kept"}


class SettingsViewModel(StatusViewModel):
    loaded = Signal(list)         # [(key, label, description, text)]
    fieldErrors = Signal(dict)    # key -> message ({} clears them)
    logoChosen = Signal(str)      # the chosen logo as the setting's text (saved with the form)

    def __init__(self, session: Desk, runner: BackgroundRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.runner = session, runner
        self.values: dict[str, str] = {}

    @property
    def allowed(self) -> bool:
        return self.session.can(Permission.MANAGE_USERS)

    @Slot()
    def refresh(self) -> None:
        def job(_p, _c) -> list[tuple[str, str, str, str]]:
            svc = self.session.site.settings
            return [(k, LABELS.get(k, k), svc.describe(k), v) for k, v in svc.all().items()]
        self.runner.run("Reading settings", job, on_success=self._loaded,
                        on_failure=lambda e: self._set_status(user_message(e)), owner=self)

    def _loaded(self, rows: list[tuple[str, str, str, str]]) -> None:
        self.values = {k: v for k, _, _, v in rows}
        self.loaded.emit(rows)

    @Slot(dict)
    def save(self, values: dict) -> None:
        """Check every value, then save the changed ones (each signed and audited); nothing is saved if any is bad."""
        self._set_status("Saving…")

        def done(changed: list[str]) -> None:
            self.fieldErrors.emit({})
            self._set_status(f"Saved: {', '.join(LABELS.get(k, k) for k in changed)}." if changed
                             else "Nothing changed.")
            self.refresh()

        def failed(exc: BaseException) -> None:
            if isinstance(exc, ValidationError):
                self.fieldErrors.emit(dict(exc.fields))
                self._set_status("Nothing was saved: correct the fields marked below.")
            else:
                self._set_status(f"Nothing was saved: {user_message(exc)}")
        self.runner.run("Saving settings", lambda p, c: self.session.site.settings.set_many(dict(values)),
                        on_success=done, on_failure=failed, owner=self)

    @Slot(str)
    def choose_logo(self, path: str) -> None:
        """Read, scale and clean a logo file off the GUI thread; the form saves it with the other settings."""
        from services.site.settings import logo_text_from_file

        def failed(exc: BaseException) -> None:
            self.fieldErrors.emit(dict(exc.fields) if isinstance(exc, ValidationError)
                                  else {"hospital_logo": user_message(exc)})
        self.runner.run("Reading the logo", lambda p, c: logo_text_from_file(path), on_success=self.logoChosen.emit,
                        on_failure=failed, owner=self)

    @staticmethod
    def logo_png(text: str) -> bytes:
        """The PNG behind the logo setting's text, for the preview (empty for none or unreadable)."""
        import base64
        import binascii
        try:
            return base64.b64decode(text.strip(), validate=True) if text.strip() else b""
        except (binascii.Error, ValueError):
            return b""
