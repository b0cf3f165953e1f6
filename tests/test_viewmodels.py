"""View-models without widgets: state, change notification, background work, errors."""
from __future__ import annotations

from viewmodels.background import BackgroundRunner
from viewmodels.patients_vm import PatientListViewModel, PatientViewModel
from viewmodels.session_vm import SessionViewModel
from services.site.accounts import unlock
from services.core.errors import Cancelled


def _unlocked(qtbot, owner, demo_store, user="dr.demo", pw="wardlens-clinician"):
    runner = BackgroundRunner(owner)
    vm = SessionViewModel(demo_store, runner, build_demo_if_missing=False, parent=owner)
    vm.prepare()
    with qtbot.waitSignal(vm.sessionChanged, timeout=10_000) as sig:
        vm.unlock(user, pw)
    return vm, runner, sig.args[0]   # the Desk: the session and its façades


def test_background_runner_delivers_results_errors_progress_and_cancel(qtbot, owner):
    runner = BackgroundRunner(owner)
    got, progress = [], []

    def job(report, cancel):
        report(1, 2, "half")
        return 42

    with qtbot.waitSignal(runner.busyChanged, timeout=5000, check_params_cb=lambda b: b is False):
        runner.run("ok", job, on_success=got.append, on_progress=lambda d, t, m: progress.append((d, t, m)))
    assert got == [42] and progress == [(1, 2, "half")]

    errors = []
    with qtbot.waitSignal(runner.busyChanged, timeout=5000, check_params_cb=lambda b: b is False):
        runner.run("bad", lambda r, c: 1 / 0, on_failure=errors.append)
    assert isinstance(errors[0], ZeroDivisionError)

    import threading
    started = threading.Event()

    def slow(report, cancel):
        started.set()
        while True:
            cancel.raise_if_cancelled()

    cancelled = []
    with qtbot.waitSignal(runner.busyChanged, timeout=5000, check_params_cb=lambda b: b is False):
        task = runner.run("slow", slow, on_failure=cancelled.append)
        started.wait(5)
        task.cancel()
    assert isinstance(cancelled[0], Cancelled)


def test_background_runner_under_churn_releases_everything_on_the_gui_thread(qtbot, owner):
    """Hundreds of short jobs whose closures hold Qt objects, owners deleted while jobs run: every
    live result arrives once, dropped ones never, and the hub keeps no task or job afterwards (a
    per-job QObject released on a worker thread once crashed the suite)."""
    import threading

    from PySide6.QtCore import QObject

    from viewmodels import background

    runner = BackgroundRunner(owner)
    got: list[int] = []
    gui = threading.get_ident()
    released_on: list[int] = []

    class Held(QObject):  # a view-model stand-in that a job's closure keeps alive
        def __del__(self):
            released_on.append(threading.get_ident())

    import shiboken6

    doomed = [QObject() for _ in range(50)]
    gate = threading.Event()  # the doomed owners' jobs finish only after their owners are gone

    def job(report, cancel, i, held):
        if i % 3 == 0:
            gate.wait(10)
        report(i, 300)
        return i

    with qtbot.waitSignal(runner.busyChanged, timeout=30_000, check_params_cb=lambda b: b is False):
        for i in range(300):
            held = Held()
            runner.run(f"job {i}", lambda r, c, i=i, held=held: job(r, c, i, held),
                       on_success=got.append, owner=doomed[i % 50] if i % 3 == 0 else None)
            del held
        for d in doomed:
            shiboken6.delete(d)
        gate.set()
    qtbot.wait(50)
    assert sorted(got) == [i for i in range(300) if i % 3]  # the deleted owners' results were dropped
    assert background._HUB is not None and not background._HUB.live and not background._HUB.jobs
    assert len(released_on) == 300 and set(released_on) == {gui}


def test_unlock_success_and_failure(qtbot, owner, demo_store):
    runner = BackgroundRunner(owner)
    vm = SessionViewModel(demo_store, runner, build_demo_if_missing=False, parent=owner)
    vm.prepare()
    assert [d["username"] for d in vm.demo_logins][:2] == ["admin", "dr.demo"]
    with qtbot.waitSignal(vm.errorChanged, timeout=10_000) as sig:
        vm.unlock("dr.demo", "wrong-password")
    assert sig.args == ["Wrong user name or password."]
    assert vm.session is None and not vm.busy
    with qtbot.waitSignal(vm.sessionChanged, timeout=10_000):
        vm.unlock("dr.demo", "wardlens-clinician")
    assert vm.session is not None and vm.session.user.username == "dr.demo"
    with qtbot.waitSignal(vm.sessionChanged) as locked:
        vm.lock()
    assert locked.args == [None]


