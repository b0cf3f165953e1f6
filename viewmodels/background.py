"""One helper for all long work: run a job on the thread pool, report progress, allow cancel, and
deliver the result or the error back on the GUI thread (the way Anki runs its collection operations).

A job is `fn(progress, cancel) -> result`, where progress(done, total, message) may be called from
the worker and cancel is a services.core.progress.CancelToken the job checks at safe points.
"""
from __future__ import annotations

import gc
import itertools
import traceback
from typing import Any, Callable

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, QThreadPool, Signal, Slot

from services.core.progress import CancelToken, Job


class _Hub(QObject):
    """The only QObject a worker touches. Created once on the GUI thread and never deleted, so no Qt
    object's last reference can die on a worker (per-job signal objects did: a worker releasing its
    closure after the GUI thread had dropped the task destroyed a GUI-thread QObject off-thread).
    Workers emit with the job's key; Qt queues each emit to the GUI thread, where it is routed to the
    job's Task."""

    progress = Signal(int, int, int, str)
    succeeded = Signal(int, object)
    failed = Signal(int, object)
    done = Signal(int)

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, Task] = {}
        self.jobs: dict[int, Job] = {}
        self.progress.connect(self._progress)
        self.succeeded.connect(self._succeeded)
        self.failed.connect(self._failed)
        self.done.connect(self._done)

    @Slot(int, int, int, str)
    def _progress(self, key: int, done: int, total: int, message: str) -> None:
        if (task := self.live.get(key)) is not None:
            task.progress.emit(done, total, message)

    @Slot(int, object)
    def _succeeded(self, key: int, result: object) -> None:
        if (task := self.live.get(key)) is not None:
            task.succeeded.emit(result)

    @Slot(int, object)
    def _failed(self, key: int, exc: object) -> None:
        if (task := self.live.get(key)) is not None:
            task.failed.emit(exc)

    @Slot(int)
    def _done(self, key: int) -> None:
        self.jobs.pop(key, None)
        if (task := self.live.pop(key, None)) is not None:
            task._done()


_HUB: _Hub | None = None
_KEYS = itertools.count(1)


def _hub() -> _Hub:
    global _HUB
    if _HUB is None:
        _HUB = _Hub()
        app = QCoreApplication.instance()
        if app is not None:  # created from a worker, it would otherwise live there
            _HUB.moveToThread(app.thread())  # the hub must live where the callbacks are to run
    return _HUB


def _work(box: list, token: CancelToken, key: int, hub: _Hub) -> None:
    """Runs on a pool thread. A plain callable, not a QRunnable subclass: PySide's ownership of
    auto-deleted Python runnables has led to double frees. The job comes in a box emptied here, so
    the worker holds no reference to it (a view-model in its closure, say) once `done` is emitted:
    the hub's copy is released last, on the GUI thread."""
    job = box.pop()
    try:
        result = job(lambda d, t, m="": hub.progress.emit(key, int(d), int(t), str(m)), token)
    except BaseException as exc:  # delivered to the GUI thread, never lost in the pool
        exc.__wardlens_traceback__ = traceback.format_exc()  # type: ignore[attr-defined]
        hub.failed.emit(key, exc)
        del exc
    else:
        hub.succeeded.emit(key, result)
        del result
    finally:
        del job
        hub.done.emit(key)


class Task(QObject):
    """Handle on one running job: its signals arrive on the GUI thread."""

    progress = Signal(int, int, str)
    succeeded = Signal(object)
    failed = Signal(object)
    finished = Signal()

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label
        self.token = CancelToken()
        self.running = True

    def cancel(self) -> None:
        self.token.cancel()

    @Slot()
    def _done(self) -> None:
        self.running = False
        self.finished.emit()


_RUNNING: set = set()  # jobs of every runner in the process (the collector is process-wide)


def _guarded(owner: QObject, fn: Callable | None) -> Callable | None:
    if fn is None:
        return None

    def call(*args):
        if shiboken6.isValid(owner):
            fn(*args)
    return call


class BackgroundRunner(QObject):
    """Starts jobs and tracks them; `busyChanged` tells views when to show a progress indicator."""

    busyChanged = Signal(bool)
    taskStarted = Signal(object)
    taskFinished = Signal(object)

    def __init__(self, parent: QObject | None = None, pool: QThreadPool | None = None) -> None:
        super().__init__(parent)
        self._pool = pool or QThreadPool.globalInstance()
        self._tasks: list[Task] = []

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    @property
    def tasks(self) -> list[Task]:
        return list(self._tasks)

    def run(self, label: str, job: Job, on_success: Callable[[Any], None] | None = None,
            on_failure: Callable[[BaseException], None] | None = None,
            on_progress: Callable[[int, int, str], None] | None = None, owner: QObject | None = None) -> Task:
        """`owner`: the view-model the callbacks belong to. When it is deleted first (a workspace torn
        down at lock, say), the job is cancelled and its late result is dropped, not delivered."""
        hub = _hub()
        task = Task(label)
        task.finished.connect(self._finish)
        if owner is not None:
            owner.destroyed.connect(task.cancel)
            on_success, on_failure, on_progress = (_guarded(owner, f) for f in (on_success, on_failure, on_progress))
        if on_success:
            task.succeeded.connect(on_success)
        if on_failure:
            task.failed.connect(on_failure)
        if on_progress:
            task.progress.connect(on_progress)
        was_busy = self.busy
        if not _RUNNING:
            # Python's cyclic collector runs on whichever thread allocates; collecting a Qt object on a
            # worker would destroy it there and crash. While jobs run, cycles wait for the GUI thread.
            gc.disable()
        _RUNNING.add(task)
        self._tasks.append(task)
        key = next(_KEYS)
        hub.live[key], hub.jobs[key] = task, job  # held on the GUI thread until the job's done arrives
        self.taskStarted.emit(task)
        if not was_busy:
            self.busyChanged.emit(True)
        token = task.token  # the closure holds no Qt object but the immortal hub
        box = [job]
        del job
        self._pool.start(lambda: _work(box, token, key, hub))
        return task

    @Slot()
    def cancel_all(self) -> None:
        for t in self._tasks:
            t.cancel()

    def wait_idle(self, timeout_ms: int = 10_000) -> bool:
        """Block until no job of the pool is running (used before the store is closed at lock)."""
        return self._pool.waitForDone(timeout_ms)

    @Slot()
    def _finish(self) -> None:
        task = self.sender()
        _RUNNING.discard(task)
        if not _RUNNING:
            gc.enable()
        if task in self._tasks:
            self._tasks.remove(task)
        self.taskFinished.emit(task)
        if not self._tasks:
            self.busyChanged.emit(False)
