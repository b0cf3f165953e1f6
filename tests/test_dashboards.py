"""Dashboards: the view-model without widgets (signals, in-place replacement, audited export) and the
view offscreen (tabs render, a chart exports a non-empty PNG)."""
from __future__ import annotations

import pytest

from services.desk import open_desk
from tests.conftest import copy_store
from viewmodels.background import BackgroundRunner
from viewmodels.dashboards_vm import DASHBOARDS, DashboardsViewModel

SIGNALS = ("readmissionChanged", "performanceChanged", "losChanged", "explorationChanged")


@pytest.fixture(scope="module")
def store(_demo_master, tmp_path_factory):
    return copy_store(_demo_master, tmp_path_factory.mktemp("dashboards"))


@pytest.fixture
def analyst_vm(qtbot, owner, store):
    session = open_desk(store, "analyst.demo", "wardlens-analyst")
    vm = DashboardsViewModel(session, BackgroundRunner(owner), owner)
    yield vm
    session.lock()


def test_refresh_publishes_each_dashboard_and_replaces_results(qtbot, analyst_vm):
    vm = analyst_vm
    busy = []
    vm.busyChanged.connect(busy.append)
    with qtbot.waitSignals([getattr(vm, s) for s in SIGNALS] + [vm.refreshed], timeout=60_000):
        vm.refresh()
    first = dict(vm.results)
    assert all(first[name] is not None for name in DASHBOARDS) and busy == [True, False]
    assert vm.metrics_model.rowCount() == 3 and vm.anomalies_model.rowCount() == 10
    assert all(a.encounter.startswith("E-") for a in first["exploration"].anomalies)  # de-identified
    assert vm.drift and "encounters, de-identified" in vm.status and vm.error == ""
    with qtbot.waitSignal(vm.refreshed, timeout=60_000):
        vm.refresh()
    assert all(vm.results[n] is not first[n] for n in DASHBOARDS)  # new results replace the old ones
    assert vm.results["performance"].auc == pytest.approx(first["performance"].auc)
    assert busy == [True, False, True, False]


def test_export_is_audited_for_the_analyst_and_refused_for_a_nurse(qtbot, owner, analyst_vm, store, tmp_path):
    written = []
    png = b"\x89PNG\r\n\x1a\n" + b"chart"

    def render():
        written.append(1)
        return png
    assert analyst_vm.export_chart("readmission_ward", str(tmp_path / "a.png"), render)
    assert written == [1] and (tmp_path / "a.png").read_bytes() == png
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o600
    log = analyst_vm.session.session.db.conn.execute("SELECT action, entity, entity_id FROM audit_log").fetchall()
    assert ("export", "dashboard", "readmission_ward") in log

    nurse = open_desk(store, "nurse.demo", "wardlens-nurse")
    try:
        vm = DashboardsViewModel(nurse, BackgroundRunner(owner), owner)
        assert not vm.can_export
        assert not vm.export_chart("readmission_ward", str(tmp_path / "n.png"), render)
        assert len(written) == 1 and "may not export" in vm.error
    finally:
        nurse.lock()


def test_view_renders_tabs_and_exports_a_png(qtbot, analyst_vm, tmp_path):
    from ui.dashboards_view import DashboardsView
    view = DashboardsView(analyst_vm)
    qtbot.addWidget(view)
    view.resize(1100, 800)
    with qtbot.waitSignal(analyst_vm.refreshed, timeout=60_000):
        view.show()  # the first look starts the computation, off the GUI thread
    assert [view.tabs.tabText(i) for i in range(view.tabs.count())] == \
        ["Readmission", "Model performance", "Length of stay", "Exploration"]
    d = analyst_vm.results["readmission"]
    assert len(view.ward.bars.opts["width"]) == len(d.by_ward.rows)
    assert view.cards["readmission_ward"].caption.text() == d.by_ward.caption
    assert len(view.roc.curve.getData()[0]) == len(analyst_vm.results["performance"].fpr)
    assert len(view.los_scatter.groups[0].data) == len(analyst_vm.results["los"].predicted)
    assert view.correlation.image.image.shape == analyst_vm.results["exploration"].correlation.matrix.shape
    for i in range(view.tabs.count()):
        view.tabs.setCurrentIndex(i)
        assert not view.tabs.currentWidget().grab().isNull()
    png = tmp_path / "ward.png"
    assert analyst_vm.export_chart("readmission_ward", str(png), view.cards["readmission_ward"].png_bytes)
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not view.cards["readmission_ward"].export_button.isHidden()  # analysts may export
