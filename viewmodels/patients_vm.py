"""The patient list and the patient page."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtGui import QImage

from models.domain import Encounter, Patient, PatientRow, Permission
from models.domain import RiskAssessment
from services.capacity.census import InpatientEstimate
from services.core.errors import EditConflict, ValidationError
from services.core.outputs import write_output
from services.desk import Desk
from services.reports.pdf import pdf_page_images
from services.records.history import prior_use
from services.records.codes import diagnosis_label, diagnosis_title, lab_name, lab_unit, lab_value
from services.records.uci_schema import (admission_source_text, admission_type_text, age_band_text, disposition_text,
                                 payer_text, specialty_text)
from viewmodels.background import BackgroundRunner
from viewmodels.base import StatusViewModel
from viewmodels.session_vm import user_message
from viewmodels.table_model import Column, ListTableModel

PATIENT_COLUMNS: list[Column[PatientRow]] = [
    Column("Patient no.", lambda r: r.mrn),
    Column("Name", lambda r: r.name),
    Column("Sex", lambda r: r.sex),
    Column("Age", lambda r: age_band_text(r.age_band)),
    Column("Ward", lambda r: r.ward),
    Column("Status", lambda r: "Inpatient" if r.inpatient else "Discharged"),
    Column("Last admission", lambda r: r.last_admit),
    Column("Stays", lambda r: r.encounters, align_right=True),
    Column("Primary diagnosis", lambda r: diagnosis_label(r.primary_dx) if r.primary_dx else "",
           tooltip="The primary diagnosis of the latest stay: ICD code and title",
           cell_tooltip=lambda r: diagnosis_label(r.primary_dx) if r.primary_dx else ""),
    Column("Found by", lambda r: r.found_by, tooltip="Why the search found this patient", cell_tooltip=lambda r: r.found_by),
]


def _fmt_time(v) -> str:
    return v.strftime("%Y-%m-%d %H:%M") if v else ""


ENCOUNTER_COLUMNS: list[Column[Encounter]] = [
    Column("Encounter", lambda e: e.encounter_nbr),
    Column("Type", lambda e: e.kind),
    Column("Admitted", lambda e: _fmt_time(e.admit_time) or "date unknown"),
    Column("Discharged", lambda e: _fmt_time(e.discharge_time) or ("in hospital" if e.is_inpatient else "")),
    Column("Days", lambda e: e.days_in_hospital() if e.admit_time else "", align_right=True,
           tooltip="Days in hospital: since admission for a current stay (0 on the day of admission), else its length"),
    # before the ward and specialty: the one place that says whether a stay was followed by a readmission must not
    # need a sideways scroll at 1280 px
    Column("Outcome (30 d)", lambda e: {"<30": "readmitted < 30 d", ">30": "readmitted > 30 d", "NO": "not readmitted"}
           .get(e.readmitted, "not yet known")),
    Column("Ward / bed", lambda e: " / ".join(x for x in (e.ward_name, e.bed_label) if x)),
    Column("Admission", lambda e: admission_type_text(e.admission_type_id)),
    Column("Specialty", lambda e: "" if e.medical_specialty in ("", "?") else specialty_text(e.medical_specialty)),
]


class PatientListViewModel(StatusViewModel):
    """Search runs off the GUI thread, debounced, newest query wins."""

    searchTextChanged = Signal(str)
    busyChanged = Signal(bool)
    openPatient = Signal(int)

    DEBOUNCE_MS = 250
    PAGE = 500  # a screenful many times over; broad queries cost about a page (services/records/patients.py)
    BROWSE = 2000  # the list before anything is typed: the first patients by name, plus the store's counts

    def __init__(self, session: Desk, runner: BackgroundRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.service = session.records.patients
        self.session = session
        self.runner = runner
        self.model: ListTableModel[PatientRow] = ListTableModel(PATIENT_COLUMNS, self)
        self._search_text = ""
        self._busy = False
        self._generation = 0
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(self.DEBOUNCE_MS)
        self._debounce.timeout.connect(self.refresh)

    @property
    def can_edit(self) -> bool:
        return self.session.can(Permission.EDIT_PATIENT)

    @property
    def search_hint(self) -> str:
        """What this role can search by: analysts see pseudonyms, so neither names nor numbers find anyone."""
        if self.service.s.sees_names:
            return "Search by name, patient number, ward or diagnosis code (Ctrl+F)"
        return "Search by ward or diagnosis code (Ctrl+F); names and numbers are hidden for this role"

    @property
    def search_text(self) -> str:
        return self._search_text


    @property
    def busy(self) -> bool:
        return self._busy

    @Slot(str)
    def set_search_text(self, text: str) -> None:
        if text == self._search_text:
            return
        self._search_text = text
        self.searchTextChanged.emit(text)
        self._debounce.start()

    @Slot()
    def refresh(self) -> None:
        self._generation += 1
        gen, text = self._generation, self._search_text
        # Typing gets a page of matches; the empty query the first patients by name and the counts. Both
        # cost about a page at 100,000 encounters (the whole list took half a second there).
        typed = bool(text.strip())

        def job(progress, cancel):
            rows = self.service.search(text, self.PAGE if typed else self.BROWSE)
            return rows, None if typed else self.service.counts()
        self._set_busy(True)
        self.runner.run("Searching patients", job, on_success=lambda r: self._loaded(gen, *r),
                        on_failure=lambda e: self._failed(gen, e), owner=self)

    def _loaded(self, gen: int, rows: list[PatientRow], counts: tuple[int, int] | None) -> None:
        if gen != self._generation:
            return  # an older query finished after a newer one started
        self.model.set_rows(rows)
        if counts is None:
            more = " (the first ones: type more to narrow the search)" if len(rows) >= self.PAGE else ""
            inpatients = sum(r.inpatient for r in rows)
            self._set_status(f"{len(rows):,} patient{'' if len(rows) == 1 else 's'} matching “{self._search_text}”{more}"
                             + (f", {inpatients} of these in hospital now" if rows else ""))
        else:
            total, inpatients = counts
            order = " by name" if self.service.s.sees_names else ""   # without names: the store's own order
            listed = f"; the first {len(rows):,}{order} are listed: type to find the others" if total > len(rows) else ""
            self._set_status(f"{total:,} patients in the store, {inpatients} in hospital now{listed}")
        self._set_busy(False)

    def _failed(self, gen: int, exc: BaseException) -> None:
        if gen == self._generation:
            self._set_status(user_message(exc))
            self._set_busy(False)


    def _set_busy(self, v: bool) -> None:
        if v != self._busy:
            self._busy = v
            self.busyChanged.emit(v)

    @Slot(int)
    def activate_row(self, row: int) -> None:
        if not self.service.s.sees_names:  # the service refuses too; say why instead of showing an error
            self._set_status("Patient records are for the care team; this role sees de-identified data only.")
            return
        if 0 <= row < self.model.rowCount():
            self.openPatient.emit(self.model.row(row).patient_id)


class PatientViewModel(QObject):
    """One patient: demographics, encounters and the selected encounter's details; add and edit."""

    loaded = Signal()
    errorChanged = Signal(str)
    selectedEncounterChanged = Signal(object)
    cleared = Signal()                 # the patient in view is gone (another one is loading): show none
    riskChanged = Signal(object)       # RiskAssessment, or None while scoring / when there is none
    losChanged = Signal(object)        # InpatientEstimate for an inpatient encounter, else None
    riskMessageChanged = Signal(str)
    saved = Signal(str)
    reportPagesReady = Signal(list)    # QImages of the report's pages, for the print dialog

    def __init__(self, session: Desk, runner: BackgroundRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.service = session.records.patients
        self.runner = runner
        self.patient: Patient | None = None
        self.encounters_model: ListTableModel[Encounter] = ListTableModel(ENCOUNTER_COLUMNS, self)
        self._selected: Encounter | None = None
        self._error = ""
        self.assessments = session.risk.assessments
        self.risk: RiskAssessment | None = None
        self.los: InpatientEstimate | None = None
        self.census = session.capacity.census
        self.risk_message = ""
        self._risk_generation = 0
        self._requested: int | None = None   # the patient the user opened last

    @property
    def can_edit(self) -> bool:
        return self.session.can(Permission.EDIT_PATIENT)

    @property
    def error(self) -> str:
        return self._error

    @property
    def selected_encounter(self) -> Encounter | None:
        return self._selected

    def _set_error(self, v: str) -> None:
        if v != self._error:
            self._error = v
            self.errorChanged.emit(v)

    @property
    def has_patient(self) -> bool:
        return self.patient is not None and self.patient.id is not None

    @property
    def can_report(self) -> bool:
        """A report is made only for the patient shown, and only when they have a stay to report on."""
        return self.can_print and self.has_patient and self.encounters_model.total > 0

    def _clear(self) -> None:
        """Nothing of the previous patient stays on screen or in reach of an action while another one loads."""
        self.patient = None
        self.encounters_model.set_rows([])
        self._selected = None
        self.selectedEncounterChanged.emit(None)
        self._score(None)
        self.cleared.emit()

    @Slot(int)
    def load(self, patient_id: int) -> None:
        if self.patient is None or self.patient.id != patient_id:
            self._clear()
        self._requested = patient_id

        def job(p, c):
            return self.service.get_patient(patient_id), self.service.encounters(patient_id)
        self.runner.run("Opening patient", job, on_success=self._loaded,
                        on_failure=lambda e: self._set_error(user_message(e)), owner=self)

    def _loaded(self, result: tuple[Patient, list[Encounter]]) -> None:
        patient, encounters = result
        if patient.id != self._requested:   # a record asked for before the latest one: never shown over it
            return
        self.patient = patient
        self.encounters_model.set_rows(encounters)
        self._set_error("")
        self.loaded.emit()
        # the current stay, else the latest hospital stay (a later clinic or emergency visit has no risk to show)
        stays = [i for i, e in enumerate(encounters) if e.encounter_class == "inpatient" and e.source_status != "cancelled"]
        self.select_encounter(stays[0] if stays else (0 if encounters else -1))

    @Slot(int)
    def select_encounter(self, row: int) -> None:
        enc = self.encounters_model.row(row) if 0 <= row < self.encounters_model.total else None
        if enc is None or enc is not self._selected:   # none selected: the panels are cleared again, always
            self._selected = enc
            self.selectedEncounterChanged.emit(enc)
            self._score(enc)

    def _score(self, enc: Encounter | None) -> None:
        """Readmission risk of the encounter in view, off the GUI thread; the newest request wins."""
        self._risk_generation += 1
        gen = self._risk_generation
        self._set_risk(None, message="Scoring…" if enc is not None else "")
        if enc is None or self.patient is None or self.patient.id is None:
            return
        if enc.encounter_class != "inpatient" or enc.source_status == "cancelled":
            self._set_risk(None, message=f"No readmission risk: this is {'a ' if enc.kind[0] not in 'AEIOU' else 'an '}"
                                         f"{enc.kind.lower()}, not a hospital stay. The risk is for hospital stays.")
            return
        pid, nbr, inpatient = self.patient.id, enc.encounter_nbr, enc.is_inpatient

        def job(progress, cancel):
            los = next((e for e in self.census.inpatients(patient_id=pid) if e.encounter_nbr == nbr), None) \
                if inpatient else None
            return self.assessments.readmission(pid, nbr), los

        self.runner.run("Scoring readmission risk and stay", job,
                        on_success=lambda r: gen == self._risk_generation and self._set_risk(*r),
                        on_failure=lambda e: gen == self._risk_generation and self._set_risk(None, message=user_message(e)),
                        owner=self)

    def _set_risk(self, risk: RiskAssessment | None, los: InpatientEstimate | None = None, message: str = "") -> None:
        self.risk, self.los = risk, los
        self.riskChanged.emit(risk)
        self.losChanged.emit(self.los)
        if message != self.risk_message:
            self.risk_message = message
            self.riskMessageChanged.emit(message)

    @property
    def can_print(self) -> bool:
        return self.session.can(Permission.PRINT)

    def save_report(self, path: str) -> None:
        """The patient's risk report as PDF, written next to `path` first and renamed (never half a file)."""
        if not self.can_report:
            return
        pid, nbr = self.patient.id, self._selected.encounter_nbr if self._selected else None

        def job(progress, cancel):
            pdf = self.session.reports.patient_pdf(pid, nbr)
            write_output(path, "pdf", pdf)  # never over a store or a non-PDF; 0600; whole or not at all
            return path
        self.runner.run("Writing the risk report", job, on_success=lambda p: self.saved.emit(f"Report saved to {p}"),
                        on_failure=lambda e: self._set_error(user_message(e)), owner=self)

    def print_report(self, dpi: int) -> None:
        """Render the same PDF a save would write, page by page, for the printer chosen in the dialog."""
        if not self.can_report:
            return
        pid, nbr = self.patient.id, self._selected.encounter_nbr if self._selected else None

        def job(progress, cancel):
            pages = pdf_page_images(self.session.reports.patient_pdf(pid, nbr), dpi=min(dpi, 300))
            return [p.convert("RGB") for p in pages]

        def ready(pages: list) -> None:
            if not self.has_patient or self.patient.id != pid:   # the patient in view changed meanwhile
                self._set_error("The report was not printed: another patient was opened while it was prepared.")
                return
            self.reportPagesReady.emit([_qimage(p) for p in pages])
        self.runner.run("Preparing the report for printing", job, on_success=ready,
                        on_failure=lambda e: self._set_error(user_message(e)), owner=self)

    def model_card(self) -> str:
        return self.assessments.model_card_markdown("readmission")

    def labs_message(self, e: Encounter | None) -> str:
        """What the Labs tab says instead of an empty table ("" when the stay has results)."""
        if e is None or e.labs:
            return ""
        others = any(x.labs for x in self.encounters)
        return ("No lab results recorded for this stay; other stays of this patient have some." if others
                else "No lab results recorded for this patient.")

    @property
    def encounters(self) -> list[Encounter]:
        """The open patient's encounters, newest first."""
        return [self.encounters_model.row(i) for i in range(self.encounters_model.total)]

    @staticmethod
    def stay_rows(e: Encounter, record: list[Encounter] | None = None) -> list[tuple[str, str]]:
        """The Stay tab of an encounter: (field, value) in plain words; the stored codes stay as they are. `record`:
        the patient's encounters, from which the year before is counted where their dates allow."""
        use = prior_use(e, record or [e])
        return [
            ("Admission source", admission_source_text(e.admission_source_id)),
            ("Discharge disposition" + (" (planned)" if e.is_inpatient else ""),
             "" if e.discharge_disposition_id is None else disposition_text(e.discharge_disposition_id)),
            ("Age at admission", age_band_text(e.age_band)), ("Payer", payer_text(e.payer_code)),
            ("Lab procedures", str(e.num_lab_procedures)), ("Procedures", str(e.num_procedures)),
            ("Medications given", str(e.num_medications)),
            ("Hospital use in the year before", use.text),
            ("Diabetes medication", e.diabetes_med), ("Medication changed", "Yes" if e.change == "Ch" else "No"),
            ("Comorbidity flags", ", ".join(e.comorbidities)),
        ]

    @staticmethod
    def diagnosis_rows(e: Encounter) -> list[tuple]:
        """The Diagnoses tab: rank, code, title (the source's, else ICD-9-CM / ICD-10-CM; broader where the code has
        none itself), system."""
        return [(d.position, d.code, d.description or diagnosis_title(d.code, d.system) or "(no title known)",
                 {"ICD9": "ICD-9-CM", "ICD10": "ICD-10-CM", "SNOMED": "SNOMED CT"}.get(d.system, d.system))
                for d in e.diagnoses]

    @staticmethod
    def medication_rows(e: Encounter) -> list[tuple]:
        return [(m.drug, m.status) for m in e.medications]

    @staticmethod
    def lab_rows(e: Encounter) -> list[tuple]:
        """The Labs tab in words: "HbA1c (band)", "above 8", "%"; stored names and values stay as they are."""
        return [(lab_name(lab.name), lab_value(lab.name, lab.value_text) if lab.value_num is None else lab.value_num,
                 lab_unit(lab.name, lab.unit)) for lab in e.labs]

    @property
    def header_lines(self) -> tuple[str, str]:
        p = self.patient
        if p is None:
            return "", ""
        born = f"born {p.birth_date.isoformat()}" if p.birth_date else (f"age {age_band_text(p.age_band)}" if p.age_band else "")
        facts = [f"Patient no. {p.mrn}", p.sex, born, p.race if p.race != "?" else ""]
        return p.display_name, " · ".join(x for x in facts if x)

    # --- editing: validation errors come back as {field: message} -------------------------------
    def save_patient(self, values: dict[str, Any], patient_id: int | None = None) -> dict[str, str]:
        """Synchronous on purpose: a single-row write from a dialog that waits for its verdict."""
        try:
            if patient_id is None:
                new_id = self.service.add_patient(values)
                self.saved.emit("Patient added")
                self.load(new_id)
            else:
                if self.patient is not None and self.patient.id == patient_id and "version" not in values:
                    values = {**values, "version": self.patient.version}   # the version this form was filled from
                self.service.update_patient(patient_id, values)
                self.saved.emit("Patient saved")
                self.load(patient_id)
        except EditConflict as exc:
            return self._conflict(exc, patient_id)
        except ValidationError as exc:
            return exc.fields
        except Exception as exc:  # noqa: BLE001 - shown to the user, store unchanged (transaction rolled back)
            return {"": user_message(exc)}
        return {}

    def save_encounter(self, values: dict[str, Any], encounter_id: int | None = None) -> dict[str, str]:
        if self.patient is None or self.patient.id is None:
            return {"": "No patient is open."}
        if encounter_id is not None and "version" not in values:
            read = next((e for e in self.encounters if e.id == encounter_id), None)
            if read is not None:
                values = {**values, "version": read.version}   # the version this form was filled from
        try:
            self.service.save_encounter(self.patient.id, values, encounter_id)
        except EditConflict as exc:
            return self._conflict(exc, self.patient.id)
        except ValidationError as exc:
            return exc.fields
        except Exception as exc:  # noqa: BLE001
            return {"": user_message(exc)}
        self.saved.emit("Encounter saved")
        self.load(self.patient.id)
        return {}

    def _conflict(self, exc: EditConflict, patient_id: int) -> dict[str, str]:
        """Someone saved the record after this form was filled: the page reloads to show theirs, the form keeps
        what was typed, and saving again (now over their version, knowingly) or cancelling is the user's choice."""
        self.load(patient_id)
        return {"": f"{exc.headline} Your changes were not saved. The page behind now shows their version: Save again "
                    "puts yours over it, Cancel keeps theirs."}

    def wards(self):
        return self.service.wards()

    def free_beds(self, ward_id: int, keep_bed: int | None = None):
        return self.service.free_beds(ward_id, keep_bed)





def _qimage(pil_rgb) -> QImage:
    w, h = pil_rgb.size
    data = pil_rgb.tobytes()
    return QImage(data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
