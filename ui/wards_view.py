"""Wards page (administrators): wards with their beds; add and rename wards, set their beds, take beds out of
service and back. The bed placement, forecasts and staffing read the beds in service."""
from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QInputDialog, QLabel,
                               QLineEdit, QPushButton, QSpinBox, QSplitter, QVBoxLayout, QWidget)

from ui.tables import read_only_table
from ui.page import page_header
from viewmodels.wards_vm import MAX_BEDS, WardsViewModel

REASONS = ["broken", "deep clean", "bay closed (infection control)", "awaiting repair", "no staff for this bed"]


class NewWardDialog(QDialog):
    def __init__(self, types: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add a ward")
        form = QFormLayout(self)
        self.name = QLineEdit(placeholderText="e.g. Medicine C")
        self.type = QComboBox()
        self.type.addItems(types)
        self.beds = QSpinBox(minimum=0, maximum=MAX_BEDS, value=20)
        form.addRow("&Name", self.name)
        form.addRow("&Type", self.type)
        form.addRow("&Beds", self.beds)
        form.addRow(QLabel("Beds are labelled with the ward's initials (e.g. MC-1, MC-2 …).", wordWrap=True))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)


def _ask_ward(parent: QWidget, types: list[str]) -> tuple[str, str, int] | None:
    dialog = NewWardDialog(types, parent)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return None
    return dialog.name.text(), dialog.type.currentText(), dialog.beds.value()


def _ask_name(parent: QWidget, current: str) -> str | None:
    name, ok = QInputDialog.getText(parent, "Rename ward", f"New name for {current}:", text=current)
    return name if ok else None


def _ask_beds(parent: QWidget, ward: str, current: int) -> int | None:
    n, ok = QInputDialog.getInt(parent, "Beds", f"How many beds does {ward} have?\nOnly beds never used can be "
                                "removed; take others out of service instead.", current, 0, MAX_BEDS)
    return n if ok else None


def _ask_reason(parent: QWidget, bed: str) -> str | None:
    reason, ok = QInputDialog.getItem(parent, "Out of service", f"Why is bed {bed} out of service?", REASONS, 0, True)
    return reason if ok else None


class WardsView(QWidget):
    def __init__(self, vm: WardsViewModel, parent: QWidget | None = None,
                 ask_ward: Callable[[QWidget, list[str]], tuple[str, str, int] | None] = _ask_ward,
                 ask_name: Callable[[QWidget, str], str | None] = _ask_name,
                 ask_beds: Callable[[QWidget, str, int], int | None] = _ask_beds,
                 ask_reason: Callable[[QWidget, str], str | None] = _ask_reason) -> None:
        super().__init__(parent)
        self.vm = vm
        self._ask_ward, self._ask_name, self._ask_beds, self._ask_reason = ask_ward, ask_name, ask_beds, ask_reason
        lay = QVBoxLayout(self)
        self.add_button = QPushButton("&Add ward…")
        self.rename_button = QPushButton("Re&name…")
        self.beds_button = QPushButton("Set &beds…")
        self.out_button = QPushButton("Bed &out of service…")
        self.in_button = QPushButton("Bed back &in service")
        lay.addLayout(page_header("Wards and beds", self.add_button, self.rename_button, self.beds_button,
                                  self.out_button, self.in_button))
        split = QSplitter()
        self.ward_table = read_only_table(vm.wards)
        self.ward_table.setAccessibleName("Wards")
        self.bed_table = read_only_table(vm.beds)
        self.bed_table.setAccessibleName("Beds of the selected ward")
        split.addWidget(self.ward_table)
        split.addWidget(self.bed_table)
        split.setSizes([560, 500])
        lay.addWidget(split, 1)
        self.status = QLabel(objectName="Subtitle", wordWrap=True)
        lay.addWidget(self.status)
        lay.addWidget(QLabel("A ward's capacity is its beds in service: the forecast, staffing, alerts and bed "
                             "placement use it from the next refresh. Every change is audited.", objectName="Subtitle",
                             wordWrap=True))
        self.add_button.clicked.connect(self._add)
        self.rename_button.clicked.connect(self._rename)
        self.beds_button.clicked.connect(self._beds)
        self.out_button.clicked.connect(self._out)
        self.in_button.clicked.connect(lambda: (b := self.selected_bed()) and vm.bed_in(b.id))
        vm.statusChanged.connect(self.status.setText)
        self.ward_table.selectionModel().currentRowChanged.connect(lambda cur, _prev: vm.select_ward(cur.row()))
        self.bed_table.selectionModel().selectionChanged.connect(self._update_buttons)
        vm.wardChanged.connect(self._update_buttons)
        vm.beds.modelReset.connect(self._update_buttons)
        vm.wards.modelReset.connect(self._reselect)
        self._update_buttons()

    def select_ward(self, name: str) -> None:
        for r in range(self.vm.wards.rowCount()):
            if self.vm.wards.row(r).name == name:
                self.ward_table.selectRow(r)
                return

    def select_bed(self, label: str) -> None:
        for r in range(self.vm.beds.rowCount()):
            if self.vm.beds.row(r).label == label:
                self.bed_table.selectRow(r)
                return

    def selected_bed(self):
        rows = self.bed_table.selectionModel().selectedRows()
        return self.vm.beds.row(rows[0].row()) if rows else None

    def _reselect(self) -> None:
        """The list was read again: keep the ward that was selected (the view-model kept its beds)."""
        if self.vm.ward is not None:
            self.select_ward(self.vm.ward.name)

    def _update_buttons(self, *_args) -> None:
        ward, bed = self.vm.ward, self.selected_bed()
        self.rename_button.setEnabled(ward is not None)
        self.beds_button.setEnabled(ward is not None)
        self.out_button.setEnabled(bed is not None and bed.out_of_service is None and not bed.occupied)
        self.in_button.setEnabled(bed is not None and bed.out_of_service is not None)

    def _add(self) -> None:
        answer = self._ask_ward(self, self.vm.types)
        if answer:
            self.vm.add_ward(*answer)

    def _rename(self) -> None:
        ward = self.vm.ward
        name = self._ask_name(self, ward.name) if ward is not None else None
        if ward is not None and name and name.strip() != ward.name:
            self.vm.rename_ward(ward.id, name)

    def _beds(self) -> None:
        ward = self.vm.ward
        n = self._ask_beds(self, ward.name, len(ward.beds)) if ward is not None else None
        if ward is not None and n is not None and n != len(ward.beds):
            self.vm.set_beds(ward.id, n)

    def _out(self) -> None:
        bed = self.selected_bed()
        reason = self._ask_reason(self, bed.label) if bed is not None else None
        if bed is not None and reason:
            self.vm.bed_out(bed.id, reason)
