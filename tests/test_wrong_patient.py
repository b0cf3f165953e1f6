"""Never the wrong patient on screen: every per-patient panel and action is cleared or disabled the moment the
patient in view changes, pages without a patient say so, and late background results of the previous patient
are dropped. Real widgets offscreen on the demo store."""
from __future__ import annotations

import datetime as dt

import pytest

from tests.test_viewmodels import _unlocked


@pytest.fixture
def patient_page(qtbot, owner, demo_store):
    from ui.patient_view import PatientView
    from viewmodels.patients_vm import PatientViewModel
    vm, runner, desk = _unlocked(qtbot, owner, demo_store)
    page = PatientViewModel(desk, runner, owner)
    view = PatientView(page)
    qtbot.addWidget(view)
    view.resize(1280, 760)
    view.show()
    return desk, runner, page, view


def _scored_patient(desk) -> int:
    """A patient whose latest stay gets a risk (not death, hospice or a transfer to another acute hospital)."""
    from services.records.uci_schema import INELIGIBLE_DISPOSITIONS
    patients = desk.records.patients
    return next(p.patient_id for p in patients.search("", limit=200) if (e := patients.encounters(p.patient_id))
                and e[0].discharge_disposition_id not in INELIGIBLE_DISPOSITIONS)


def _open(qtbot, page, pid: int) -> None:
    with qtbot.waitSignal(page.riskChanged, timeout=20_000, check_params_cb=lambda r: r is not None):
        page.load(pid)


def test_a_new_patient_without_stays_shows_nothing_of_the_previous_one(qtbot, patient_page):
    desk, runner, page, view = patient_page
    _open(qtbot, page, _scored_patient(desk))
    assert view.risk.percent.text().endswith("%") and view.risk.factors.text() and view.print_button.isEnabled()
    errors = page.save_patient({"mrn": "NEW-0001", "family_name": "Nakamura", "given_name": "Aiko", "sex": "Female",
                                "birth_date": "1985-03-12", "race": "Asian"})
    assert errors == {}, errors
    qtbot.waitUntil(lambda: page.patient is not None and page.patient.mrn == "NEW-0001", timeout=10_000)
    qtbot.waitUntil(lambda: not runner.busy, timeout=20_000)
    assert page.risk is None and page.los is None and page.selected_encounter is None
    assert view.risk.percent.text() == "—" and not view.risk.factors.text() and not view.risk.scores.text()
    assert not view.risk.band.text() and not view.risk.stay.text() and not view.risk.model.text()
    assert "Nakamura" in view.name.text()
    assert not view.print_button.isEnabled() and not view.save_button.isEnabled() and not page.can_report
    assert view.edit_patient.isEnabled() and view.add_encounter.isEnabled() and not view.edit_encounter.isEnabled()


def test_switching_patient_clears_everything_before_the_next_one_arrives(qtbot, patient_page):
    desk, runner, page, view = patient_page
    first = _scored_patient(desk)
    _open(qtbot, page, first)
    other = next(p.patient_id for p in desk.records.patients.search("", limit=200) if p.patient_id != first)
    page.load(other)   # the record of `other` is still being read: nothing of `first` may remain meanwhile
    assert page.patient is None and page.encounters_model.total == 0 and page.risk is None
    assert view.risk.percent.text() in ("—", "…") and not view.risk.factors.text()
    assert view.name.text() == "No patient open" and not view.print_button.isEnabled()
    qtbot.waitUntil(lambda: page.patient is not None and page.patient.id == other, timeout=10_000)


def test_the_patient_page_without_a_patient_says_so_and_offers_nothing(qtbot, patient_page):
    _desk, _runner, page, view = patient_page
    assert page.patient is None and view.name.text() == "No patient open" and "Ctrl+1" in view.facts.text()
    for b in (view.edit_patient, view.add_encounter, view.edit_encounter, view.xray_button, view.print_button,
              view.save_button):
        assert not b.isEnabled(), b.text()
    page.save_report("/tmp/never-written.pdf")   # the action itself refuses too, not only the button
    page.print_report(150)
    assert not page.runner.busy


def test_the_xray_page_follows_the_patient_and_drops_late_results(qtbot, owner, demo_store, tmp_path):
    from ui.xray_view import XrayView
    from viewmodels.xray_vm import XrayViewModel
    from PIL import Image
    vm_s, runner, desk = _unlocked(qtbot, owner, demo_store)
    vm = XrayViewModel(desk, runner, owner)
    view = XrayView(vm, lambda: "", ask=lambda label, check: True)
    qtbot.addWidget(view)
    view.show()
    assert view.title.text() == "X-ray – no patient open" and not view.add_button.isEnabled()
    vm.set_patient(None)
    assert "No patient open" in vm.status
    # a study of patient A (stored directly through the service: no image file needed on disk)
    patients = desk.records.patients.search("", limit=3)
    a, b = patients[0], patients[1]
    img = Image.effect_noise((256, 256), 40).convert("L")
    path = tmp_path / "a.png"
    img.save(path)
    try:
        desk.imaging.studies.add_study(a.patient_id, path.read_bytes(), "a.png", identity_confirmed=True)
    except Exception:  # noqa: BLE001 - a noise picture may be refused as not a radiograph; then nothing is stored
        pass
    stored = [s for s in desk.imaging.studies.studies(a.patient_id)]
    vm.set_patient(a.patient_id, "Patient A")
    assert view.title.text() == "X-ray – Patient A" and view.add_button.isEnabled() == vm.can_add
    qtbot.waitUntil(lambda: not runner.busy, timeout=20_000)
    if stored:
        vm.open_study(stored[0].id)   # ... and before it is read, another patient is opened
    vm.set_patient(b.patient_id, "Patient B")
    assert vm.studies == [] and vm.opened is None and view.list.count() == 0
    qtbot.waitUntil(lambda: not runner.busy, timeout=20_000)
    assert vm.opened is None or vm.opened.study.patient_id == b.patient_id
    assert all(s.patient_id == b.patient_id for s in vm.studies)
    assert dt.date.today()


