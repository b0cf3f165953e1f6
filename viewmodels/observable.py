"""Properties that notify only on real change (Friture's habit): setting the same value is silent."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject


def set_if_changed(obj: QObject, attr: str, value: Any, signal_name: str) -> bool:
    if getattr(obj, attr) == value:
        return False
    setattr(obj, attr, value)
    getattr(obj, signal_name).emit(value)
    return True
