"""Other desks' changes, for the pages that show shared state (patient list, census, alerts, worklist)."""
from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

from services.core.errors import SessionLocked, WardLensError
from services.desk import Desk


class StoreChangesViewModel(QObject):
    """Listens on a thread of its own (the server pushes notifications; nothing polls the tables) and emits `changed`
    with the tables another desk changed, at most every `min_gap_s`. On a desk store it does nothing."""

    changed = Signal(list)
    connectionChanged = Signal(str)   # "" when connected, else why not (the listener retries on its own)

    def __init__(self, desk: Desk, parent: QObject | None = None, min_gap_s: float = 1.0) -> None:
        super().__init__(parent)
        self._listener = desk.change_listener()
        self._stop = threading.Event()
        self._gap = min_gap_s
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return self._listener is not None

    def start(self) -> None:
        if self._listener is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="wardlens-changes", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pending: set[str] = set()
        problem = ""
        while not self._stop.is_set():
            try:
                pending |= self._listener.wait(self._gap)
                if problem:
                    problem = ""
                    self.connectionChanged.emit("")
            except SessionLocked:
                return
            except WardLensError as exc:   # unreachable for now: say so once, try again shortly
                if str(exc) != problem:
                    problem = str(exc)
                    self.connectionChanged.emit(problem)
                self._stop.wait(5.0)
                continue
            if pending and not self._stop.is_set():
                self.changed.emit(sorted(pending))
                pending = set()

    def stop(self) -> None:
        """Before the session closes: the thread ends within a wait (a second), then its connection closes."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._listener is not None:
            self._listener.close()
