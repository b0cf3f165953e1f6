"""The unlock screen: user, password, clear errors, and the demo logins where the store is the demo."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QFormLayout, QFrame, QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton,
                               QVBoxLayout, QWidget)

from ui.password_widgets import PasswordMeter
from ui.theme import icon
from viewmodels.session_vm import SessionViewModel


class UnlockView(QWidget):
    def __init__(self, vm: SessionViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        self.setObjectName("UnlockView")
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        card = QFrame(objectName="Card")
        card.setMinimumWidth(420)
        row.addWidget(card, 0)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)

        lay = QVBoxLayout(card)
        lay.setContentsMargins(28, 24, 28, 24)
        head = QHBoxLayout()
        logo = QLabel()
        logo.setPixmap(icon("wardlens").pixmap(48, 48))
        head.addWidget(logo)
        titles = QVBoxLayout()
        titles.addWidget(QLabel("WardLens", objectName="Title"))
        titles.addWidget(QLabel("Offline clinical risk desk", objectName="Subtitle"))
        head.addLayout(titles, 1)
        lay.addLayout(head)
        self.store_label = QLabel(f"Store: {vm.store_path}", objectName="Subtitle")
        self.store_label.setWordWrap(True)
        lay.addWidget(self.store_label)

        form = QFormLayout()
        self.user = QLineEdit(placeholderText="user name")
        self.user.setAccessibleName("User name")
        self.password = QLineEdit(placeholderText="password", echoMode=QLineEdit.EchoMode.Password)
        self.password.setAccessibleName("Password")
        self.new_password = QLineEdit(placeholderText="at least 8 characters", echoMode=QLineEdit.EchoMode.Password)
        self.new_password.setAccessibleName("New password")
        self.repeat = QLineEdit(placeholderText="the same again", echoMode=QLineEdit.EchoMode.Password)
        self.repeat.setAccessibleName("Repeat the new password")
        form.addRow("&User", self.user)
        form.addRow("&Password", self.password)
        form.addRow("&New password", self.new_password)
        self.meter = PasswordMeter(vm.meter, self.new_password)
        form.addRow("", self.meter)
        form.addRow("&Repeat", self.repeat)
        self._form = form
        lay.addLayout(form)
        self.error = QLabel(objectName="ErrorLabel", wordWrap=True)
        self.error.setVisible(False)
        lay.addWidget(self.error)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setVisible(False)
        self.progress_text = QLabel(objectName="Subtitle")
        lay.addWidget(self.progress)
        lay.addWidget(self.progress_text)
        self.restore_button = QPushButton("&Restore the last verified backup")
        self.restore_button.setVisible(False)
        lay.addWidget(self.restore_button)
        self.unlock_button = QPushButton("&Unlock", objectName="Primary")
        self.unlock_button.setDefault(True)
        lay.addWidget(self.unlock_button)

        self.demo_box = QLabel(objectName="HintBox", wordWrap=True)
        self.demo_box.setTextFormat(Qt.TextFormat.RichText)
        self.demo_box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.demo_box.setVisible(False)
        lay.addWidget(self.demo_box)

        self.unlock_button.clicked.connect(self._submit)
        self.password.returnPressed.connect(self._submit)
        self.user.returnPressed.connect(self.password.setFocus)
        vm.errorChanged.connect(self._show_error)
        vm.busyChanged.connect(self._show_busy)
        vm.progressChanged.connect(self.progress_text.setText)
        vm.demoLoginsChanged.connect(self._show_demo)
        vm.backupOffered.connect(self._show_offer)
        vm.passwordChangeRequiredChanged.connect(self._show_change)
        self.user.textEdited.connect(vm.user_edited)
        self.repeat.returnPressed.connect(self._submit)
        self.new_password.returnPressed.connect(self.repeat.setFocus)
        self._show_change(vm.passwordChangeRequired)
        self.restore_button.clicked.connect(vm.restore_offered_backup)
        self.setTabOrder(self.user, self.password)
        self.setTabOrder(self.password, self.new_password)
        self.setTabOrder(self.new_password, self.repeat)
        self.setTabOrder(self.repeat, self.unlock_button)
        self._show_demo(vm.demo_logins)
        self._show_error(vm.error)

    def _submit(self) -> None:
        self.vm.unlock(self.user.text(), self.password.text(), self.new_password.text(), self.repeat.text())

    def _show_change(self, required: bool) -> None:
        """A one-time password: the new password fields appear under it, the button says what it will do."""
        self._form.setRowVisible(self.meter, required)
        for w in (self.new_password, self.repeat):
            self._form.setRowVisible(w, required)
            w.clear()
        if not required:
            self.password.clear()   # never leave a one-time password typed for whoever comes next
        self.unlock_button.setText("&Change password and unlock" if required else "&Unlock")

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))
        if text and not self.vm.passwordChangeRequired:
            self.password.clear()
            self.password.setFocus()
        elif text:
            self.new_password.clear()
            self.repeat.clear()
            self.new_password.setFocus()

    def _show_offer(self, backup) -> None:
        self.restore_button.setVisible(backup is not None)
        if backup is not None:
            self.restore_button.setText(f"&Restore the verified backup of {backup.created_at[:16].replace('T', ' ')}")
            self.restore_button.setToolTip(backup.how)

    def _show_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        for w in (self.unlock_button, self.user, self.password, self.new_password, self.repeat):
            w.setEnabled(not busy)

    def _show_demo(self, logins: list[dict]) -> None:
        if not logins:
            self.demo_box.setVisible(False)
            return
        rows = "".join(f"<tr><td>{d['role']}</td><td><b>{d['username']}</b></td><td>{d['password']}</td></tr>"
                       for d in logins)
        self.demo_box.setText("<b>Demo store</b> with sample data (UCI Diabetes 130-US, generated names). "
                              f"Demo logins:<table cellspacing='6'>{rows}</table>")
        self.demo_box.setVisible(True)

    def reset(self) -> None:
        self.password.clear()
        (self.password if self.user.text() else self.user).setFocus()
