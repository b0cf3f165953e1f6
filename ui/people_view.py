"""People page (administrators): accounts, roles and one-time passwords, without a terminal."""
from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QDialogButtonBox, QFormLayout,
                               QHeaderView, QInputDialog, QLabel, QLineEdit, QMessageBox, QPushButton, QTableView,
                               QVBoxLayout, QWidget)

from ui.page import page_header
from viewmodels.people_vm import ROLES, PeopleViewModel


ROTATE_TEXT = ("Re-encrypt the store under a new key?\n\nThis session closes while it runs. Afterwards no earlier key "
               "file and no earlier password opens the store; everyone still active opens it with their own password "
               "as before. Backups made before keep their own keys.")


class NewPersonDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add a person")
        form = QFormLayout(self)
        self.username = QLineEdit(placeholderText="e.g. j.smith (lower case)")
        self.display = QLineEdit(placeholderText="e.g. Jo Smith, ward nurse")
        self.role = QComboBox()
        self.role.addItems(ROLES)
        self.role.setCurrentText("nurse")   # the least a care account needs: an administrator is chosen on purpose
        self.setMinimumWidth(self.fontMetrics().averageCharWidth() * 56)
        form.addRow("&User name", self.username)
        form.addRow("&Name shown", self.display)
        form.addRow("&Role", self.role)
        form.addRow(QLabel("WardLens makes a one-time password; they choose their own at their first login.",
                           wordWrap=True))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)


def _ask_new(parent: QWidget) -> tuple[str, str, str] | None:
    dialog = NewPersonDialog(parent)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return None
    return dialog.username.text(), dialog.display.text(), dialog.role.currentText()


def _ask_role(parent: QWidget, username: str, current: str) -> str | None:
    role, ok = QInputDialog.getItem(parent, "Change role", f"Role of {username}:", ROLES, ROLES.index(current), False)
    return role if ok else None


def _show_password(parent: QWidget, username: str, password: str) -> None:
    box = QMessageBox(QMessageBox.Icon.Information, "One-time password",
                      f"One-time password for <b>{username}</b>:<br><br><span style='font-size:14pt'>{password}</span>"
                      "<br><br>Give it to them in person. They choose their own at their first login. It is shown "
                      "only now.", parent=parent)
    box.exec()


RECOVERY_TEXT = ("Make a new recovery key?\n\nThe current recovery key stops working at once. The new one is shown "
                 "only once: print it or write it down and keep it locked away (it opens the store if every "
                 "administrator password is lost).")


def _show_recovery_key(parent: QWidget, key: str) -> None:
    from PySide6.QtGui import QTextDocument
    from PySide6.QtPrintSupport import QPrintDialog, QPrinter
    box = QMessageBox(QMessageBox.Icon.Information, "New recovery key",
                      f"The store's new recovery key:<br><br><nobr><span style='font-family:monospace;font-size:12pt;white-space:pre'>{key}"
                      "</span></nobr><br><br>It is shown only now. Print it for the safe; the old key no longer works.",
                      parent=parent)
    box.setStyleSheet("QLabel#qt_msgbox_label { min-width: 30em; }")   # the key on one line, never broken at a hyphen
    print_button = box.addButton("&Print…", QMessageBox.ButtonRole.ActionRole)
    box.addButton(QMessageBox.StandardButton.Close)
    box.exec()
    if box.clickedButton() is print_button:
        printer = QPrinter()
        if QPrintDialog(printer, parent).exec():
            doc = QTextDocument()
            doc.setHtml(f"<h2>WardLens recovery key</h2><p style='font-family:monospace;font-size:14pt'>{key}</p>"
                        "<p>Keep in a locked place. It opens the store if every administrator password is lost.</p>")
            doc.print_(printer)


