"""Settings page (administrators): one field per setting with what it does; errors shown beside the field."""
from __future__ import annotations

from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from viewmodels.settings_vm import SettingsViewModel


class SettingsView(QWidget):
    def __init__(self, vm: SettingsViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        self.fields: dict[str, QLineEdit] = {}
        self.errors: dict[str, QLabel] = {}
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(QLabel("Settings", objectName="PageTitle"))
        top.addStretch(1)
        self.save_button = QPushButton("&Save")
        self.revert_button = QPushButton("&Revert")
        top.addWidget(self.save_button)
        top.addWidget(self.revert_button)
        lay.addLayout(top)
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
                for w in (field, help_text, error):
                    box.addWidget(w)
                error.setVisible(False)
                self.form.addRow(f"{label}:", box)
                self.fields[key], self.errors[key] = field, error
            self.fields[key].setText(text)

    def _errors(self, problems: dict) -> None:
        for key, label in self.errors.items():
            label.setText(problems.get(key, ""))
            label.setVisible(key in problems)
