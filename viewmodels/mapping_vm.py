"""The column-mapping step of the Imports page: a hospital's own CSV (one row per stay) mapped field by field to what
WardLens keeps, saved as a mapping file the command line takes (`import --mapping`) and imported. A pure QObject:
the dialog (ui/mapping_dialog.py) only shows it."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from services.desk import Desk
from services.records.csv_mapping import csv_header, mapping_problems, save_mapping
from viewmodels.background import BackgroundRunner
from viewmodels.base import StatusViewModel
from viewmodels.session_vm import user_message

# (section, field, label, required) for a file with one row per stay; the patient and stay columns are shared
FIELDS: tuple[tuple[str, str, str, bool], ...] = (
    ("patients", "id", "Patient number", True), ("patients", "family", "Family name", False),
    ("patients", "given", "Given name", False), ("patients", "birth_date", "Birth date", False),
    ("patients", "sex", "Sex (F/M or Female/Male)", False), ("encounters", "id", "Stay (visit) number", True),
    ("encounters", "start", "Admitted (date and time)", True), ("encounters", "end", "Discharged (empty: still in)", False),
    ("encounters", "ward", "Ward", False),
    ("encounters", "discharge_disposition", "Discharge destination (FHIR code: home, snf, exp …)", False),
)
EVERY_ROW_INPATIENT = "=inpatient"
SYSTEMS = {"ICD-10-CM": "=ICD10", "ICD-9-CM": "=ICD9", "SNOMED CT": "=SNOMED"}


class MappingViewModel(StatusViewModel):
    headerChanged = Signal(list)      # the CSV's columns
    problemsChanged = Signal(list)    # what is still missing ([] when the mapping is usable)
    saved = Signal(str)

    def __init__(self, session: Desk, runner: BackgroundRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.runner = session, runner
        self.path = ""
        self.header: list[str] = []
        self.columns: dict[tuple[str, str], str] = {}
        self.diagnosis_columns: list[str] = []
        self.diagnosis_system = "ICD-10-CM"
        self.problems: list[str] = []

    @Slot(str)
    def open_csv(self, path: str) -> None:
        self.path = path
        self.runner.run("Reading the CSV's columns", lambda p, c: csv_header(path), on_success=self._header,
                        on_failure=lambda e: self._set_status(f"Not read: {user_message(e)}"), owner=self)

    def _header(self, header: list[str]) -> None:
        self.header = header
        self.columns = {}
        self._set_status(f"{len(header)} columns. Choose which holds each field; the patient number, stay number and "
                         "admission time are needed.")
        self.headerChanged.emit(header)
        self._check()

    def set_column(self, section: str, field: str, column: str) -> None:
        if column:
            self.columns[(section, field)] = column
        else:
            self.columns.pop((section, field), None)
        self._check()

    def set_diagnoses(self, columns: list[str], system: str) -> None:
        self.diagnosis_columns, self.diagnosis_system = list(columns), system
        self._check()

    def mapping(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"wardlens_mapping": 1, "name": "hospital-csv",
                               "patients": {}, "encounters": {"class": EVERY_ROW_INPATIENT}}
        for (section, field), column in self.columns.items():
            doc[section][field] = column
        doc["patients"]["values"] = {"sex": {"F": "Female", "M": "Male", "f": "Female", "m": "Male"}}
        if "id" in doc["patients"]:
            doc["encounters"]["patient"] = doc["patients"]["id"]
        if self.diagnosis_columns and "id" in doc["patients"]:
            doc["diagnoses"] = {"patient": doc["patients"]["id"], "encounter": doc["encounters"].get("id", ""),
                                "code": self.diagnosis_columns, "system": SYSTEMS[self.diagnosis_system]}
        return doc

    def _check(self) -> None:
        problems = mapping_problems(self.mapping())
        if problems != self.problems:
            self.problems = problems
            self.problemsChanged.emit(problems)

    @Slot(str)
    def save(self, path: str) -> None:
        if not path:
            return
        doc = self.mapping()
        self.runner.run("Saving the mapping", lambda p, c: save_mapping(doc, path),
                        on_success=lambda out: (self._set_status(f"Mapping saved to {out.name}; the command line takes "
                                                                 f"it as import --mapping {out.name}."),
                                                self.saved.emit(str(out))),
                        on_failure=lambda e: self._set_status(f"Not saved: {user_message(e)}"), owner=self)
