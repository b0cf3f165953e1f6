"""The base of the page view-models: a one-line status that notifies only on real change."""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject, Signal


class StatusViewModel(QObject):
    statusChanged = Signal(str)
    notice = Signal(str)  # a confirmation the window shows for a while ("Placed …", "Recorded …")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._status = ""

    @property
    def status(self) -> str:
        return self._status

    def _set_status(self, text: str) -> None:
        if text != self._status:
            self._status = text
            self.statusChanged.emit(text)


class ChangeViewModel(StatusViewModel):
    """An administrator's page of changes (people, wards): one change at a time off the GUI thread, its outcome in
    the status line, then the page's list read again. Subclasses give `runner` and `refresh`."""
    changed = Signal(str)   # a change finished (what was done), before the list is read again

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.busy = False

    def refresh(self) -> None:
        raise NotImplementedError

    def _change(self, what: str, job: Callable[[], object], after: Callable[[], None] | None = None) -> None:
        if self.busy:
            return
        self.busy = True
        self._set_status(f"{what}…")

        def done(_result) -> None:
            self.busy = False
            self._set_status(f"{what}: done.")
            if after is not None:
                after()
            self.changed.emit(what)
            self.refresh()

        def failed(exc: BaseException) -> None:
            from viewmodels.session_vm import user_message   # session_vm imports this module
            self.busy = False
            self._set_status(user_message(exc))
        self.runner.run(what, lambda p, c: job(), on_success=done, on_failure=failed, owner=self)
