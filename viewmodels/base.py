"""The base of the page view-models: a one-line status that notifies only on real change."""
from __future__ import annotations

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
