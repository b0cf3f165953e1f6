"""The column-mapping step: which column of the hospital's CSV holds each field WardLens keeps (viewmodels/mapping_vm)."""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QLabel, QListWidget,
                               QListWidgetItem, QPushButton, QVBoxLayout, QWidget)

from viewmodels.mapping_vm import FIELDS, SYSTEMS, MappingViewModel

NONE = "(not in this file)"


def _save_as(parent: QWidget) -> str:
    return QFileDialog.getSaveFileName(parent, "Save the column mapping", "mapping.json", "Mappings (*.json)")[0]


class MappingDialog(QDialog):
    def __init__(self, vm: MappingViewModel, parent: QWidget | None = None,
                 save_as: Callable[[QWidget], str] = _save_as) -> None:
        super().__init__(parent)
        self.vm = vm
        self.setWindowTitle("Import a CSV with the hospital's own columns")
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("One row per hospital stay. Choose the column that holds each field; fields the file does "
                             "not have stay empty. Every row is taken as an inpatient stay.", wordWrap=True))
        form = QFormLayout()
        self.combos: dict[tuple[str, str], QComboBox] = {}
        for section, field, label, required in FIELDS:
            combo = QComboBox()
            combo.currentTextChanged.connect(
                lambda text, s=section, f=field: vm.set_column(s, f, "" if text == NONE else text))
            self.combos[(section, field)] = combo
            form.addRow(label + (" *" if required else ""), combo)
        self.diagnoses = QListWidget()
        self.diagnoses.setMaximumHeight(110)
        self.diagnoses.itemChanged.connect(self._diagnoses)
        self.system = QComboBox()
        self.system.addItems(list(SYSTEMS))
        self.system.currentTextChanged.connect(lambda _t: self._diagnoses())
        form.addRow("Diagnosis columns (leftmost = main)", self.diagnoses)
        form.addRow("Diagnosis code system", self.system)
        lay.addLayout(form)
        self.problems = QLabel(objectName="Subtitle", wordWrap=True)
        self.status = QLabel(objectName="Subtitle", wordWrap=True)
        lay.addWidget(self.problems)
        lay.addWidget(self.status)
        buttons = QDialogButtonBox()
        self.save_button = QPushButton("&Save mapping…")
        self.import_button = QPushButton("&Import")
        buttons.addButton(self.save_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.import_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        buttons.rejected.connect(self.reject)
        self.import_button.clicked.connect(self.accept)
        self.save_button.clicked.connect(lambda: vm.save(save_as(self)))
        lay.addWidget(buttons)
        vm.headerChanged.connect(self._header)
        vm.problemsChanged.connect(self._problems)
        vm.statusChanged.connect(self.status.setText)
        self._header(vm.header)
        self._problems(vm.problems)

    def _header(self, header: list[str]) -> None:
        for (section, field), combo in self.combos.items():
            combo.blockSignals(True)
            combo.clear()
            combo.addItems([NONE, *header])
            combo.blockSignals(False)
        self.diagnoses.blockSignals(True)
        self.diagnoses.clear()
        for column in header:
            item = QListWidgetItem(column)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.diagnoses.addItem(item)
        self.diagnoses.blockSignals(False)

    def _diagnoses(self, *_args) -> None:
        checked = [self.diagnoses.item(i).text() for i in range(self.diagnoses.count())
                   if self.diagnoses.item(i).checkState() == Qt.CheckState.Checked]
        self.vm.set_diagnoses(checked, self.system.currentText())

    def _problems(self, problems: list[str]) -> None:
        self.problems.setText("Still needed: " + "; ".join(problems) if problems else "The mapping is complete.")
        self.import_button.setEnabled(not problems)
        self.save_button.setEnabled(not problems)