def test_error_property_notifies_only_on_real_change(qtbot, owner, demo_store):
    vm = SessionViewModel(demo_store, BackgroundRunner(owner), build_demo_if_missing=False, parent=owner)
    seen = []
    vm.errorChanged.connect(seen.append)
    vm.unlock("", "")
    vm.unlock("", "")
    assert seen == ["Enter your user name and password."]


def test_idle_check_locks_and_says_why(qtbot, owner, demo_store):
    vm, runner, session = _unlocked(qtbot, owner, demo_store)
    session.session.idle_seconds = 0.01
    import time
    time.sleep(0.05)
    with qtbot.waitSignal(vm.sessionChanged) as sig:
        vm.check_idle()
    assert sig.args == [None] and "inactivity" in vm.error and session.locked


def test_patient_list_search_and_open(qtbot, owner, demo_store):
    vm, runner, session = _unlocked(qtbot, owner, demo_store)
    plist = PatientListViewModel(session, runner, owner)
    with qtbot.waitSignal(plist.statusChanged, timeout=10_000):
        plist.refresh()
    total = plist.model.total
    stored = session.session.db.conn.execute("SELECT count(*) FROM patients").fetchone()[0]
    assert stored > total == plist.BROWSE and plist.model.rowCount() == 500  # the first by name, in batches
    assert plist.model.canFetchMore()
    everyone = [r.patient_id for r in plist.service.search("")]
    assert [r.patient_id for r in plist.model._rows] == everyone[:plist.BROWSE]
    assert f"{stored:,} patients in the store" in plist.status and "type to find the others" in plist.status
    with qtbot.waitSignal(plist.statusChanged, timeout=10_000):
        plist.set_search_text("Medicine A")
    assert 0 < plist.model.total < total
    assert all(r.ward == "Medicine A" for r in plist.model._rows)
    with qtbot.waitSignal(plist.openPatient) as opened:
        plist.activate_row(0)
    assert opened.args == [plist.model.row(0).patient_id]


def test_patient_page_load_and_validated_save(qtbot, owner, demo_store):
    vm, runner, session = _unlocked(qtbot, owner, demo_store)
    page = PatientViewModel(session, runner, owner)
    with qtbot.waitSignal(page.loaded, timeout=10_000):
        page.load(1)
    assert page.patient is not None and page.encounters_model.total >= 1
    assert page.selected_encounter is not None
    problems = page.save_patient({"mrn": "bad mrn!", "family_name": ""}, 1)
    assert set(problems) == {"mrn", "family_name", "birth_date"}
    problems = page.save_encounter({"admit_time": "2026-01-05 10:00", "discharge_time": "2026-01-01 10:00",
                                    "diagnoses": ["428.0", "XYZ"]})
    assert {"discharge_time", "diagnoses"} <= set(problems)
    with qtbot.waitSignal(page.loaded, timeout=10_000):
        ward = page.wards()[0]
        bed = page.free_beds(ward.id)[0]
        assert page.save_encounter({"admit_time": "2026-01-01 10:00", "diagnoses": ["428.0", "I50.9"],
                                    "medications": {"insulin": "Up"}, "ward_id": ward.id, "bed_id": bed.id}) == {}
    new = page.encounters_model.row(0)
    assert new.is_inpatient and [d.code for d in new.diagnoses] == ["428.0", "I50.9"]
    assert [(m.drug, m.status) for m in new.medications] == [("insulin", "Up")]


def test_nurse_page_cannot_edit(qtbot, owner, demo_store):
    vm, runner, session = _unlocked(qtbot, owner, demo_store, "nurse.demo", "wardlens-nurse")
    page = PatientViewModel(session, runner, owner)
    assert not page.can_edit
    problems = page.save_patient({"mrn": "N1", "family_name": "Doe"})
    assert "may not" in problems[""]


def test_patient_page_scores_the_encounter_in_view(qtbot, owner, demo_store):
    from services.records.uci_schema import INELIGIBLE_DISPOSITIONS
    vm, runner, session = _unlocked(qtbot, owner, demo_store)
    patients = session.records.patients
    # a patient whose stay in view (the current one, else the latest) may be scored: the test cannot pass vacuously
    scored = next(p.patient_id for p in patients.search("", limit=200)
                  if patients.encounters(p.patient_id)[0].discharge_disposition_id not in INELIGIBLE_DISPOSITIONS)
    page = PatientViewModel(session, runner, owner)
    with qtbot.waitSignal(page.riskChanged, timeout=20_000, check_params_cb=lambda r: r is not None):
        page.load(scored)
    r = page.risk
    assert r.encounter_nbr == page.selected_encounter.encounter_nbr and r.eligible
    assert 0.0 < r.probability < 1.0 and r.band in ("low", "medium", "high")
    assert r.factors and all(f.contribution > 0 and f.text for f in r.factors)
    assert r.lace == sum(r.lace_components.values()) and 0 <= r.lace <= 19
    card = page.model_card()  # the card of the model in use, for people: use and limits before figures
    assert card.index("What it is for") < card.index("Limits") < card.index("How well it did") < card.index("Details")
    assert "Version readmission-" in card and "Ranking (ROC AUC)" in card
    audit = session.session.db.conn.execute("SELECT count(*) FROM audit_log WHERE action = 'score'").fetchone()[0]
    assert audit >= 1


