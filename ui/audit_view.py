"""Audit log page (administrators)."""
from __future__ import annotations

from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QLabel, QLineEdit, QPushButton, QTableView,
                               QVBoxLayout, QWidget)

from ui.page import page_header
from viewmodels.audit_vm import AuditViewModel


class AuditView(QWidget):
    def __init__(self, vm: AuditViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        lay = QVBoxLayout(self)
        self.refresh_button = QPushButton("&Refresh")
        lay.addLayout(page_header("Audit log", self.refresh_button))
        self.filter = QLineEdit(placeholderText="Filter by user, action or detail")
        self.filter.setClearButtonEnabled(True)
        self.filter.setAccessibleName("Filter audit events")
        lay.addWidget(self.filter)
        self.table = QTableView()
        self.table.setModel(vm.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setTabKeyNavigation(False)
        lay.addWidget(self.table, 1)
        self.status = QLabel(objectName="Subtitle", wordWrap=True)
        lay.addWidget(self.status)
        self.refresh_button.clicked.connect(vm.refresh)
        self.filter.textChanged.connect(vm.set_filter)
        vm.statusChanged.connect(self.status.setText)
        vm.model.modelReset.connect(self.table.resizeColumnsToContents)
