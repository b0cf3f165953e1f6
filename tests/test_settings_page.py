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


def _logo_file(path, size=(1600, 400), fmt="PNG"):
    """A logo file as a hospital has it: too large, with a comment and EXIF-like text an admin never meant to print."""
    from PIL import Image, PngImagePlugin
    img = Image.new("RGB", size, (11, 95, 115))
    for x in range(0, size[0], 40):
        for y in range(size[1] // 3, size[1] // 2):
            img.putpixel((x, y), (255, 255, 255))
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("Author", "Jane Doe, jane@example.org")
        img.save(path, "PNG", pnginfo=info)
    else:
        img.save(path, fmt)
    return path


def test_the_logo_is_chosen_scaled_cleaned_and_printed_on_both_reports(qtbot, desks, owner, tmp_path):
    import base64
    import io

    from PIL import Image
    from ui.settings_view import SettingsView
    from viewmodels.background import BackgroundRunner
    from viewmodels.settings_vm import SettingsViewModel
    desk = desks("admin")
    vm = SettingsViewModel(desk, BackgroundRunner(owner), owner)
    chosen = {"path": str(_logo_file(tmp_path / "logo.png"))}
    view = SettingsView(vm, ask_logo=lambda parent: chosen["path"])
    qtbot.addWidget(view)
    view.resize(1280, 800)
    view.show()
    with qtbot.waitSignal(vm.loaded, timeout=20_000):
        vm.refresh()
    assert view.logo_preview.text() == "none"
    choose = next(b for b in view.findChildren(type(view.save_button)) if b.text() == "Choose &logo…")
    with qtbot.waitSignal(vm.logoChosen, timeout=20_000):
        choose.click()
    assert not view.logo_preview.pixmap().isNull()
    _save(qtbot, view, vm)
    assert vm.status.startswith("Saved: Hospital logo"), vm.status
    png = desk.site.settings.value("hospital_logo")
    with Image.open(io.BytesIO(png)) as im:
        assert im.format == "PNG" and im.size == (600, 150) and "Author" not in im.info
    assert b"jane@example.org" not in png
    audit = [e for e in desk.session.audit.recent(20) if e.action == "setting_changed" and e.entity_id == "hospital_logo"]
    assert audit and audit[0].detail.startswith("PNG 600×150") and len(audit[0].detail) < 80
    from tests.test_reports import pdf_images
    for pdf in (desk.reports.ward_pdf(), desk.reports.patient_pdf(desk.records.patient_id_for(
            desk.capacity.census.inpatients()[0].mrn))):
        assert any(size == (600, 150) for size in pdf_images(pdf)), "the logo is not on the report"
    # a file that is not a logo is refused beside its field, and the stored logo stays
    chosen["path"] = str(tmp_path / "notes.png")
    (tmp_path / "notes.png").write_text("not an image")
    with qtbot.waitSignal(vm.fieldErrors, timeout=20_000):
        choose.click()
    assert view.errors["hospital_logo"].isVisible() and "not an image" in view.errors["hospital_logo"].text()
    assert desk.site.settings.value("hospital_logo") == png
    with pytest.raises(Exception):
        desk.site.settings.set("hospital_logo", base64.b64encode(b"GIF89a...").decode())
    next(b for b in view.findChildren(type(view.save_button)) if b.text() == "Remove logo").click()
    _save(qtbot, view, vm)
    assert desk.site.settings.value("hospital_logo") == b""


def test_a_logo_typed_as_text_is_checked_whole_and_stored_clean(desks, tmp_path):
    import base64
    import io

    from PIL import Image
    from services.core.errors import ValidationError
    desk = desks("admin")
    raw = _logo_file(tmp_path / "l.png", size=(600, 200)).read_bytes()
    with pytest.raises(ValidationError):   # the first 200 bytes of a real PNG: its header passes, its pixels do not
        desk.site.settings.set("hospital_logo", base64.b64encode(raw[:200]).decode())
    desk.site.settings.set("hospital_logo", base64.b64encode(raw).decode())   # with its Author text chunk
    stored = desk.site.settings.value("hospital_logo")
    assert b"jane@example.org" not in stored and b"Author" not in stored
    with Image.open(io.BytesIO(stored)) as im:
        assert im.size == (600, 200)
    assert desk.reports.ward_pdf().startswith(b"%PDF")
