"""Imports page (administrators): choose a file, watch it import, read and export the rows it rejected."""
from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import (QFileDialog, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget)

from ui.tables import read_only_table
from ui.page import page_header
from viewmodels.imports_vm import ImportsViewModel


def _choose(parent: QWidget) -> str:
    return QFileDialog.getOpenFileName(parent, "Import encounters", "", "CSV files (*.csv *.csv.gz);;All files (*)")[0]


def _save_as(parent: QWidget) -> str:
    return QFileDialog.getSaveFileName(parent, "Export rejected rows", "rejected-rows.csv", "CSV files (*.csv)")[0]


class ImportsView(QWidget):
    def __init__(self, vm: ImportsViewModel, parent: QWidget | None = None,
                 choose: Callable[[QWidget], str] = _choose, save_as: Callable[[QWidget], str] = _save_as) -> None:
        super().__init__(parent)
        self.vm = vm
        lay = QVBoxLayout(self)
        self.choose_button = QPushButton("&Choose a file…")
        self.cancel_button = QPushButton("&Cancel import")
        self.export_button = QPushButton("&Export rejected rows…")
        lay.addLayout(page_header("Imports", self.choose_button, self.cancel_button, self.export_button))
        lay.addWidget(QLabel("Encounters in the UCI Diabetes 130-US CSV schema (optionally with given_name, family_name, "
                             "birth_date, admit_time, discharge_time and ward). The whole file is one transaction: "
                             "rows that fail their checks are listed below and not imported; cancelling imports "
                             "nothing.", objectName="Subtitle", wordWrap=True))
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        lay.addWidget(self.progress)
        self.table = read_only_table(vm.model)
        lay.addWidget(self.table, 1)
        self.status = QLabel(objectName="Subtitle", wordWrap=True)
        lay.addWidget(self.status)
        self.choose_button.clicked.connect(lambda: vm.start(choose(self)))
        self.cancel_button.clicked.connect(vm.cancel)
        self.export_button.clicked.connect(lambda: vm.export_rejects(save_as(self)))
        vm.statusChanged.connect(self.status.setText)
        vm.progressChanged.connect(self._progress)
        vm.runningChanged.connect(self._running)
        vm.model.modelReset.connect(lambda: self.export_button.setEnabled(vm.model.rowCount() > 0))
        self._running(False)
        self.export_button.setEnabled(False)

    def _progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(1000 * done / max(total, 1)))

    def _running(self, running: bool) -> None:
        self.progress.setVisible(running)
        self.progress.setValue(0)
        self.choose_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
