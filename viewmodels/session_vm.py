"""Unlocking, the open session and the idle lock."""
from __future__ import annotations

import os

from pathlib import Path

from PySide6.QtCore import Property, QObject, QTimer, Signal, Slot

from models.domain import Permission  # noqa: F401 - re-exported for views, which may not import services
from services.core.errors import PasswordChangeRequired, SessionLocked, StoreDamaged, WardLensError
from services.core.paths import default_store_path
from services.desk import Desk, open_desk
from services.store.dialect import is_server_url, server_label, server_url_from, server_url_problem
from services.records.demo import build_demo_store
from services.site import accounts
from services.site.backup import VerifiedBackup, latest_verified_backup, restore
from services.site.rotation import rotate_data_key, unreachable
from viewmodels.background import BackgroundRunner
from viewmodels.observable import set_if_changed
from viewmodels.password_strength import PasswordStrengthViewModel


def user_message(exc: BaseException) -> str:
    """What the user reads: our own errors verbatim, anything else as an unexpected fault."""
    if isinstance(exc, WardLensError):
        return str(exc)
    return f"Unexpected error: {exc.__class__.__name__}: {exc}"


class SessionViewModel(QObject):
    """Owns the store path and the current session; locks after idle time and on request."""

    errorChanged = Signal(str)
    busyChanged = Signal(bool)
    progressChanged = Signal(str)
    demoLoginsChanged = Signal(list)
    sessionChanged = Signal(object)   # a Desk (the session and its façades), or None when locked
    notice = Signal(str)              # something the user should know after unlocking (e.g. a refused model)
    storeReady = Signal()
    backupOffered = Signal(object)    # a VerifiedBackup to restore after a damaged store, or None
    passwordChangeRequiredChanged = Signal(bool)   # the account logs in only with a new password (one-time password)

    storeChoiceChanged = Signal(bool)   # True: the hospital server; False: the store on this computer

    def __init__(self, store_path: Path | str, runner: BackgroundRunner, build_demo_if_missing: bool = True,
                 idle_check_ms: int = 15_000, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # The desk store on this computer, and the hospital server's address when the desk was started with one or
        # the person chose "Hospital server" on the unlock screen.
        self._server_url = store_path.strip() if is_server_url(store_path) else ""
        self.store_path = default_store_path() if self._server_url else Path(store_path)
        self._use_server = bool(self._server_url)
        self.runner = runner
        self._build_demo = build_demo_if_missing
        self._error = ""
        self._busy = False
        self._progress = ""
        self._demo_logins: list[dict] = []
        self._session: Desk | None = None
        self.offered_backup: VerifiedBackup | None = None
        self._credentials: tuple[str, str] = ("", "")
        self._must_change = False
        self.meter = PasswordStrengthViewModel(parent=self)   # the new password that replaces a one-time one
        self._idle = QTimer(self)
        self._idle.setInterval(idle_check_ms)
        self._idle.timeout.connect(self.check_idle)

    # --- properties -----------------------------------------------------------------------------
    def _get_error(self) -> str:
        return self._error

    def _get_busy(self) -> bool:
        return self._busy

    def _get_progress(self) -> str:
        return self._progress

    def _get_must_change(self) -> bool:
        return self._must_change

    error = Property(str, _get_error, notify=errorChanged)
    passwordChangeRequired = Property(bool, _get_must_change, notify=passwordChangeRequiredChanged)
    busy = Property(bool, _get_busy, notify=busyChanged)
    progress = Property(str, _get_progress, notify=progressChanged)

    @property
    def demo_logins(self) -> list[dict]:
        return list(self._demo_logins) if not self._use_server else []

    # --- which store: this computer's or the hospital server -------------------------------------
    @property
    def use_server(self) -> bool:
        return self._use_server

    @property
    def server_url(self) -> str:
        return self._server_url

    @property
    def target(self) -> Path | str:
        """What unlock opens: the desk store file, or the server store's URL."""
        return self._server_url if self._use_server else self.store_path

    @property
    def store_label(self) -> str:
        if self._use_server:
            return f"Hospital server: {server_label(self._server_url)}"
        return f"Store: {self.store_path}"

    @Slot(bool)
    def choose_server(self, on: bool) -> None:
        if set_if_changed(self, "_use_server", bool(on), "storeChoiceChanged"):
            set_if_changed(self, "_must_change", False, "passwordChangeRequiredChanged")
            self._set_error("")
            self.demoLoginsChanged.emit(self.demo_logins)

    def set_server(self, host: str, port: str, database: str, ca_file: str) -> bool:
        """The server's address from the unlock screen's fields; False (and the reason shown) when unusable."""
        url = server_url_from(host, port, database, ca_file)
        problem = server_url_problem(url)
        if problem:
            self._set_error(problem)
            return False
        self._server_url = url
        return True

    @property
    def session(self) -> Desk | None:
        return self._session

    def _set_error(self, v: str) -> None:
        set_if_changed(self, "_error", v, "errorChanged")

    def _set_busy(self, v: bool) -> None:
        set_if_changed(self, "_busy", v, "busyChanged")

    def _set_progress(self, v: str) -> None:
        set_if_changed(self, "_progress", v, "progressChanged")

    # --- commands -------------------------------------------------------------------------------
    @Slot()
    def prepare(self) -> None:
        """At start: build the demo store where none exists yet, then publish its demo logins."""
        if self._use_server or self.store_path.exists():
            self._load_demo_logins()
            self.storeReady.emit()
            return
        if not self._build_demo:
            self._set_error(f"No store at {self.store_path}.")
            return
        self._set_busy(True)
        self._set_progress("Building the demo store on first start…")

        def job(progress, cancel):
            return build_demo_store(self.store_path, progress=progress)

        self.runner.run("Building demo store", job, on_success=lambda _: self._demo_built(),
                        on_failure=self._failed, on_progress=lambda d, t, m: self._set_progress(m), owner=self)

    def _demo_built(self) -> None:
        self._set_busy(False)
        self._set_progress("")
        self._load_demo_logins()
        self.storeReady.emit()

    def _load_demo_logins(self) -> None:
        self._demo_logins = accounts.demo_logins(self.store_path) if self.store_path.exists() else []
        self.demoLoginsChanged.emit(self.demo_logins)

    @Slot(str, str)
    @Slot(str, str, str, str)
    def unlock(self, username: str, password: str, new_password: str = "", repeat: str = "") -> None:
        """Key derivation takes about half a second, so it runs off the GUI thread. With a one-time password the new
        password (typed twice) replaces it in the same step."""
        if self._busy:
            return
        if self._use_server and not self._server_url:
            self._set_error("Enter the hospital server's address, database and CA certificate file.")
            return
        if not username.strip() or not password:
            self._set_error("Enter your user name and password.")
            return
        if self._must_change and (not new_password or new_password != repeat):
            self._set_error("Type the same new password twice." if new_password else "Choose a new password.")
            return
        self._set_error("")
        self._set_busy(True)
        self._set_progress("Unlocking…")
        change = new_password if self._must_change else None

        target = self.target

        def job(progress, cancel):  # the same opening as every command: settings, the store's promoted model
            desk = open_desk(target, username, password, new_password=change)
            return desk, " ".join(desk.warnings)

        self.runner.run("Unlocking", job, on_success=lambda r: self._unlocked(*r),
                        on_failure=lambda e: self._unlock_failed(e, username, password), owner=self)

    def _unlocked(self, session: Desk, warning: str = "") -> None:
        set_if_changed(self, "_must_change", False, "passwordChangeRequiredChanged")
        self._set_busy(False)
        self._set_progress("")
        self._session = session
        self._idle.start()
        self.sessionChanged.emit(session)
        # the first unlock of the day makes it (a server store's backups are the DBA's, on the server)
        if os.environ.get("WARDLENS_DAILY_BACKUP", "on") != "off" and not isinstance(self.target, str):
            self.runner.run("Daily backup", lambda _p, _c: session.site.daily_backup(),
                            on_failure=self._daily_backup_failed, owner=self)
        if warning:
            self.notice.emit(warning)

    def _daily_backup_failed(self, exc: BaseException) -> None:
        if not isinstance(exc, SessionLocked):   # locked straight away: tomorrow's first unlock makes it
            self.notice.emit(f"The daily backup could not be made: {user_message(exc)} Nothing else was affected.")

    def _failed(self, exc: BaseException) -> None:
        self._set_busy(False)
        self._set_progress("")
        self._set_error(user_message(exc))

    def _unlock_failed(self, exc: BaseException, username: str, password: str) -> None:
        if isinstance(exc, PasswordChangeRequired):   # first: the view keeps the one-time password typed
            set_if_changed(self, "_must_change", True, "passwordChangeRequiredChanged")
        self._failed(exc)
        if isinstance(exc, StoreDamaged) and not self._use_server:  # offer the newest backup that verifies now
            self._credentials = (username, password)
            self.runner.run("Looking for a verified backup",
                            lambda p, c: latest_verified_backup(self.store_path, username, password),
                            on_success=self._offer, owner=self)

    def _offer(self, backup: VerifiedBackup | None) -> None:
        self.offered_backup = backup
        self.backupOffered.emit(backup)
        if backup is None:
            self._set_error(self._error + " No verified backup of this store was found; ask your IT administrator.")

    @Slot()
    def restore_offered_backup(self) -> None:
        """Put the offered backup in place (the damaged store is kept beside it), then log in."""
        backup, (username, password) = self.offered_backup, self._credentials
        if backup is None or not username:
            return
        self._set_busy(True)
        self._set_progress("Restoring the verified backup…")

        def job(progress, cancel):
            restore(backup.path, self.store_path, username, password)
            return open_desk(self.store_path, username, password)

        def done(session: Desk) -> None:
            self.offered_backup, self._credentials = None, ("", "")
            self.backupOffered.emit(None)
            self._set_error("")
            self._unlocked(session, " ".join(session.warnings))

        self.runner.run("Restoring backup", job, on_success=done, on_failure=self._failed, owner=self)

    @Slot(str, str)
    def restore_from_list(self, path: str, password: str) -> None:
        """Replace the store with a backup from the Backups page: the session closes, the backup is verified with this
        user's password, the current store is kept beside it, then the same user is logged in again. A wrong password
        or a backup that does not verify changes nothing (the unlock screen says why)."""
        desk = self._session
        if desk is None or self._busy:
            return
        username = desk.user.username
        self._session = None
        self._idle.stop()
        self._stop_jobs(desk)
        desk.lock(reason="restore from backup")
        self.sessionChanged.emit(None)
        self._set_busy(True)
        self._set_progress("Checking and restoring the backup…")

        def job(progress, cancel):
            kept = restore(Path(path), self.store_path, username, password)
            return open_desk(self.store_path, username, password), kept

        def done(result) -> None:
            session, kept = result
            self._unlocked(session, " ".join([f"Restored from {Path(path).name}; the store as it was is kept as "
                                              f"{Path(kept).name}.", *session.warnings]))

        self.runner.run("Restoring backup", job, on_success=done, on_failure=self._failed, owner=self)

    @Slot()
    def lock(self) -> None:
        if self._session is None:
            return
        session, self._session = self._session, None
        self._idle.stop()
        self._stop_jobs(session)
        session.lock(reason="user")
        self.sessionChanged.emit(None)

    @Slot(str)
    def user_edited(self, _text: str) -> None:
        """Another user name typed: the one-time-password step belonged to the previous one."""
        self.meter.context = ((_text or "").strip().lower(),)
        set_if_changed(self, "_must_change", False, "passwordChangeRequiredChanged")

    @Slot()
    def rotate_keys(self) -> None:
        """Re-encrypt the store under a new key (services.site.rotation). The session closes first, so that no page
        is reading while the store is re-keyed; the user logs in again afterwards (with the same password)."""
        desk = self._session
        if desk is None or self._busy:
            return
        missing = unreachable(desk.session)
        if missing:   # checked before the session closes: the page cannot force a rotation past them
            self.notice.emit(f"Not rotated: {', '.join(missing)} would lose access (no countersigned key yet). "
                             "Countersign their keys or give them new passwords first, or rotate with "
                             "'rotate-keys --force' on the command line.")
            return
        self._session = None
        self._idle.stop()
        self._stop_jobs(desk)
        self.sessionChanged.emit(None)
        self._set_busy(True)
        self._set_progress("Re-encrypting the store under a new key…")

        def job(progress, cancel):
            try:
                return rotate_data_key(desk.session)
            finally:
                desk.lock(reason="keys rotated")

        def done(result) -> None:
            self._set_busy(False)
            self._set_progress("")
            lines = ["Keys rotated: no earlier key file or password opens this store now. Log in again.",
                     f"The new key was sealed for: {', '.join(result.granted) or 'nobody else'}."]
            if result.without_grant:
                lines.append(f"Without access until given a new password: {', '.join(result.without_grant)}.")
            self.notice.emit(" ".join(lines))

        self.runner.run("Rotating keys", job, on_success=done, on_failure=self._failed, owner=self)

    def _stop_jobs(self, desk: Desk) -> None:
        """No worker may be inside SQLite when the store closes: cancel, interrupt, then wait."""
        self.runner.cancel_all()
        desk.interrupt()
        self.runner.wait_idle()

    @Slot()
    def note_activity(self) -> None:
        if self._session is not None:
            self._session.session.touch()

    @Slot()
    def check_idle(self) -> None:
        desk = self._session
        if desk is not None and desk.session.idle_for() >= desk.session.idle_seconds > 0:
            self._stop_jobs(desk)
            desk.session.check_idle()
            self._session = None
            self._idle.stop()
            self._set_error("Locked after inactivity. Log in again to continue.")
            self.sessionChanged.emit(None)
