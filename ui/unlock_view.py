"""The unlock screen: this computer's store or the hospital server, user, password, clear errors, and the demo logins
where the store is the demo."""
from __future__ import annotations

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (QFileDialog, QFormLayout, QFrame, QHBoxLayout, QLabel, QLineEdit, QProgressBar,
                               QPushButton, QRadioButton, QVBoxLayout, QWidget)

from ui.password_widgets import PasswordMeter
from ui.theme import icon
from viewmodels.session_vm import SessionViewModel


class ServerFields(QWidget):
    """The hospital server's address: server, port, database and the hospital's CA certificate file, remembered on
    this desk (never a password)."""

    KEYS = ("server/host", "server/port", "server/database", "server/ca_file")

    def __init__(self, url: str, settings: QSettings | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.host = QLineEdit(placeholderText="wardlens.hospital.local")
        self.port = QLineEdit(placeholderText="5432")
        self.database = QLineEdit(placeholderText="wardlens")
        self.ca_file = QLineEdit(placeholderText="the hospital's CA certificate (.pem)")
        browse = QPushButton("…")
        browse.setToolTip("Choose the CA certificate file")
        browse.clicked.connect(self._browse)
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.ca_file, 1)
        ca_row.addWidget(browse)
        for name, w in (("Host", self.host), ("Port", self.port), ("Database", self.database)):
            w.setAccessibleName(f"Server {name.lower()}")
            form.addRow(name, w)
        self.ca_file.setAccessibleName("CA certificate file")
        form.addRow("CA file", ca_row)
        for key, w in zip(self.KEYS, (self.host, self.port, self.database, self.ca_file)):
            if settings is not None:
                w.setText(str(settings.value(key, "") or ""))
        if url:   # started with --db URL: that address, whatever this desk remembered
            from urllib.parse import parse_qs, unquote, urlsplit
            parts = urlsplit(url)
            q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            self.host.setText(q.get("host") or parts.hostname or "")
            self.port.setText(str(q.get("port") or parts.port or ""))
            self.database.setText(unquote(parts.path.lstrip("/")))
            self.ca_file.setText(q.get("sslrootcert", ""))

    def values(self) -> tuple[str, str, str, str]:
        return self.host.text(), self.port.text(), self.database.text(), self.ca_file.text()

    def remember(self) -> None:
        if self.settings is not None:
            for key, value in zip(self.KEYS, self.values()):
                self.settings.setValue(key, value.strip())

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "The hospital's CA certificate", self.ca_file.text(),
                                              "Certificates (*.pem *.crt *.cer);;All files (*)")
        if path:
            self.ca_file.setText(path)


class UnlockView(QWidget):
    def __init__(self, vm: SessionViewModel, parent: QWidget | None = None, settings: QSettings | None = None) -> None:
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
        choice = QHBoxLayout()
        self.local_choice = QRadioButton("This &computer")
        self.server_choice = QRadioButton("&Hospital server")
        self.local_choice.setToolTip("The encrypted store on this workstation")
        self.server_choice.setToolTip("The hospital's WardLens server, shared by every desk (over verified TLS)")
        (self.server_choice if vm.use_server else self.local_choice).setChecked(True)
        choice.addWidget(self.local_choice)
        choice.addWidget(self.server_choice)
        choice.addStretch(1)
        lay.addLayout(choice)
        self.store_label = QLabel(vm.store_label, objectName="Subtitle")
        self.store_label.setWordWrap(True)
        lay.addWidget(self.store_label)
        self.server_box = ServerFields(vm.server_url, settings)
        lay.addWidget(self.server_box)

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
        self.server_choice.toggled.connect(vm.choose_server)
        vm.storeChoiceChanged.connect(self._show_choice)
        self._show_choice(vm.use_server)
        self._show_demo(vm.demo_logins)
        self._show_error(vm.error)

    def _submit(self) -> None:
        if self.vm.use_server:
            if not self.vm.set_server(*self.server_box.values()):
                return
            self.server_box.remember()
            self.store_label.setText(self.vm.store_label)
        self.vm.unlock(self.user.text(), self.password.text(), self.new_password.text(), self.repeat.text())

    def _show_choice(self, server: bool) -> None:
        self.server_box.setVisible(server)
        self.store_label.setText(self.vm.store_label)
        self.store_label.setVisible(not server)

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
        for w in (self.unlock_button, self.user, self.password, self.new_password, self.repeat, self.server_box,
                  self.local_choice, self.server_choice):
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
