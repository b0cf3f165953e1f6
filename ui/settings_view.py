"""Settings page (administrators): one field per setting with what it does; errors shown beside the field."""
from __future__ import annotations

from typing import Callable

from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout,
                               QWidget)

from ui.page import page_header
from viewmodels.settings_vm import SettingsViewModel


def _ask_logo(parent: QWidget) -> str:
    path, _ = QFileDialog.getOpenFileName(parent, "Choose the hospital's logo", "", "Images (*.png *.jpg *.jpeg)")
    return path


class SettingsView(QWidget):
    def __init__(self, vm: SettingsViewModel, parent: QWidget | None = None,
                 ask_logo: Callable[[QWidget], str] = _ask_logo) -> None:
        super().__init__(parent)
        self.vm, self._ask_logo = vm, ask_logo
        self.fields: dict[str, QLineEdit] = {}
        self.errors: dict[str, QLabel] = {}
        lay = QVBoxLayout(self)
        self.save_button = QPushButton("&Save")
        self.revert_button = QPushButton("&Revert")
        lay.addLayout(page_header("Settings", self.save_button, self.revert_button))
        self.form = QFormLayout()
        lay.addLayout(self.form)
        lay.addStretch(1)
        self.status = QLabel(objectName="Subtitle", wordWrap=True)
        lay.addWidget(self.status)
        lay.addWidget(QLabel("Each change is signed with the administrator key and audited; a setting changed outside "
                             "WardLens is not used.", objectName="Subtitle", wordWrap=True))
        vm.loaded.connect(self._show)
        vm.fieldErrors.connect(self._errors)
        vm.statusChanged.connect(self.status.setText)
        self.save_button.clicked.connect(lambda: vm.save({k: f.text() for k, f in self.fields.items()}))
        self.revert_button.clicked.connect(vm.refresh)

    def _show(self, rows: list) -> None:
        for key, label, description, text in rows:
            if key not in self.fields:
                field, error = QLineEdit(), QLabel(objectName="FieldError", wordWrap=True)
                field.setToolTip(description)
                field.setAccessibleName(label)
                help_text = QLabel(description, objectName="Subtitle", wordWrap=True)
                box = QVBoxLayout()
                box.setSpacing(2)
                for w in (self._logo_row(field) if key == "hospital_logo" else field, help_text, error):
                    box.addWidget(w) if isinstance(w, QWidget) else box.addLayout(w)
                error.setVisible(False)
                self.form.addRow(f"{label}:", box)
                self.fields[key], self.errors[key] = field, error
            self.fields[key].setText(text)

    def _errors(self, problems: dict) -> None:
        for key, label in self.errors.items():
            label.setText(problems.get(key, ""))
            label.setVisible(key in problems)

    def _logo_row(self, field: QLineEdit) -> QHBoxLayout:
        """The logo's text stays in a hidden field (saved with the form); people see the picture and two buttons."""
        field.setVisible(False)
        self.logo_preview = QLabel("none", objectName="Subtitle")
        self.logo_preview.setAccessibleName("Hospital logo preview")
        choose, remove = QPushButton("Choose &logo…"), QPushButton("Remove logo")
        row = QHBoxLayout()
        for w in (self.logo_preview, choose, remove):
            row.addWidget(w)
        row.addStretch(1)
        row.addWidget(field)
        field.textChanged.connect(self._preview)
        choose.clicked.connect(lambda: (path := self._ask_logo(self)) and self.vm.choose_logo(path))
        remove.clicked.connect(field.clear)
        self.vm.logoChosen.connect(field.setText)
        return row

    def _preview(self, text: str) -> None:
        pixmap = QPixmap()
        if pixmap.loadFromData(self.vm.logo_png(text)):
            self.logo_preview.setPixmap(pixmap.scaledToHeight(48))
        else:
            self.logo_preview.setPixmap(QPixmap())
            self.logo_preview.setText("none")
