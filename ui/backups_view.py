"""Backups page (administrators): what the daily backup made, a backup now, and a restore from the list."""
from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import (QAbstractItemView, QInputDialog, QLabel, QLineEdit, QPushButton,
                               QVBoxLayout, QWidget)

from ui.tables import read_only_table
from ui.page import page_header
from viewmodels.backups_vm import BackupsViewModel

RESTORE_TEXT = ("Replace the store with the backup of {day}?\n\nEverything recorded since then is no longer in the "
                "store (the store as it is now is kept beside it, named in the message afterwards). This session "
                "closes; you are logged in again when it is done.\n\nYour password, to confirm:")


def _ask_password(parent: QWidget, text: str) -> str | None:
    password, ok = QInputDialog.getText(parent, "Restore a backup", text, QLineEdit.EchoMode.Password)
    return password if ok and password else None


class BackupsView(QWidget):
    def __init__(self, vm: BackupsViewModel, parent: QWidget | None = None,
                 ask_password: Callable[[QWidget, str], str | None] = _ask_password) -> None:
        super().__init__(parent)
        self.vm, self._ask_password = vm, ask_password
        lay = QVBoxLayout(self)
        self.backup_button = QPushButton("&Back up now")
        self.backup_button.setToolTip("Today's verified backup into the backup folder (setting backup_folder), then "
                                      "retention; made by itself at the first unlock of each day")
        self.restore_button = QPushButton("&Restore selected…")
        self.refresh_button = QPushButton("Re&fresh")
        lay.addLayout(page_header("Backups", self.backup_button, self.restore_button, self.refresh_button))
        self.table = read_only_table(vm.model)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        lay.addWidget(self.table, 1)
        self.status = QLabel(objectName="Subtitle", wordWrap=True)
        lay.addWidget(self.status)
        lay.addWidget(QLabel("Each backup is an encrypted copy with its key file, checked after writing. It opens with "
                             "the passwords valid when it was made; keep the folder on another disk.",
                             objectName="Subtitle", wordWrap=True))
        self.backup_button.clicked.connect(vm.backup_now)
        self.refresh_button.clicked.connect(vm.refresh)
        self.restore_button.clicked.connect(self._restore)
        vm.statusChanged.connect(self.status.setText)
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        vm.model.modelReset.connect(self._update_buttons)
        self._update_buttons()

    def _selected_row(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else None

    def _update_buttons(self, *_args) -> None:
        self.restore_button.setEnabled(self._selected_row() is not None)

    def _restore(self) -> None:
        row = self._selected_row()
        if row is None:
            return
        password = self._ask_password(self, RESTORE_TEXT.format(day=self.vm.model.row(row).day.isoformat()))
        if password:
            self.vm.restore(row, password)
