"""The patient list: search box and a table over the view-model's item model."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton, QTableView,
                               QVBoxLayout, QWidget)

from ui.elided_label import ElidedLabel
from viewmodels.patients_vm import PatientListViewModel


class PatientListView(QWidget):
    newPatientRequested = Signal()

    def __init__(self, vm: PatientListViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(QLabel("Patients", objectName="PageTitle"))
        top.addStretch(1)
        self.new_button = QPushButton("&New patient…")
        self.new_button.setVisible(vm.can_edit)
        top.addWidget(self.new_button)
        lay.addLayout(top)
        self.search = QLineEdit(placeholderText=vm.search_hint)
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search patients")
        lay.addWidget(self.search)
        self.table = QTableView()
        self.table.setModel(vm.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setTabKeyNavigation(False)
        lay.addWidget(self.table, 1)
        self.status = ElidedLabel(objectName="Subtitle")   # a long message never widens the window
        lay.addWidget(self.status)

        self.search.textChanged.connect(vm.set_search_text)
        self.search.returnPressed.connect(self.table.setFocus)
        vm.statusChanged.connect(self.status.setText)
        vm.model.modelReset.connect(self._after_reset)
        self.table.activated.connect(lambda idx: vm.activate_row(idx.row()))  # Enter or double-click
        self.new_button.clicked.connect(self.newPatientRequested)
        QShortcut(QKeySequence.StandardKey.Find, self, activated=self.focus_search)

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def _after_reset(self) -> None:
        if self.vm.model.rowCount():
            self.table.selectRow(0)
            self.table.resizeColumnsToContents()  # the first batch only (500 rows), so it stays cheap
            # a long diagnosis title elides (its full text in the cell's tooltip): "Found by" stays on screen
            dx = self.vm.model.headers.index("Primary diagnosis")
            self.table.setColumnWidth(dx, min(self.table.columnWidth(dx), self.fontMetrics().averageCharWidth() * 28))
            # "Found by" says why a search found the patient: without a search it is empty, and the diagnosis takes
            # its room (the last visible column stretches)
            found = self.vm.model.headers.index("Found by")
            self.table.setColumnHidden(found, not self.vm.search_text.strip())
            header = self.table.horizontalHeader()  # a resize to contents can leave the last column unstretched
            header.setStretchLastSection(False)
            header.setStretchLastSection(True)
