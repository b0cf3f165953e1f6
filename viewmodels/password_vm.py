"""A signed-in user changes their own password, in the background (the key derivation takes a second or more)."""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot

from services.core.errors import WrongPassword
from services.desk import Desk
from services.site.passwords import strength
from viewmodels.background import BackgroundRunner
from viewmodels.base import StatusViewModel
from viewmodels.password_strength import PasswordStrengthViewModel
from viewmodels.session_vm import user_message


class ChangePasswordViewModel(StatusViewModel):
    """Any signed-in user changes their own password; their copy of the keys is re-wrapped under it."""
    busyChanged = Signal(bool)
    changed = Signal()

    def __init__(self, session: Desk, runner: BackgroundRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.runner = session, runner
        user = session.user
        self.meter = PasswordStrengthViewModel((user.username, user.display_name), self)
        self._busy = False

    @property
    def busy(self) -> bool:
        return self._busy

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busyChanged.emit(busy)

    @Slot(str, str, str)
    def change(self, current: str, new: str, repeat: str) -> None:
        if self._busy:
            return
        if not current:
            self._set_status("Type your current password.")
            return
        if new != repeat:
            self._set_status("The new password and its repetition differ.")
            return
        verdict = strength(new, self.meter.context)
        if not verdict.acceptable:
            self._set_status(f"New password: {verdict.problem}.")
            return
        self._set_busy(True)
        self._set_status("Changing your password…")
        self.runner.run("Changing your password",
                        lambda p, c: self.session.site.accounts.change_password(current, new),
                        on_success=self._done, on_failure=self._failed, owner=self)

    def _done(self, _result: object) -> None:
        self._set_busy(False)
        self._set_status("Password changed. Use the new one from now on.")
        self.changed.emit()

    def _failed(self, exc: BaseException) -> None:
        self._set_busy(False)
        self._set_status("Your current password is not right; nothing was changed." if isinstance(exc, WrongPassword)
                         else user_message(exc))
