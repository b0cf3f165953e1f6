"""Forms to add and edit a patient or an encounter. Validation is the service's; the form marks the
fields it names and keeps the dialog open until the save succeeds."""
from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QDateTime
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDateTimeEdit, QDialog, QDialogButtonBox, QFormLayout, QFrame,
                               QLabel, QLineEdit, QScrollArea, QSpinBox, QVBoxLayout, QWidget)

from models.domain import Encounter, Patient
from viewmodels.codes import (A1C_VALUES, ADMISSION_SOURCE_CHOICES, ADMISSION_TYPE_CHOICES,
                              DISPOSITION_CHOICES, GENDERS, GLU_SERUM_VALUES, MEDICATION_STATUSES, MEDICATIONS, RACES)

Saver = Callable[[dict[str, Any]], dict[str, str]]


class _FormDialog(QDialog):
    def __init__(self, title: str, save: Saver, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self._save = save
        self._fields: dict[str, QWidget] = {}
        self.form = QFormLayout()
        self.error = QLabel(objectName="ErrorLabel", wordWrap=True)
        self.error.setVisible(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self._try_save)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        # a long form scrolls inside the dialog: Save and Cancel stay on an 800-px screen, at any scaling
        body = QWidget()
        body.setLayout(self.form)
        scroll = QScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
        scroll.setWidget(body)
        lay.addWidget(scroll, 1)
        lay.addWidget(self.error)
        lay.addWidget(buttons)
        self._body = body

    def showEvent(self, event) -> None:  # noqa: N802 - Qt name
        screen = self.screen().availableGeometry()
        want = self._body.sizeHint().height() + 140
        self.resize(max(self.width(), self.fontMetrics().averageCharWidth() * 60,
                        min(self._body.sizeHint().width() + 60, screen.width() - 40)),
                    min(want, screen.height() - 60))
        super().showEvent(event)

    def add(self, key: str, label: str, widget: QWidget) -> QWidget:
        widget.setAccessibleName(label.replace("&", ""))
        self._fields[key] = widget
        self.form.addRow(label, widget)
        return widget

    def values(self) -> dict[str, Any]:
        raise NotImplementedError

    def _try_save(self) -> None:
        problems = self._save(self.values())
        for key, w in self._fields.items():
            w.setProperty("invalid", key in problems)
            w.style().unpolish(w)
            w.style().polish(w)
        if problems:
            self.error.setText("\n".join(f"{k.replace('_', ' ')}: {v}" if k else v for k, v in problems.items()))
            self.error.setVisible(True)
            first = next((self._fields[k] for k in problems if k in self._fields), None)
            if first is not None:
                first.setFocus()
            return
        self.accept()


def _combo(items: list[tuple[str, Any]], current: Any = None) -> QComboBox:
    c = QComboBox()
    for text, data in items:
        c.addItem(text, data)
    if current is not None:
        i = c.findData(current)
        if i >= 0:
            c.setCurrentIndex(i)
    return c


class PatientDialog(_FormDialog):
    def __init__(self, save: Saver, patient: Patient | None = None, parent: QWidget | None = None) -> None:
        super().__init__("Edit patient" if patient else "New patient", save, parent)
        p = patient
        self.mrn = self.add("mrn", "Patient &number", QLineEdit(p.mrn if p else ""))
        self.family = self.add("family_name", "&Family name", QLineEdit(p.family_name or "" if p else ""))
        self.given = self.add("given_name", "&Given name", QLineEdit(p.given_name or "" if p else ""))
        # typed as text: what is typed is what is saved, and nothing plausible is filled in for a new patient
        self.birth = self.add("birth_date", "&Birth date", QLineEdit(p.birth_date.isoformat() if p and p.birth_date else ""))
        self.birth.setPlaceholderText("YYYY-MM-DD")
        self.sex = self.add("sex", "&Sex", _combo([(g, g) for g in GENDERS], p.sex if p else None))
        self.race = self.add("race", "&Race", _combo([("not recorded" if r == "?" else r, r) for r in RACES],
                                                      p.race if p else "?"))

    def values(self) -> dict[str, Any]:
        return {"mrn": self.mrn.text(), "family_name": self.family.text(), "given_name": self.given.text(),
                "birth_date": self.birth.text().strip(), "sex": self.sex.currentData(), "race": self.race.currentData()}


class EncounterDialog(_FormDialog):
    """Admission, ward and bed, discharge, diagnoses, diabetes medications and glucose/A1C results."""

    def __init__(self, save: Saver, wards: list, free_beds: Callable[[int], list], encounter: Encounter | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__("Edit encounter" if encounter else "New encounter", save, parent)
        e = encounter
        self._free_beds = free_beds
        now = QDateTime.currentDateTime()
        self.admit = self.add("admit_time", "&Admitted", QDateTimeEdit(calendarPopup=True, displayFormat="yyyy-MM-dd HH:mm"))
        self.admit.setDateTime(QDateTime(e.admit_time) if e and e.admit_time else now)
        self.discharged = QCheckBox("&Discharged")
        self.discharged.setChecked(bool(e and e.discharge_time))
        self.form.addRow("", self.discharged)
        self.discharge = self.add("discharge_time", "Discharge &time",
                                  QDateTimeEdit(calendarPopup=True, displayFormat="yyyy-MM-dd HH:mm"))
        self.discharge.setDateTime(QDateTime(e.discharge_time) if e and e.discharge_time else now)
        self.adm_type = self.add("admission_type_id", "Admission &type",
                                 _combo(ADMISSION_TYPE_CHOICES, e.admission_type_id if e else 1))
        self.adm_source = self.add("admission_source_id", "Admission &source",
                                   _combo(ADMISSION_SOURCE_CHOICES, e.admission_source_id if e else 7))
        self.disposition = self.add("discharge_disposition_id", "Discharge dis&position",
                                    _combo([("—", None)] + DISPOSITION_CHOICES,
                                           e.discharge_disposition_id if e else None))
        self.ward = self.add("ward_id", "&Ward", _combo([("—", None)] + [(w.name, w.id) for w in wards], e.ward_id if e else None))
        self.bed = self.add("bed_id", "&Bed", QComboBox())
        self._keep_bed = e.bed_id if e else None
        self.specialty = self.add("medical_specialty", "Spe&cialty",
                                  QLineEdit("" if not e or e.medical_specialty == "?" else e.medical_specialty))
        self.diagnoses = self.add("diagnoses", "&Diagnoses (ICD-9/10, primary first)",
                                  QLineEdit(", ".join(d.code for d in e.diagnoses) if e else ""))
        self.diagnoses.setPlaceholderText("e.g. 428.0, 250.02, I50.9")
        counts = {}
        for key, label, hi in (("number_inpatient", "Inpatient stays in the year before", 100),
                               ("number_emergency", "Emergency visits in the year before", 100),
                               ("number_outpatient", "Outpatient visits in the year before", 100)):
            spin = QSpinBox(maximum=hi)
            spin.setValue(getattr(e, key) if e else 0)
            counts[key] = self.add(key, label, spin)
        self.counts = counts
        self.glu = self.add("max_glu_serum", "Max glucose serum", _combo([(v, v) for v in GLU_SERUM_VALUES], e.max_glu_serum if e else "None"))
        self.a1c = self.add("a1c_result", "HbA1c result", _combo([(v, v) for v in A1C_VALUES], e.a1c_result if e else "None"))
        current = {m.drug: m.status for m in e.medications} if e else {}
        self.meds: dict[str, QComboBox] = {}
        for drug in ("insulin", "metformin", "glipizide", "glyburide", "glimepiride", "pioglitazone", "rosiglitazone"):
            self.meds[drug] = self.add(f"med_{drug}", drug.capitalize(),
                                       _combo([(s, s) for s in MEDICATION_STATUSES], current.get(drug, "No")))
        self._other_meds = {d: s for d, s in current.items() if d not in self.meds and d in MEDICATIONS}
        self.discharged.toggled.connect(self.discharge.setEnabled)
        self.discharge.setEnabled(self.discharged.isChecked())
        self.ward.currentIndexChanged.connect(self._fill_beds)
        self._fill_beds()

    def _fill_beds(self) -> None:
        self.bed.clear()
        self.bed.addItem("—", None)
        wid = self.ward.currentData()
        if wid is not None:
            for b in self._free_beds(wid):
                self.bed.addItem(b.label + (" (isolation)" if b.isolation else "") + (f" ({b.sex_bay} bay)" if b.sex_bay else ""), b.id)
        i = self.bed.findData(self._keep_bed)
        if i >= 0:
            self.bed.setCurrentIndex(i)

    def values(self) -> dict[str, Any]:
        meds = dict(self._other_meds)
        meds.update({d: c.currentData() for d, c in self.meds.items()})
        return {"admit_time": self.admit.dateTime().toPython().replace(second=0, microsecond=0),
                "discharge_time": self.discharge.dateTime().toPython().replace(second=0, microsecond=0)
                if self.discharged.isChecked() else None,
                "admission_type_id": self.adm_type.currentData(), "admission_source_id": self.adm_source.currentData(),
                "discharge_disposition_id": self.disposition.currentData(), "ward_id": self.ward.currentData(),
                "bed_id": self.bed.currentData(),
                "medical_specialty": self.specialty.text() or "?",
                "diagnoses": [c for c in self.diagnoses.text().replace(";", ",").split(",")],
                **{k: w.value() for k, w in self.counts.items()},
                "max_glu_serum": self.glu.currentData(), "a1c_result": self.a1c.currentData(), "medications": meds}

