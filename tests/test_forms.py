"""Forms real staff can use: a typed birth date is the date saved, nothing plausible is pre-filled, the age band
is derived (never asked), a patient in hospital has a ward and a bed, one "days in hospital" everywhere, and the
encounter form keeps Save and Cancel on an 800-px screen."""
from __future__ import annotations

import datetime as dt

import pytest

from services.core.errors import ValidationError
from services.records.validation import age_band_at


def test_age_band_at_counts_birthdays():
    born = dt.date(1985, 3, 12)
    assert age_band_at(born, dt.date(2025, 3, 11)) == "[30-40)"   # 39 the day before the 40th birthday
    assert age_band_at(born, dt.date(2025, 3, 12)) == "[40-50)"
    assert age_band_at(dt.date(1920, 1, 1), dt.date(2026, 1, 1)) == "[90-100)"
    assert age_band_at(dt.date(2026, 1, 1), dt.date(2026, 6, 1)) == "[0-10)"


def test_a_new_patient_needs_a_birth_date_and_the_stay_gets_its_age_band_from_it(desks):
    desk = desks("dr.demo")
    patients = desk.records.patients
    with pytest.raises(ValidationError) as missing:
        patients.add_patient({"mrn": "F-1", "family_name": "Okafor", "sex": "Male", "birth_date": ""})
    assert "birth_date" in missing.value.fields
    pid = patients.add_patient({"mrn": "F-1", "family_name": "Okafor", "sex": "Male", "birth_date": "1985-03-12"})
    assert patients.get_patient(pid).birth_date == dt.date(1985, 3, 12)
    ward = patients.wards()[0]
    bed = patients.free_beds(ward.id)[0]
    # an age band sent by a caller is ignored: the record says how old the patient was at admission
    nbr_id = patients.save_encounter(pid, {"admit_time": "2025-03-11 09:00", "ward_id": ward.id, "bed_id": bed.id,
                                           "age_band": "[0-10)", "diagnoses": ["428.0"]})
    enc = next(e for e in patients.encounters(pid) if e.id == nbr_id)
    assert enc.age_band == "[30-40)"
    patients.update_patient(pid, {"mrn": "F-1", "family_name": "Okafor", "sex": "Male", "birth_date": "1955-03-12"})
    assert next(e for e in patients.encounters(pid) if e.id == nbr_id).age_band == "[60-70)"   # follows a correction


def test_a_patient_in_hospital_needs_a_ward_and_a_bed(desks):
    patients = desks("dr.demo").records.patients
    pid = patients.search("", limit=1)[0].patient_id
    with pytest.raises(ValidationError) as refused:
        patients.save_encounter(pid, {"admit_time": "2026-01-01 10:00", "diagnoses": ["428.0"]})
    assert {"ward_id", "bed_id"} <= set(refused.value.fields)
    # a finished stay needs neither
    patients.save_encounter(pid, {"admit_time": "2025-01-01 10:00", "discharge_time": "2025-01-04 10:00",
                                  "discharge_disposition_id": 1, "diagnoses": ["428.0"]})


def test_days_in_hospital_is_one_number_on_the_stay_table_and_the_census(desks):
    desk = desks("nurse.demo")
    row = desk.capacity.census.inpatients()[0]
    enc = next(e for e in desk.records.patients.encounters(row.patient_id) if e.encounter_nbr == row.encounter_nbr)
    from viewmodels.patients_vm import ENCOUNTER_COLUMNS
    days = next(c for c in ENCOUNTER_COLUMNS if c.header == "Days")
    assert days.value(enc) == enc.days_in_hospital() == row.days_in


def test_the_birth_date_typed_is_the_date_saved_and_a_new_form_is_empty(qtbot):
    from ui.patient_dialogs import PatientDialog
    saved = []
    dialog = PatientDialog(lambda v: saved.append(v) or {}, None)
    qtbot.addWidget(dialog)
    assert dialog.birth.text() == ""   # no plausible date waits to be saved by mistake
    dialog.mrn.setText("F-2")
    dialog.family.setText("Nakamura")
    qtbot.keyClicks(dialog.birth, "1985-03-12")
    dialog._try_save()
    assert saved and saved[0]["birth_date"] == "1985-03-12"


def test_the_encounter_form_fits_an_800_pixel_screen(qtbot, desks):
    from ui.patient_dialogs import EncounterDialog
    patients = desks("dr.demo").records.patients
    dialog = EncounterDialog(lambda v: {}, patients.wards(), patients.free_beds)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    screen = dialog.screen().availableGeometry()
    assert dialog.frameGeometry().height() <= min(800, screen.height())
    assert not hasattr(dialog, "age"), "the age band is derived, never asked"
