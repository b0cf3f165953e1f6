"""A new password as the user types it: its strength in words (services.site.passwords)."""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot

from services.site.passwords import MIN_LENGTH, Strength, strength

__all__ = ["MIN_LENGTH", "PasswordStrengthViewModel", "Strength"]   # what the views may use


class PasswordStrengthViewModel(QObject):
    """Notifies only when the verdict changes, not on every key press."""
    strengthChanged = Signal(object)   # a Strength

    def __init__(self, context: tuple[str, ...] = (), parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self._strength = strength("", context)

    @property
    def strength(self) -> Strength:
        return self._strength

    @Slot(str)
    def set_password(self, text: str) -> None:
        verdict = strength(text, self.context)
        if verdict != self._strength:
            self._strength = verdict
            self.strengthChanged.emit(verdict)
