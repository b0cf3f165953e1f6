"""Guards against a Qt binding that corrupts Python's bool singletons (PySide6 6.12.0 did)."""
from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    flag = Signal(bool)


def test_bool_signals_keep_true_alive(qapp):
    e = _Emitter()
    seen = [0]

    def count(value: bool) -> None:  # keeps no reference to the value, so any loss shows below
        seen[0] += 1
    e.flag.connect(count)
    before = sys.getrefcount(True)
    for _ in range(200):
        e.flag.emit(True)
    assert seen[0] == 200
    # A binding that drops a reference per emission loses ~200 here and aborts the process later.
    assert sys.getrefcount(True) - before >= -5
