"""The patient page: header, encounters, and the selected encounter's diagnoses, medications and labs."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QPainter
from PySide6.QtPrintSupport import QPrintDialog, QPrinter
from PySide6.QtWidgets import (QAbstractItemView, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QPushButton, QSplitter,
                               QStackedWidget, QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget)
from PySide6.QtCore import Qt

from models.domain import Encounter
from ui.model_card_dialog import ModelCardDialog
from ui.risk_panel import RiskPanel
from ui.tables import read_only_table
from viewmodels.patients_vm import PatientViewModel


def _table(headers: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.verticalHeader().setVisible(False)
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setAlternatingRowColors(True)
    t.horizontalHeader().setStretchLastSection(True)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    t.setTabKeyNavigation(False)
    return t


def _fill(t: QTableWidget, rows: list[tuple]) -> None:
    t.setRowCount(len(rows))
    for r, values in enumerate(rows):
        for c, v in enumerate(values):
            t.setItem(r, c, QTableWidgetItem("" if v is None else str(v)))


class PatientView(QWidget):
    backRequested = Signal()
    editPatientRequested = Signal()
    addEncounterRequested = Signal()
    editEncounterRequested = Signal()
    xrayRequested = Signal()

    def __init__(self, vm: PatientViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        self.back = QPushButton("← &Back to list")
        top.addWidget(self.back)
        titles = QVBoxLayout()
        # wrapping labels: a long name or facts line must not force the window past a 1280-px screen
        self.name = QLabel(objectName="PageTitle", wordWrap=True)
        self.facts = QLabel(objectName="Subtitle", wordWrap=True)
        titles.addWidget(self.name)
        titles.addWidget(self.facts)
        top.addLayout(titles, 1)
        self.edit_patient = QPushButton("&Edit patient…")
        self.add_encounter = QPushButton("&Add encounter…")
        self.edit_encounter = QPushButton("Edit en&counter…")
        for b in (self.edit_patient, self.add_encounter, self.edit_encounter):
            b.setVisible(vm.can_edit)
            top.addWidget(b)
        self.xray_button = QPushButton("&X-ray…")
        top.addWidget(self.xray_button)
        self.print_button = QPushButton("&Print…")
        self.save_button = QPushButton("Save &report…")
        for b in (self.print_button, self.save_button):
            b.setVisible(vm.can_print)
            top.addWidget(b)
        lay.addLayout(top)
        self.error = QLabel(objectName="ErrorLabel", wordWrap=True)
        self.error.setVisible(False)
        lay.addWidget(self.error)

        split = QSplitter(Qt.Orientation.Vertical)
        self.encounters = read_only_table(vm.encounters_model)
        self.encounters.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.encounters.setTabKeyNavigation(False)
        split.addWidget(self.encounters)
        self.tabs = QTabWidget()
        self.summary = _table(["Field", "Value"])
        self.diagnoses = _table(["#", "Code", "Title", "System"])
        self.medications = _table(["Medication", "Change during stay"])
        self.labs = _table(["Test", "Result", "Unit"])
        # an empty table alone looks like a fault: the tab says when a stay has no results
        self.labs_empty = QLabel(objectName="Subtitle", wordWrap=True)
        self.labs_empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.labs_page = QStackedWidget()
        self.labs_page.addWidget(self.labs)
        self.labs_page.addWidget(self.labs_empty)
        self.tabs.addTab(self.summary, "&Stay")
        self.tabs.addTab(self.diagnoses, "&Diagnoses")
        self.tabs.addTab(self.medications, "&Medications")
        self.tabs.addTab(self.labs_page, "&Labs")
        split.addWidget(self.tabs)
        split.setSizes([200, 300])
        body = QHBoxLayout()
        body.addWidget(split, 1)
        self.risk = RiskPanel()
        body.addWidget(self.risk)
        lay.addLayout(body, 1)

        self.back.clicked.connect(self.backRequested)
        self.edit_patient.clicked.connect(self.editPatientRequested)
        self.xray_button.clicked.connect(self.xrayRequested)
        self.print_button.clicked.connect(self._print)
        self.save_button.clicked.connect(self._save)
        vm.reportPagesReady.connect(self._paint_pages)
        self.add_encounter.clicked.connect(self.addEncounterRequested)
        self.edit_encounter.clicked.connect(self.editEncounterRequested)
        vm.loaded.connect(self._loaded)
        vm.cleared.connect(self._loaded)
        vm.errorChanged.connect(self._show_error)
        vm.selectedEncounterChanged.connect(self._show_encounter)
        vm.riskChanged.connect(self.risk.show_risk)
        vm.riskMessageChanged.connect(self.risk.show_message)
        vm.losChanged.connect(self.risk.show_los)
        self.risk.modelCardRequested.connect(self.open_model_card)
        self.encounters.selectionModel().currentRowChanged.connect(lambda cur, _prev: vm.select_encounter(cur.row()))
        self._loaded()   # a page opened before any patient says so, its actions off

    def open_model_card(self) -> ModelCardDialog:
        dialog = ModelCardDialog(self.vm.model_card(), self, "Model card: 30-day readmission risk")
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()  # window-modal, returns at once; Close or Esc dismisses it
        return dialog

    def _save(self) -> None:
        p = self.vm.patient
        default = f"risk-report-{p.mrn if p else 'patient'}.pdf"
        path, _ = QFileDialog.getSaveFileName(self, "Save risk report", default, "PDF (*.pdf)")
        if path:
            self.vm.save_report(path if path.lower().endswith(".pdf") else path + ".pdf")

    def _print(self) -> None:
        self._printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        if QPrintDialog(self._printer, self).exec() == QPrintDialog.DialogCode.Accepted:
            self.vm.print_report(self._printer.resolution())

    def _paint_pages(self, pages: list) -> None:
        painter = QPainter(self._printer)
        try:
            for i, page in enumerate(pages):
                if i:
                    self._printer.newPage()
                target = self._printer.pageLayout().paintRectPixels(self._printer.resolution())
                scaled = page.scaled(target.size(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
                painter.drawImage(target.topLeft(), scaled)
        finally:
            painter.end()

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))

    def _update_actions(self) -> None:
        """Actions are for the patient shown: none without a patient, no report without a stay."""
        has = self.vm.has_patient
        for b in (self.edit_patient, self.add_encounter, self.xray_button):
            b.setEnabled(has)
        for b in (self.print_button, self.save_button):
            b.setEnabled(self.vm.can_report)
        self.edit_encounter.setEnabled(has and self.vm.selected_encounter is not None)

    def _loaded(self) -> None:
        name, facts = self.vm.header_lines
        if not self.vm.has_patient:
            name, facts = "No patient open", "Choose a patient on the Patients page (Ctrl+1) to see their record here."
        self.name.setText(name)
        self.facts.setText(facts)
        self._update_actions()
        if self.vm.encounters_model.rowCount():
            self.encounters.selectRow(0)
        self.encounters.setFocus()

    def _show_encounter(self, e: Encounter | None) -> None:
        self._update_actions()
        if e is None:
            for t in (self.summary, self.diagnoses, self.medications, self.labs):
                t.setRowCount(0)
            self._show_labs_message("")
            return
        _fill(self.summary, self.vm.stay_rows(e, self.vm.encounters))
        _fill(self.diagnoses, self.vm.diagnosis_rows(e))
        _fill(self.medications, self.vm.medication_rows(e))
        _fill(self.labs, self.vm.lab_rows(e))
        self._show_labs_message(self.vm.labs_message(e))

    def _show_labs_message(self, text: str) -> None:
        self.labs_empty.setText(text)
        self.labs_page.setCurrentWidget(self.labs_empty if text else self.labs)
