"""Discharge worklist, interventions from it, and alerts that stay until acknowledged."""
from __future__ import annotations

from PySide6.QtWidgets import QLabel

import datetime as dt

import pytest

from services.desk import open_desk
from services.risk.alerts import AlertService
from services.capacity.census import CensusService
from services.core.errors import PermissionDenied, ValidationError
from services.risk.worklist import WorklistService

NURSE = ("nurse.demo", "wardlens-nurse")


def test_worklist_is_due_within_48h_sorted_by_risk_with_interventions(demo_store):
    s = open_desk(demo_store, *NURSE)
    rows = s.risk.worklist.discharge_worklist()
    assert rows, "the demo census has patients due home"
    limit = dt.date.today() + dt.timedelta(days=2)
    assert all(r.inpatient.expected_discharge <= limit for r in rows)
    probs = [r.risk.probability or 0 for r in rows]
    assert probs == sorted(probs, reverse=True)
    stored = s.session.db.conn.execute("SELECT count(*) FROM interventions").fetchone()[0]
    assert stored == sum(len(r.interventions) for r in rows)
    ward = rows[0].inpatient.ward
    assert all(r.inpatient.ward == ward for r in s.risk.worklist.discharge_worklist(ward=ward))
    s.lock()


def test_analyst_cannot_work_the_list(demo_store):
    a = open_desk(demo_store, "analyst.demo", "wardlens-analyst")
    with pytest.raises(PermissionDenied):
        a.risk.worklist.discharge_worklist()
    a.lock()


def test_alerts_raised_once_and_stay_until_acknowledged(demo_store):
    s = open_desk(demo_store, *NURSE)
    census, alerts = s.capacity.census, s.risk.alerts
    inp = census.inpatients()
    risks = s.risk.worklist.inpatient_risks(inp)
    forecasts = census.forecasts(inpatients=inp)
    n = alerts.evaluate(inp, risks, forecasts)
    over = [p for p in inp if (risks[p.encounter_nbr].probability or 0) >= risks[p.encounter_nbr].threshold]
    assert n == len(over) + sum(1 for f in forecasts if f.days_at_risk)
    assert alerts.evaluate(inp, risks, forecasts) == 0  # not raised twice
    open_ = alerts.open_alerts()
    assert len(open_) == n
    alerts.acknowledge(open_[0].id)
    assert len(alerts.open_alerts()) == n - 1
    with pytest.raises(ValidationError):
        alerts.acknowledge(open_[0].id)
    assert s.session.db.conn.execute("SELECT count(*) FROM audit_log WHERE action = 'acknowledge'").fetchone()[0] == 1
    s.lock()
    a = open_desk(demo_store, "analyst.demo", "wardlens-analyst")
    for alert in a.risk.alerts.open_alerts():
        if alert.kind == "risk":
            assert "," not in alert.message and alert.entity_id == ""  # no names for analysts
    with pytest.raises(PermissionDenied):
        a.risk.alerts.acknowledge(open_[1].id)
    a.lock()


def test_worklist_page_and_banner_offscreen(qtbot, owner, qt_settings, demo_store):
    from ui.worklist_view import AlertBanner, WorklistView
    from viewmodels.background import BackgroundRunner
    from viewmodels.worklist_vm import AlertsViewModel, WorklistViewModel
    s = open_desk(demo_store, *NURSE)
    runner = BackgroundRunner(owner)
    vm = WorklistViewModel(s, runner, owner)
    view = WorklistView(vm)
    qtbot.addWidget(view)
    with qtbot.waitSignal(vm.loaded, timeout=30_000):
        vm.refresh()
    assert vm.model.rowCount() > 0 and vm.selected is not None
    rec = next((r for r in vm.selected.interventions if r.status == "recommended"), None)
    if rec is not None:
        notices = []
        vm.notice.connect(notices.append)
        with qtbot.waitSignal(vm.selectedChanged, timeout=10_000):
            vm.mark(rec, "done")
        assert any(r.status == "done" for r in vm.selected.interventions)
        assert notices == [f"{rec.title}: recorded as done"]  # the window shows it in the status bar
    avm = AlertsViewModel(s, runner, owner)
    banner = AlertBanner(avm)
    qtbot.addWidget(banner)
    with qtbot.waitSignal(avm.alertsChanged, timeout=30_000):
        avm.refresh()
    assert avm.alerts and not banner.isHidden()
    n = len(avm.alerts)
    rows = lambda: [w for w in banner.findChildren(QLabel) if w.accessibleName() == "Alert" and not w.isHidden()]  # noqa: E731
    banner.show()
    qtbot.waitUntil(lambda: len(rows()) == banner.SHOWN, timeout=5_000)
    assert n > banner.SHOWN and f"Show all {n}" in banner.more.text()
    banner.more.click()
    qtbot.waitUntil(lambda: len(rows()) == n, timeout=5_000)  # every open alert, scrolling past five
    banner.more.click()
    qtbot.waitUntil(lambda: len(rows()) == banner.SHOWN, timeout=5_000)
    with qtbot.waitSignal(avm.alertsChanged, timeout=10_000):
        avm.acknowledge(avm.alerts[0].id)
    s.lock()


def test_an_alert_names_its_patient_unambiguously_and_opens_them(qtbot, owner, demo_store):
    from viewmodels.background import BackgroundRunner
    from viewmodels.worklist_vm import AlertsViewModel
    s = open_desk(demo_store, *NURSE)
    vm = AlertsViewModel(s, BackgroundRunner(owner), owner)
    with qtbot.waitSignal(vm.alertsChanged, timeout=30_000):
        vm.start()
    risk = next(a for a in vm.alerts if a.kind == "risk")
    nbr = int(risk.entity_id)
    pid = s.session.db.conn.execute("SELECT patient_id FROM encounters WHERE encounter_nbr = ?", (nbr,)).fetchone()[0]
    mrn = s.session.identity(pid).mrn
    assert f"patient no. {mrn}" in risk.message   # two patients may share a name; the number tells them apart
    with qtbot.waitSignal(vm.openPatient, timeout=10_000) as opened:
        vm.open_alert(risk.id)
    assert opened.args == [pid]
    capacity = next((a for a in vm.alerts if a.kind == "capacity"), None)
    if capacity is not None:
        # "on" a day or "on N of the next 14 days", never "from" (one day at a small chance is no lasting state)
        assert " beds on " in capacity.message and " from " not in capacity.message, capacity.message
        with qtbot.waitSignal(vm.openWard, timeout=10_000) as ward:
            vm.open_alert(capacity.id)
        assert ward.args[0] == capacity.entity_id.rpartition(":")[0]
    s.lock()


def test_analysts_get_no_alerts_they_cannot_act_on(qtbot, owner, demo_store):
    from viewmodels.background import BackgroundRunner
    from viewmodels.worklist_vm import AlertsViewModel
    a = open_desk(demo_store, "analyst.demo", "wardlens-analyst")
    runner = BackgroundRunner(owner)
    vm = AlertsViewModel(a, runner, owner)
    vm.start()
    qtbot.wait(200)
    assert not runner.busy and vm.alerts == []
    with pytest.raises(PermissionDenied):
        a.risk.alerts.target(1)
    a.lock()
