"""Progress and cancellation for long work, in plain Python so services stay free of Qt."""
from __future__ import annotations

import threading
from typing import Callable, Protocol

from services.core.errors import Cancelled


class ProgressFn(Protocol):
    def __call__(self, done: int, total: int, message: str = "") -> None: ...


def no_progress(done: int, total: int, message: str = "") -> None:
    return None


class CancelToken:
    """Set from the GUI thread, checked by the worker at safe points."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()


Job = Callable[[ProgressFn, CancelToken], object]