# ----- whose image is it? ------------------------------------------------------------------------------

def _dicom_for(tmp_path, patient, **overrides):
    """A real chest radiograph DICOM (shared sample) re-labelled with the given patient identity."""
    import pydicom
    from tests.conftest import shared_path
    ds = pydicom.dcmread(shared_path("dicom", "rsna_pneumonia_example.dcm"))
    ds.PatientID = overrides.get("PatientID", patient.mrn)
    ds.PatientName = overrides.get("PatientName", f"{patient.family_name}^{patient.given_name}")
    ds.PatientBirthDate = overrides.get("PatientBirthDate", patient.birth_date.strftime("%Y%m%d"))
    ds.PatientSex = overrides.get("PatientSex", {"Female": "F", "Male": "M"}.get(patient.sex, "O"))
    path = tmp_path / "study.dcm"
    ds.save_as(path)
    return path


def test_a_dicom_of_another_patient_is_not_stored_without_a_confirmation_that_is_audited(desks, tmp_path):
    from services.imaging.studies import IdentityUnconfirmed
    from tests.conftest import shared_path
    desk = desks("dr.demo")
    pid = desk.records.patients.search("", limit=1)[0].patient_id
    patient = desk.records.patients.get_patient(pid)
    studies = desk.imaging.studies
    # the RSNA sample as it comes: a UUID for PatientID and no name -- not this patient
    with pytest.raises(IdentityUnconfirmed) as unconfirmed:
        studies.add_study(pid, shared_path("dicom", "rsna_pneumonia_example.dcm"))
    rows = {r.field: r for r in unconfirmed.value.check.rows}
    assert rows["Patient number"].match is False and rows["Patient number"].in_record == patient.mrn
    assert studies.studies(pid) == []
    # the same film carrying this patient's identity: stored at once
    assert studies.add_study(pid, _dicom_for(tmp_path, patient)).patient_id == pid
    # a film of someone else (another birth date and name): refused until confirmed, and the confirmation is audited
    other = _dicom_for(tmp_path, patient, PatientName="Williams^Omar", PatientBirthDate="19400101")
    with pytest.raises(IdentityUnconfirmed) as wrong:
        studies.add_study(pid, other)
    assert "name" in wrong.value.check.reason and "birth date" in wrong.value.check.reason
    stored = studies.add_study(pid, other, identity_confirmed=True)
    events = [e for e in desks("admin").session.audit.recent(20) if e.action == "xray_identity_confirmed"]
    assert events and events[0].entity_id == str(stored.id)
    assert "name" in events[0].detail and "birth date" in events[0].detail
    assert "Williams" not in events[0].detail and patient.family_name not in events[0].detail   # fields, not values


def test_a_png_needs_the_users_word_that_it_belongs_to_the_patient(qtbot, owner, demo_store):
    from ui.xray_view import XrayView
    from viewmodels.xray_vm import XrayViewModel
    from tests.conftest import shared_path
    original = shared_path("nih_cxr", "originals", "00027426_000.png")
    _vm, runner, desk = _unlocked(qtbot, owner, demo_store)
    answers, asked = [False, True], []
    vm = XrayViewModel(desk, runner, owner)
    view = XrayView(vm, lambda: "", ask=lambda label, check: asked.append((label, check.reason)) or answers.pop(0))
    qtbot.addWidget(view)
    pid = desk.records.patients.search("", limit=1)[0].patient_id
    vm.set_patient(pid, "Patient A")
    qtbot.waitUntil(lambda: not runner.busy, timeout=20_000)
    vm.add_file(str(original))                       # first answer: do not add
    qtbot.waitUntil(lambda: "was not added" in vm.status, timeout=30_000)
    assert asked[0][0] == "Patient A" and "no patient identity" in asked[0][1] and vm.studies == []
    with qtbot.waitSignal(vm.imageChanged, timeout=30_000):
        vm.add_file(str(original))                   # second answer: add
    assert len(vm.studies) == 1 and len(asked) == 2


def test_a_record_asked_for_earlier_never_arrives_over_the_one_opened_last(qtbot, patient_page):
    desk, runner, page, view = patient_page
    patients = desk.records.patients
    first, second = (p.patient_id for p in patients.search("", limit=2))
    page.load(first)
    page.load(second)
    qtbot.waitUntil(lambda: not runner.busy and page.patient is not None and page.patient.id == second, timeout=20_000)
    # the first record's reading finishing late (the background runner gives no order): it is dropped
    page._loaded((patients.get_patient(first), patients.encounters(first)))
    assert page.patient.id == second and "Ctrl+1" not in view.facts.text()
    assert all(page.encounters_model.row(i).patient_id == second for i in range(page.encounters_model.total))
