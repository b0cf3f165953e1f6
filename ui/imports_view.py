"""Imports page (administrators): choose a file, watch it import, read and export the rows it rejected."""
from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import (QDialog, QFileDialog, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget)

from ui.tables import read_only_table
from ui.page import page_header
from ui.mapping_dialog import MappingDialog
from viewmodels.imports_vm import ImportsViewModel
from viewmodels.mapping_vm import MappingViewModel


FILTER = ("Hospital records (*.csv *.json *.ndjson *.hl7 *.txt *.gz);;UCI encounter CSV (*.csv *.csv.gz);;"
          "FHIR R4 (*.json *.ndjson *.json.gz *.ndjson.gz);;HL7 v2 messages (*.hl7 *.txt);;All files (*)")


def _choose(parent: QWidget) -> str:
    return QFileDialog.getOpenFileName(parent, "Import records", "", FILTER)[0]


def _choose_folder(parent: QWidget) -> str:
    return QFileDialog.getExistingDirectory(parent, "Import a folder of FHIR or HL7 v2 files")


def _choose_csv(parent: QWidget) -> str:
    return QFileDialog.getOpenFileName(parent, "A CSV with the hospital's own columns", "",
                                       "CSV files (*.csv *.csv.gz);;All files (*)")[0]


def _choose_mapping(parent: QWidget) -> str:
    return QFileDialog.getOpenFileName(parent, "A saved column mapping", "", "Mappings (*.json)")[0]


def _map_columns(vm: MappingViewModel, parent: QWidget) -> bool:
    return MappingDialog(vm, parent).exec() == QDialog.DialogCode.Accepted


def _save_as(parent: QWidget) -> str:
    return QFileDialog.getSaveFileName(parent, "Export rejected rows", "rejected-rows.csv", "CSV files (*.csv)")[0]


class ImportsView(QWidget):
    def __init__(self, vm: ImportsViewModel, parent: QWidget | None = None,
                 choose: Callable[[QWidget], str] = _choose, save_as: Callable[[QWidget], str] = _save_as,
                 choose_folder: Callable[[QWidget], str] = _choose_folder,
                 choose_csv: Callable[[QWidget], str] = _choose_csv,
                 choose_mapping: Callable[[QWidget], str] = _choose_mapping,
                 map_columns: Callable[[MappingViewModel, QWidget], bool] = _map_columns) -> None:
        super().__init__(parent)
        self.vm = vm
        lay = QVBoxLayout(self)
        self.choose_button = QPushButton("&Choose a file…")
        self.folder_button = QPushButton("Choose a &folder…")
        self.map_button = QPushButton("CSV with its own &columns…")
        self.saved_map_button = QPushButton("With a saved &mapping…")
        self._choose_csv, self._map_columns, self._choose_mapping = choose_csv, map_columns, choose_mapping
        self._choose_folder = choose_folder
        self.cancel_button = QPushButton("&Cancel import")
        self.export_button = QPushButton("&Export rejected rows…")
        lay.addLayout(page_header("Imports", self.choose_button, self.folder_button, self.map_button,
                                  self.saved_map_button, self.cancel_button, self.export_button))
        lay.addWidget(QLabel("Records from the hospital's systems, told apart by their content: FHIR R4 (Bundles, a Bulk "
                             "Data export folder, .gz), HL7 v2 ADT messages (admissions, transfers, discharges), or "
                             "encounters in the UCI Diabetes 130-US CSV schema. Importing the same files again changes "
                             "nothing; a later export of the same patient updates the record. Each import is one "
                             "transaction: records that fail their checks are listed below with the reason; cancelling "
                             "imports nothing.", objectName="Subtitle", wordWrap=True))
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        lay.addWidget(self.progress)
        self.table = read_only_table(vm.model)
        lay.addWidget(self.table, 1)
        self.status = QLabel(objectName="Subtitle", wordWrap=True)
        lay.addWidget(self.status)
        self.watch = QLabel(objectName="Subtitle", wordWrap=True)
        lay.addWidget(self.watch)
        folder = vm.watched_folder()
        self.watch.setText(f"Watched folder: {folder} (files dropped there are imported every 30 seconds)" if folder
                           else "No watched folder (an administrator can set import_folder under Settings).")
        vm.watchChanged.connect(self.watch.setText)
        self.choose_button.clicked.connect(lambda: vm.start(choose(self)))
        self.folder_button.clicked.connect(lambda: vm.start(choose_folder(self)))
        self.map_button.clicked.connect(self._map_and_import)
        self.saved_map_button.clicked.connect(self._import_with_saved_mapping)
        self.cancel_button.clicked.connect(vm.cancel)
        self.export_button.clicked.connect(lambda: vm.export_rejects(save_as(self)))
        vm.statusChanged.connect(self.status.setText)
        vm.progressChanged.connect(self._progress)
        vm.runningChanged.connect(self._running)
        vm.model.modelReset.connect(lambda: self.export_button.setEnabled(vm.model.rowCount() > 0))
        self._running(False)
        self.export_button.setEnabled(False)

    def _map_and_import(self) -> None:
        """The column-mapping step: choose the CSV, map its columns (and save the mapping), then import it."""
        path = self._choose_csv(self)
        if not path:
            return
        mapping_vm = MappingViewModel(self.vm.session, self.vm.runner, self)
        mapping_vm.open_csv(path)
        if self._map_columns(mapping_vm, self):
            self.vm.start(path, mapping_vm.mapping())

    def _import_with_saved_mapping(self) -> None:
        mapping = self._choose_mapping(self)
        if mapping:   # a mapping that names its files reads an export folder, else one CSV
            source = self._choose_folder(self) if self.vm.mapping_names_files(mapping) else self._choose_csv(self)
            self.vm.start(source, mapping)

    def _progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(1000 * done / max(total, 1)))

    def _running(self, running: bool) -> None:
        self.progress.setVisible(running)
        self.progress.setValue(0)
        self.choose_button.setEnabled(not running)
        self.folder_button.setEnabled(not running)
        self.map_button.setEnabled(not running)
        self.saved_map_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
