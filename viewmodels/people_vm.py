"""People (administrators): accounts with their role and status, and every change the `users` command makes. Key
derivation takes about half a second per change, so each runs off the GUI thread; a one-time password is handed to
the view once (`oneTimePassword`) and kept nowhere."""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot

from models.domain import Permission, Role
from services.desk import Desk
from services.site.accounts import new_one_time_password
from viewmodels.background import BackgroundRunner
from viewmodels.base import ChangeViewModel
from viewmodels.session_vm import user_message
from viewmodels.table_model import Column, ListTableModel

ROLES = [r.value for r in Role]


def _flags(p: dict) -> str:
    out = [f for f, on in (("deactivated", not p["active"]), ("must change password", p["must_change_password"]),
                           (f"{p['failed_logins']} failed logins", p["failed_logins"]),
                           ("NOT SIGNED: altered outside WardLens", not p["signed"])) if on]
    return ", ".join(out) or "active"


PEOPLE_COLUMNS: list[Column[dict]] = [
    Column("User", lambda p: p["username"]),
    Column("Name", lambda p: p["display_name"]),
    Column("Role", lambda p: p["role"]),
    Column("Status", _flags),
]


class PeopleViewModel(ChangeViewModel):
    oneTimePassword = Signal(str, str)   # user name, the password to hand over (shown once)
    recoveryKey = Signal(str)            # a new recovery key, handed to the view once and kept nowhere
    rotateRequested = Signal()           # the session view-model rotates (it closes this session first)

    def __init__(self, session: Desk, runner: BackgroundRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.runner = session, runner
        self.model: ListTableModel[dict] = ListTableModel(PEOPLE_COLUMNS, self)

    @property
    def allowed(self) -> bool:
        return self.session.can(Permission.MANAGE_USERS)

    @Slot()
    def refresh(self) -> None:
        self.runner.run("Reading accounts", lambda p, c: self.session.site.accounts.people(),
                        on_success=self._loaded, on_failure=lambda e: self._set_status(user_message(e)), owner=self)

    def _loaded(self, people: list[dict]) -> None:
        self.model.set_rows(people)
        if not self.status:
            self._set_status(f"{len(people)} accounts")

    def _change(self, what: str, job, username: str = "", one_time: str | None = None) -> None:  # type: ignore[override]
        """A change; a one-time password it made is handed to the view once, when the change is done."""
        super()._change(what, job, (lambda: self.oneTimePassword.emit(username, one_time)) if one_time else None)

    @Slot(str, str, str)
    def add(self, username: str, display_name: str, role: str) -> None:
        otp = new_one_time_password()
        self._change(f"Adding {username}", lambda: self.session.site.accounts.add_user(
            username, otp, Role(role), display_name, must_change=True), username.strip().lower(), otp)

    @Slot(str)
    def reset_password(self, username: str) -> None:
        otp = new_one_time_password()
        self._change(f"New password for {username}", lambda: self.session.site.accounts.reset_password(username, otp),
                     username, otp)

    @Slot(str)
    def deactivate(self, username: str) -> None:
        self._change(f"Deactivating {username}", lambda: self.session.site.accounts.deactivate_user(username), username)

    @Slot(str)
    def reactivate(self, username: str) -> None:
        otp = new_one_time_password()
        self._change(f"Reactivating {username}", lambda: self.session.site.accounts.reactivate_user(username, otp),
                     username, otp)

    @Slot(str, str)
    def set_role(self, username: str, role: str) -> None:
        otp = new_one_time_password() if role == Role.ADMIN.value else None
        self._change(f"Role of {username}", lambda: self.session.site.accounts.set_role(username, Role(role), otp),
                     username, otp)

    @Slot(str)
    def unlock(self, username: str) -> None:
        self._change(f"Unlocking {username}", lambda: self.session.site.accounts.unlock_account(username), username)

    @Slot()
    def new_recovery_key(self) -> None:
        """A new recovery key (the old one stops working at once); shown once, to be printed and locked away."""
        made: list[str] = []

        def job() -> None:
            made.append(self.session.site.accounts.regenerate_recovery_key())
        super()._change("New recovery key", job, lambda: self.recoveryKey.emit(made.pop()))

    @Slot()
    def request_rotation(self) -> None:
        if self.allowed:
            self.rotateRequested.emit()