class PeopleView(QWidget):
    def __init__(self, vm: PeopleViewModel, parent: QWidget | None = None,
                 ask_new: Callable[[QWidget], tuple[str, str, str] | None] = _ask_new,
                 ask_role: Callable[[QWidget, str, str], str | None] = _ask_role,
                 show_password: Callable[[QWidget, str, str], None] = _show_password,
                 show_recovery_key: Callable[[QWidget, str], None] = _show_recovery_key,
                 confirm: Callable[[QWidget, str], bool] = lambda parent, text: QMessageBox.question(
                     parent, "Please confirm", text) == QMessageBox.StandardButton.Yes) -> None:
        super().__init__(parent)
        self.vm, self._ask_new, self._ask_role = vm, ask_new, ask_role
        lay = QVBoxLayout(self)
        self.add_button = QPushButton("&Add person…")
        self.role_button = QPushButton("Change &role…")
        self.reset_button = QPushButton("New &password")
        self.deactivate_button = QPushButton("&Deactivate")
        self.reactivate_button = QPushButton("Re&activate")
        self.unlock_button = QPushButton("&Unlock")
        self.unlock_button.setToolTip("Clear the failed logins of a locked-out account")
        self.recovery_button = QPushButton("Recovery ke&y…")
        self.recovery_button.setToolTip("A new recovery key, shown once to print; the old one stops working")
        self.rotate_button = QPushButton("Rotate &keys…")
        self.rotate_button.setToolTip("Re-encrypt the store under a new key: no earlier key file or password opens it")
        lay.addLayout(page_header("People", self.add_button, self.role_button, self.reset_button,
                                  self.deactivate_button, self.reactivate_button, self.unlock_button, self.recovery_button,
                                  self.rotate_button))
        self.table = QTableView()
        self.table.setModel(vm.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        lay.addWidget(self.table, 1)
        self.status = QLabel(objectName="Subtitle", wordWrap=True)
        lay.addWidget(self.status)
        self.note = QLabel("Every change is signed with the administrator key and audited. After deactivating "
                           "someone who had a copy of the key file, rotate the keys.", objectName="Subtitle",
                           wordWrap=True)
        lay.addWidget(self.note)
        self.add_button.clicked.connect(self._add)
        self.role_button.clicked.connect(self._role)
        self.reset_button.clicked.connect(lambda: self._with_selected(vm.reset_password))
        self.deactivate_button.clicked.connect(lambda: self._with_selected(vm.deactivate))
        self.reactivate_button.clicked.connect(lambda: self._with_selected(vm.reactivate))
        self.unlock_button.clicked.connect(lambda: self._with_selected(vm.unlock))
        self.rotate_button.clicked.connect(lambda: confirm(self, ROTATE_TEXT) and vm.request_rotation())
        self.recovery_button.clicked.connect(lambda: confirm(self, RECOVERY_TEXT) and vm.new_recovery_key())
        vm.recoveryKey.connect(lambda key: show_recovery_key(self, key))
        vm.statusChanged.connect(self.status.setText)
        vm.oneTimePassword.connect(lambda user, pw: show_password(self, user, pw))
        vm.model.modelReset.connect(self.table.resizeColumnsToContents)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        vm.model.modelReset.connect(self._update_buttons)
        if vm.session.on_server:   # logins are the server's: no key file, recovery key or lock-out of WardLens's own
            for b in (self.unlock_button, self.recovery_button, self.rotate_button):
                b.setVisible(False)
            self.note.setText("Each person's user name and password are their own login on the hospital server, which "
                              "enforces their role. Every change is audited.")
        self._update_buttons()

    def selected(self) -> dict | None:
        rows = self.table.selectionModel().selectedRows()
        return self.vm.model.row(rows[0].row()) if rows else None

    def select(self, username: str) -> None:
        for r in range(self.vm.model.rowCount()):
            if self.vm.model.row(r)["username"] == username:
                self.table.selectRow(r)
                return

    def _update_buttons(self, *_args) -> None:
        p = self.selected()
        me = self.vm.session.user.username
        for b in (self.role_button, self.reset_button, self.unlock_button):
            b.setEnabled(p is not None and p["active"])
        self.deactivate_button.setEnabled(p is not None and p["active"] and p["username"] != me)
        self.reactivate_button.setEnabled(p is not None and not p["active"])

    def _with_selected(self, action) -> None:
        p = self.selected()
        if p is not None:
            action(p["username"])

    def _add(self) -> None:
        answer = self._ask_new(self)
        if answer:
            self.vm.add(*answer)

    def _role(self) -> None:
        p = self.selected()
        if p is None:
            return
        role = self._ask_role(self, p["username"], p["role"])
        if role and role != p["role"]:
            self.vm.set_role(p["username"], role)
