"""The Settings page driven through its widgets: every value checked before anything is saved, errors beside their
field, and saved settings used by alerts, staffing and the printed reports."""
from __future__ import annotations

import pytest


@pytest.fixture
def page(qtbot, desks, owner):
    from ui.settings_view import SettingsView
    from viewmodels.background import BackgroundRunner
    from viewmodels.settings_vm import SettingsViewModel
    desk = desks("admin")
    vm = SettingsViewModel(desk, BackgroundRunner(owner), owner)
    view = SettingsView(vm)
    qtbot.addWidget(view)
    view.resize(1280, 800)
    view.show()
    with qtbot.waitSignal(vm.loaded, timeout=20_000):
        vm.refresh()
    return view, vm, desk


def _save(qtbot, view, vm) -> None:
    with qtbot.waitSignal(vm.statusChanged, timeout=20_000, check_params_cb=lambda s: s != "Saving…"):
        view.save_button.click()


def test_a_bad_value_saves_nothing_and_says_which_field(qtbot, page):
    view, vm, desk = page
    assert set(view.fields) >= {"idle_lock_minutes", "alert_risk_threshold", "staffing_ratios", "hospital_name",
                                "backup_folder", "backup_keep_daily", "backup_keep_monthly"}
    view.fields["hospital_name"].setText("St Elsewhere General")
    view.fields["backup_keep_daily"].setText("0")
    _save(qtbot, view, vm)
    assert "Nothing was saved" in vm.status
    assert view.errors["backup_keep_daily"].isVisible() and "whole number" in view.errors["backup_keep_daily"].text()
    assert not view.errors["hospital_name"].isVisible()
    assert desk.site.settings.get("hospital_name") == ""          # not saved: another field was bad


def test_saved_settings_are_used_by_alerts_staffing_and_reports(qtbot, page, tmp_path):
    view, vm, desk = page
    view.fields["alert_risk_threshold"].setText("0.35")
    view.fields["hospital_name"].setText("St Elsewhere General")
    view.fields["staffing_ratios"].setText('{"default": {"day": 2, "evening": 3, "night": 4}}')
    _save(qtbot, view, vm)
    assert vm.status.startswith("Saved:"), vm.status
    qtbot.waitUntil(lambda: view.fields["hospital_name"].text() == "St Elsewhere General", timeout=10_000)
    assert desk.risk.alerts.risk_threshold(0.2) == pytest.approx(0.35)
    assert desk.site.settings.value("staffing_ratios")["default"] == {"day": 2.0, "evening": 3.0, "night": 4.0}
    audit = [e for e in desk.session.audit.recent(20) if e.action == "setting_changed"]
    assert {e.entity_id for e in audit} >= {"alert_risk_threshold", "hospital_name", "staffing_ratios"}
    from tests.test_reports import flat, pdf_text
    text = flat(pdf_text(desk.reports.ward_pdf(), tmp_path))
    assert "St Elsewhere General · WardLens" in text
    view.grab().save(str(tmp_path / "settings.png"))