def test_damaged_store_offers_the_last_verified_backup_and_restores_it(qtbot, owner, demo_store, tmp_path):
    from services.site.backup import backup
    s = unlock(demo_store, "admin", "wardlens-admin")
    (tmp_path / "backups").mkdir(exist_ok=True)
    backup(s, tmp_path / "backups" / "b1.db")
    s.lock()
    data = bytearray(demo_store.read_bytes())
    for i in range(8192, 16384):
        data[i] ^= 0xA5
    demo_store.write_bytes(bytes(data))
    vm = SessionViewModel(demo_store, BackgroundRunner(owner), build_demo_if_missing=False, parent=owner)
    with qtbot.waitSignal(vm.backupOffered, timeout=20_000) as offered:
        vm.unlock("admin", "wardlens-admin")
    assert offered.args[0] is not None and "damaged" in vm.error
    with qtbot.waitSignal(vm.sessionChanged, timeout=20_000) as opened:
        vm.restore_offered_backup()
    assert opened.args[0] is not None and vm.error == ""
    assert list(demo_store.parent.glob("*.before-restore-*")), "the damaged store is kept beside"
    vm.lock()


def test_typed_search_returns_a_page_and_says_so(qtbot, owner, demo_store):
    vm, runner, session = _unlocked(qtbot, owner, demo_store)
    plist = PatientListViewModel(session, runner, owner)
    plist.PAGE = 50
    with qtbot.waitSignal(plist.statusChanged, timeout=10_000):
        plist.set_search_text("2")  # diagnosis codes starting with 2: hundreds of patients
    assert plist.model.total == 50 and "type more" in plist.status


def test_patient_page_shows_codes_and_age_band_in_words() -> None:
    """Stay tab, encounter table and patient list: plain words and one age form ("70–79"); stored codes unchanged."""
    import datetime as dt

    from models.domain import Encounter, PatientRow
    from viewmodels.patients_vm import ENCOUNTER_COLUMNS, PATIENT_COLUMNS, PatientViewModel
    e = Encounter(1, 1, 10, dt.datetime(2026, 1, 5, 9), dt.datetime(2026, 1, 9, 12), admission_type_id=6,
                  admission_source_id=7, discharge_disposition_id=3, medical_specialty="Family/GeneralPractice",
                  payer_code="MC", age_band="[70-80)")
    rows = dict(PatientViewModel.stay_rows(e))
    assert rows["Admission source"] == "Emergency department" and rows["Payer"] == "Medicare"
    assert rows["Discharge disposition"] == "Transfer to a skilled nursing facility"
    assert rows["Age at admission"] == "70–79"
    cols = {c.header: c.value(e) for c in ENCOUNTER_COLUMNS}
    assert cols["Admission"] == "Not recorded" and cols["Specialty"] == "Family / general practice"
    row = PatientRow(1, "100", "Adams, Donna", "Female", "[70-80)", "Medicine A", "2026-01-05", 1, "428", True)
    assert {c.header: c.value(row) for c in PATIENT_COLUMNS}["Age"] == "70–79"
    assert e.age_band == "[70-80)" and e.payer_code == "MC"  # what is stored stays as it was


def test_hospital_use_in_the_year_before_comes_from_the_record_where_its_dates_allow() -> None:
    import datetime as dt

    from models.domain import Encounter
    from viewmodels.patients_vm import PatientViewModel
    now = dt.datetime(2026, 12, 1, 9)
    stay = Encounter(1, 1, 30, now, None, number_inpatient=0, number_emergency=0, number_outpatient=0)
    four_months = Encounter(2, 1, 20, now - dt.timedelta(days=120), now - dt.timedelta(days=115))
    two_years = Encounter(3, 1, 10, now - dt.timedelta(days=730), now - dt.timedelta(days=725))
    rows = dict(PatientViewModel.stay_rows(stay, [stay, four_months, two_years]))
    assert rows["Hospital use in the year before"] == "1 hospital stay on this record"
    reported = Encounter(1, 1, 30, now, None, number_inpatient=3, number_emergency=2, number_outpatient=0)
    rows = dict(PatientViewModel.stay_rows(reported, [reported, two_years]))
    assert rows["Hospital use in the year before"] == \
        "0 hospital stays on this record; reported at admission: 0 outpatient / 2 emergency / 3 inpatient"
    rows = dict(PatientViewModel.stay_rows(reported))   # no dated history: the reported figures, saying so
    assert rows["Hospital use in the year before"] == "0 outpatient / 2 emergency / 3 inpatient (as reported at admission)"
