"""One way to open a session, one rule per business fact: the cases where copies had drifted apart.

Each test here failed before services/ became domain packages behind one session opener (services.desk):
the census and the ward report disagreed past day 14, the command line scored with the bundled model after
a local one was promoted, `config --set` refused settings the product reads, and `verify` from the command
line checked no role."""
from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_active

from services.core.errors import PermissionDenied, ValidationError
from services.desk import open_desk
from services.modelops import local_training as lt

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, user: str, password: str) -> subprocess.CompletedProcess:
    """main.py in its own process, as an IT admin runs it (no model state shared with the test)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WARDLENS_USER": user, "WARDLENS_PASSWORD": password}
    env.pop("WARDLENS_RECOVERY_KEY", None)
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, env=env,
                          timeout=180, stdin=subprocess.DEVNULL)


def pdf_text(pdf: Path) -> str:
    out = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return " ".join(out.split())


# ----- a stay past the LOS model's 14-day range ------------------------------------------------------

def _long_stayer(desk, days: int) -> tuple[int, int]:
    """Make one inpatient have been in hospital for `days` days; returns (patient id, encounter number)."""
    conn = desk.session.db.conn
    pid, nbr, eid = conn.execute("SELECT patient_id, encounter_nbr, id FROM encounters WHERE status = 'inpatient' "
                                 "AND bed_id IS NOT NULL ORDER BY encounter_nbr LIMIT 1").fetchone()
    admit = (dt.datetime.now() - dt.timedelta(days=days)).replace(hour=9, minute=0, second=0, microsecond=0)
    with desk.session.db.transaction() as c:
        c.execute("UPDATE encounters SET admit_time = ? WHERE id = ?", (admit.isoformat(sep=" "), eid))
    return pid, nbr


@pytest.mark.parametrize("days", [14, 20])
def test_census_worklist_and_both_reports_agree_past_the_model_range(desks, days):
    nurse = desks("nurse.demo")
    pid, nbr = _long_stayer(desks("admin"), days)   # set-up as an administrator: a nurse may not change a stay
    today = dt.date.today()
    row = next(p for p in nurse.capacity.census.inpatients(today) if p.encounter_nbr == nbr)
    # no invented "home tomorrow" with a zero-width window: the model has nothing to say past 14 days
    assert row.days_in == days and row.beyond_model and row.expected_discharge is None
    assert row.stay.discharge_text == "beyond model range" and row.stay.window_text == "—"
    assert row.stay.stay_text == "over 14 d (beyond model range)"
    assert nbr not in {r.inpatient.encounter_nbr for r in nurse.risk.worklist.discharge_worklist(today=today)}
    name = nurse.records.patients.get_patient(pid).display_name
    ward_pdf = Path(__import__("tempfile").mkdtemp()) / "ward.pdf"
    ward_pdf.write_bytes(nurse.reports.ward_pdf(ward=row.ward, today=today))
    ward_text = pdf_text(ward_pdf)
    lines = [ward_text[i:i + 220] for i in range(len(ward_text)) if ward_text.startswith(name, i)]
    assert any("over 14 d" in line and "beyond model" in line for line in lines)   # the report prints the census
    enc = next(e for e in nurse.records.patients.encounters(pid) if e.encounter_nbr == nbr)
    data = nurse.reports.patient_data(pid, nbr)
    assert data.los is not None and data.los.beyond_model and data.los.expected_discharge is None
    assert data.los.days_so_far == days and enc.is_inpatient


def test_ward_report_prints_the_census_estimate_for_a_long_stay(desks, tmp_path):
    nurse = desks("nurse.demo")
    pid, nbr = _long_stayer(desks("admin"), 16)
    row = next(p for p in nurse.capacity.census.inpatients() if p.encounter_nbr == nbr)
    pdf = tmp_path / "ward.pdf"
    pdf.write_bytes(nurse.reports.ward_pdf(ward=row.ward))
    text = pdf_text(pdf)
    name = nurse.records.patients.get_patient(pid).display_name   # the census line of this patient (the name may
    lines = [text[i:i + 220] for i in range(len(text)) if text.startswith(name, i)]   # also be in the high-risk list)
    assert any("over 14 d" in line and "beyond model" in line and "16" in line for line in lines), lines
    # every other inpatient of the ward shows the census's own date, as on the Beds & Staff page
    for p in nurse.capacity.census.inpatients():
        if p.ward == row.ward and p.expected_discharge is not None:
            assert p.expected_discharge.strftime("%d %b %Y").lstrip("0") in text or \
                p.expected_discharge.strftime("%d %b %Y") in text


# ----- the store's promoted model, in the GUI and on the command line ---------------------------------

def test_promoted_local_model_scores_the_same_in_the_gui_and_the_cli(demo_store, tmp_path, qtbot, owner):
    admin = open_desk(demo_store, "admin", "wardlens-admin")
    bundled = admin.risk.model.get()
    # a local version that ranks patients backwards: impossible to mistake for the bundled model
    version, onnx, meta, trees, _ = lt._package(lt.recalibrate_onnx(bundled.model_bytes(), -bundled.cal_a, bundled.cal_b),
                                                bundled.trees, -bundled.cal_a, bundled.cal_b, 0.2,
                                                [{"name": "low", "min": 0.0}, {"name": "medium", "min": 0.1},
                                                 {"name": "high", "min": 0.2}], "readmission-local", "test")
    vid = admin.models.registry.add_candidate(version, onnx, meta, trees, {"name": "readmission", "kind": "retrain"},
                                              bundled.version, "model retrain", "test: a promoted local model")
    make_active(admin, vid)   # promoted, as the gate would after a better local model
    pid, nbr = admin.session.db.conn.execute(
        "SELECT e.patient_id, e.encounter_nbr FROM encounters e "
        "WHERE e.status = 'inpatient' ORDER BY e.encounter_nbr LIMIT 1").fetchone()
    mrn = admin.session.patient_ref(pid)   # sealed in the store: as the session reads it
    before = admin.risk.assessments.readmission(pid, nbr)
    admin.lock()
    assert before.model_version == bundled.version   # this desk opened before the promotion

    from viewmodels.background import BackgroundRunner
    from viewmodels.session_vm import SessionViewModel
    vm = SessionViewModel(demo_store, BackgroundRunner(owner), build_demo_if_missing=False, parent=owner)
    vm.prepare()
    with qtbot.waitSignal(vm.sessionChanged, timeout=20_000) as opened:
        vm.unlock("dr.demo", "wardlens-clinician")
    gui = opened.args[0].risk.assessments.readmission(pid, nbr)
    vm.lock()
    assert gui.model_version == version and gui.probability != pytest.approx(before.probability, abs=1e-3)

    out = tmp_path / "report.pdf"
    r = cli("report", "patient", "--db", str(demo_store), "--patient", mrn, "--encounter", str(nbr),
            "--output", str(out), user="dr.demo", password="wardlens-clinician")
    assert r.returncode == 0, r.stderr
    text = pdf_text(out)
    assert version in text, "the CLI report names the model it scored with"
    assert f"{gui.percent}" in text and gui.band.upper() in text.upper()


# ----- settings ------------------------------------------------------------------------------------------

def test_config_accepts_every_setting_the_product_reads_and_they_are_used(demo_store):
    admin = dict(user="admin", password="wardlens-admin")
    r = cli("config", "--db", str(demo_store), "--set", "alert_risk_threshold=0.35", **admin)
    assert r.returncode == 0, r.stderr
    assert "alert_risk_threshold = 0.35" in r.stdout
    ratios = '{"default": {"day": 3, "evening": 4, "night": 6}, "per_ward": {"ICU": {"day": 1, "evening": 1, "night": 2}}}'
    r = cli("config", "--db", str(demo_store), "--set", f"staffing_ratios={ratios}", **admin)
    assert r.returncode == 0, r.stderr
    for bad, why in (("alert_risk_threshold=1.5", "between"), ("staffing_ratios={\"default\": {\"day\": 0}}", "exactly"),
                     ("idle_lock_minutes=999", "between"), ("colour=blue", "unknown setting")):
        r = cli("config", "--db", str(demo_store), "--set", bad, **admin)
        assert r.returncode == 1 and why in r.stderr, (bad, r.stderr)
    nurse = cli("config", "--db", str(demo_store), "--set", "alert_risk_threshold=0.5",
                user="nurse.demo", password="wardlens-nurse")
    assert nurse.returncode == 1 and "may not change site settings" in nurse.stderr

    desk = open_desk(demo_store, "nurse.demo", "wardlens-nurse")
    try:
        assert desk.risk.alerts.risk_threshold(0.2) == pytest.approx(0.35)
        ratios_used = desk.capacity.census.staffing_ratios()
        assert ratios_used.for_ward("ICU") == {"day": 1.0, "evening": 1.0, "night": 2.0}
        assert ratios_used.for_ward("Medicine") == {"day": 3.0, "evening": 4.0, "night": 6.0}
        changes = [e.entity_id for e in desk.session.audit.recent(50) if e.action == "setting_changed"]
        assert {"alert_risk_threshold", "staffing_ratios"} <= set(changes)
        with pytest.raises(PermissionDenied):
            desk.site.settings.set("idle_lock_minutes", "5")
    finally:
        desk.lock()


def test_settings_values_are_validated_in_the_service(desks):
    settings = desks("admin").site.settings
    settings.set("alert_risk_threshold", "30%")
    assert settings.value("alert_risk_threshold") == pytest.approx(0.30)
    settings.set("alert_risk_threshold", "")
    assert settings.value("alert_risk_threshold") is None   # the model's own high-risk threshold
    for key, value in (("alert_risk_threshold", "nan"), ("idle_lock_minutes", "-1"), ("staffing_ratios", "[]"),
                       ("staffing_ratios", '{"default": {"day": 4, "evening": 5, "night": true}}')):
        with pytest.raises(ValidationError):
            settings.set(key, value)


# ----- verify checks the role wherever it is run ---------------------------------------------------------

def test_cli_verify_needs_an_administrator_and_is_audited(demo_store):
    r = cli("verify", "--db", str(demo_store), user="nurse.demo", password="wardlens-nurse")
    assert r.returncode == 1 and "may not verify the store" in r.stderr and "OK" not in r.stdout
    ok = cli("verify", "--db", str(demo_store), user="admin", password="wardlens-admin")
    assert ok.returncode == 0 and "intact" in ok.stdout, ok.stderr
    desk = open_desk(demo_store, "admin", "wardlens-admin")
    try:
        events = desk.site.audit_log(100)
    finally:
        desk.lock()
    assert any(e.action == "denied" and e.username == "nurse.demo" and "verify" in e.detail for e in events)
    assert any(e.action == "verify" and e.username == "admin" and e.detail == "ok" for e in events)


def test_views_and_view_models_never_reach_a_connection():
    """The façades are the only way down: no widget or view-model names the store's connection."""
    offenders = []
    for folder in ("ui", "viewmodels"):
        for path in (ROOT / folder).glob("*.py"):
            text = path.read_text(encoding="utf-8")
            if re.search(r"\.db\.(conn|transaction)|\.execute\(|verify_connection", text):
                offenders.append(path.name)
    assert offenders == []


def test_a_damaged_bundled_model_does_not_lock_anyone_out_of_backup_and_verify(demo_store, monkeypatch, tmp_path):
    from services.inference.onnx_runtime import ModelIntegrityError
    from services.inference import shared
    from services.risk.readmission import ReadmissionService

    def damaged(self, *a, **k):
        raise ModelIntegrityError("model.onnx does not match its recorded sha256; refusing to load it")
    monkeypatch.setattr(ReadmissionService, "__init__", damaged)
    monkeypatch.setattr(shared, "_models", {})   # nothing loaded yet in this process
    desk = open_desk(demo_store, "admin", "wardlens-admin")   # opening reads the version, never the model
    try:
        assert desk.active_model.origin == "bundled" and desk.active_model.version.startswith("readmission-")
        assert desk.site.verify().ok
        (tmp_path / "b").mkdir()
        assert desk.site.backup(tmp_path / "b" / "site.db").ok
        pid, nbr = desk.session.db.conn.execute("SELECT patient_id, encounter_nbr FROM encounters LIMIT 1").fetchone()
        with pytest.raises(ModelIntegrityError):   # scoring says why, as an error a person can read
            desk.risk.assessments.readmission(pid, nbr)
    finally:
        desk.lock()
