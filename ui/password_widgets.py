"""A strength meter under a new-password field: five steps, the verdict in words and what would make it stronger."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QProgressBar, QVBoxLayout, QWidget

from viewmodels.password_strength import MIN_LENGTH, PasswordStrengthViewModel, Strength
from viewmodels.password_vm import ChangePasswordViewModel

_COLOURS = ("#a4161a", "#a4161a", "#b35c00", "#2b7a3d", "#1f5f30")


class PasswordMeter(QWidget):
    def __init__(self, vm: PasswordStrengthViewModel, field: QLineEdit, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)
        self.bar = QProgressBar(minimum=0, maximum=5, textVisible=False, maximumHeight=6)
        self.bar.setAccessibleName("Password strength")
        self.text = QLabel(objectName="Subtitle", wordWrap=True, alignment=Qt.AlignmentFlag.AlignTop)
        lines = self.text.fontMetrics().lineSpacing() * 3 + 6
        self.text.setMinimumHeight(lines)   # a wrapped verdict is never clipped, and the form does not jump
        self.setMinimumHeight(lines + 14)
        lay.addWidget(self.bar)
        lay.addWidget(self.text)
        field.textChanged.connect(vm.set_password)
        vm.strengthChanged.connect(self._show)
        self._show(vm.strength)

    def _show(self, s: Strength) -> None:
        self.bar.setValue(s.score + 1 if s.label else 0)
        self.bar.setStyleSheet(f"QProgressBar::chunk {{ background: {_COLOURS[s.score]}; }}")
        if not s.label:
            self.text.setText(f"At least {MIN_LENGTH} characters; a few uncommon words make a strong password.")
        elif s.acceptable:
            self.text.setText(f"Strength: {s.label}." + (f" {s.hints[0]}" if s.hints and s.score < 3 else ""))
        else:
            self.text.setText(f"Strength: {s.label}. Not accepted: {s.problem}.")


class ChangePasswordDialog(QDialog):
    """File → Change my password…: the current password, the new one twice, its strength."""

    def __init__(self, vm: ChangePasswordViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        self.setWindowTitle("Change my password")
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"Signed in as <b>{vm.session.user.username}</b>. Your copy of the store's keys is "
                             "re-locked under the new password; the old one stops working.", wordWrap=True))
        form = QFormLayout()
        pw = QLineEdit.EchoMode.Password
        self.current = QLineEdit(echoMode=pw, accessibleName="Current password")
        self.new = QLineEdit(echoMode=pw, accessibleName="New password")
        self.repeat = QLineEdit(echoMode=pw, accessibleName="Repeat the new password")
        self.meter = PasswordMeter(vm.meter, self.new)
        form.addRow("&Current password", self.current)
        form.addRow("&New password", self.new)
        form.addRow("", self.meter)
        form.addRow("&Repeat", self.repeat)
        lay.addLayout(form)
        self.status = QLabel(objectName="ErrorLabel", wordWrap=True)
        lay.addWidget(self.status)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("&Change password")
        lay.addWidget(self.buttons)
        self.buttons.accepted.connect(lambda: vm.change(self.current.text(), self.new.text(), self.repeat.text()))
        self.buttons.rejected.connect(self.reject)
        vm.statusChanged.connect(self.status.setText)
        vm.busyChanged.connect(self._busy)
        vm.changed.connect(self.accept)
        self.setMinimumWidth(540)

    def _busy(self, busy: bool) -> None:
        for w in (self.current, self.new, self.repeat, self.buttons):
            w.setEnabled(not busy)
        if not busy and self.vm.status and not self.vm.status.startswith("Password changed"):
            for w in (self.current, self.new, self.repeat):
                w.clear()
            self.current.setFocus()
