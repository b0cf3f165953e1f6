"""Wards and beds kept by an administrator: through the service, the `wards` command and the Wards page, checked
where it matters: the beds offered to staff, the capacity the forecast uses, and what the audit log records."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.core.errors import PermissionDenied, ValidationError
from tests.conftest import DEMO_PASSWORDS

ROOT = Path(__file__).resolve().parents[1]


def _bed(desk, ward: str, label: str):
    return next(b for b in desk.capacity.wards.find(ward).beds if b.label == label)


def _free_label(desk, ward: str) -> str:
    return next(b.label for b in desk.capacity.wards.find(ward).beds if not b.occupied)


def test_a_bed_out_of_service_is_offered_to_no_one_and_leaves_the_capacity(desks):
    admin = desks("admin")
    icu = admin.capacity.wards.find("ICU")
    label = _free_label(admin, "ICU")
    bed = _bed(admin, "ICU", label)
    before = dict(admin.capacity.census.wards())["ICU"]
    assert before == icu.in_service == len(icu.beds)
    admin.capacity.wards.set_out_of_service(bed.id, "deep clean")
    assert dict(admin.capacity.census.wards())["ICU"] == before - 1
    assert next(f for f in admin.capacity.census.forecasts() if f.ward == "ICU").capacity == before - 1
    assert bed.id not in {b.id for b in admin.capacity.beds.free_beds()}
    assert bed.id not in {b.id for b in admin.records.patients.free_beds(icu.id)}
    assert _bed(admin, "ICU", label).status == "out of service: deep clean"
    events = [e for e in admin.site.audit_log(50) if e.action == "bed_out_of_service"]
    assert events and "deep clean" in events[0].detail
    admin.capacity.wards.set_out_of_service(bed.id, None)
    assert dict(admin.capacity.census.wards())["ICU"] == before
    assert bed.id in {b.id for b in admin.capacity.beds.free_beds()}


def test_an_occupied_bed_stays_in_service_and_used_beds_are_never_deleted(desks):
    admin = desks("admin")
    occupied = next(b for b in admin.capacity.wards.find("Surgery").beds if b.occupied)
    with pytest.raises(ValidationError, match="move the patient first"):
        admin.capacity.wards.set_out_of_service(occupied.id, "broken")
    with pytest.raises(ValidationError, match="say why"):
        admin.capacity.wards.set_out_of_service(_bed(admin, "ICU", _free_label(admin, "ICU")).id, "  ")
    surgery = admin.capacity.wards.find("Surgery")
    with pytest.raises(ValidationError, match="never used"):
        admin.capacity.wards.set_beds(surgery.id, len(surgery.beds) - 1)
    assert len(admin.capacity.wards.find("Surgery").beds) == len(surgery.beds)   # nothing half-done


def test_add_rename_and_size_a_ward(desks):
    admin = desks("admin")
    wid = admin.capacity.wards.add_ward("Day Unit", "surgical", 4)
    ward = admin.capacity.wards.ward(wid)
    assert [b.label for b in ward.beds] == ["DU-1", "DU-2", "DU-3", "DU-4"]
    with pytest.raises(ValidationError, match="already a ward"):
        admin.capacity.wards.add_ward("day unit", "surgical", 2)
    with pytest.raises(ValidationError):
        admin.capacity.wards.add_ward("Ward Z", "spa", 2)
    assert admin.capacity.wards.set_beds(wid, 6) == 2
    assert admin.capacity.wards.set_beds(wid, 3) == -3
    assert [b.label for b in admin.capacity.wards.ward(wid).beds] == ["DU-1", "DU-2", "DU-3"]
    admin.capacity.wards.rename_ward(wid, "Day Surgery")
    assert dict(admin.capacity.census.wards())["Day Surgery"] == 3
    assert "Day Surgery" in [f.ward for f in admin.capacity.census.forecasts()]


def test_only_administrators_change_wards(desks):
    nurse = desks("nurse.demo")
    assert nurse.capacity.wards.list()    # she sees them (the census does)
    with pytest.raises(PermissionDenied):
        nurse.capacity.wards.add_ward("Ward Z", "medical", 2)
    with pytest.raises(PermissionDenied):
        nurse.capacity.wards.set_out_of_service(1, "broken")


def test_the_wards_command(demo_store):
    env = {**os.environ, "WARDLENS_USER": "admin", "WARDLENS_PASSWORD": DEMO_PASSWORDS["admin"]}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "main.py"), "wards", *args, "--db", str(demo_store)],
                              env=env, capture_output=True, text=True, timeout=120)
    assert run("add", "Day Unit", "--type", "surgical", "--beds", "5").returncode == 0
    assert run("bed-out", "day unit", "DU-2", "--reason", "broken hoist").returncode == 0
    bad = run("bed-out", "Day Unit", "DU-99", "--reason", "x")
    assert bad.returncode != 0 and "no bed" in bad.stderr
    import json
    listed = {w["ward"]: w for w in json.loads(run("list", "--json").stdout)}
    assert listed["Day Unit"]["in_service"] == 4
    assert listed["Day Unit"]["out_of_service"] == [{"bed": "DU-2", "reason": "broken hoist"}]
    nurse = subprocess.run([sys.executable, str(ROOT / "main.py"), "wards", "set-beds", "ICU", "2", "--db",
                            str(demo_store)], env={**env, "WARDLENS_USER": "nurse.demo",
                                                   "WARDLENS_PASSWORD": DEMO_PASSWORDS["nurse.demo"]},
                           capture_output=True, text=True, timeout=120)
    assert nurse.returncode != 0 and "may not" in nurse.stderr


@pytest.fixture
def page(qtbot, desks, owner):
    from ui.wards_view import WardsView
    from viewmodels.background import BackgroundRunner
    from viewmodels.wards_vm import WardsViewModel
    vm = WardsViewModel(desks("admin"), BackgroundRunner(owner), owner)
    asked = {"ward": ("Day Unit", "surgical", 3), "name": "Day Surgery", "beds": 5, "reason": "deep clean"}
    view = WardsView(vm, ask_ward=lambda parent, types: asked["ward"], ask_name=lambda parent, cur: asked["name"],
                     ask_beds=lambda parent, ward, cur: asked["beds"], ask_reason=lambda parent, bed: asked["reason"])
    qtbot.addWidget(view)
    view.resize(1280, 700)
    view.show()
    with qtbot.waitSignal(vm.wards.modelReset, timeout=20_000):
        vm.refresh()
    return view, vm


def _click(qtbot, vm, button) -> None:
    with qtbot.waitSignals([vm.changed, vm.wards.modelReset], timeout=30_000, order="strict"):
        button.click()
    assert vm.status.endswith("done."), vm.status


def test_the_wards_page(qtbot, page, desks):
    view, vm = page
    assert not view.rename_button.isEnabled() and not view.out_button.isEnabled()
    _click(qtbot, vm, view.add_button)
    view.select_ward("Day Unit")
    assert vm.ward.name == "Day Unit" and vm.beds.rowCount() == 3
    _click(qtbot, vm, view.beds_button)
    assert vm.ward.name == "Day Unit" and vm.beds.rowCount() == 5    # the selection survives the reload
    _click(qtbot, vm, view.rename_button)
    assert vm.ward.name == "Day Surgery"
    view.select_bed("DU-2")
    assert view.out_button.isEnabled() and not view.in_button.isEnabled()
    _click(qtbot, vm, view.out_button)
    view.select_bed("DU-2")
    assert view.in_button.isEnabled()
    row = [vm.beds.row(r) for r in range(vm.beds.rowCount())].index(next(b for b in vm.ward.beds if b.label == "DU-2"))
    assert vm.beds.display_rows()[row][-1] == "out of service: deep clean"
    assert dict(desks("admin").capacity.census.wards())["Day Surgery"] == 4
    view.select_ward("Surgery")
    view.select_bed(next(b.label for b in vm.ward.beds if b.occupied))
    assert not view.out_button.isEnabled()   # a patient is in it


def test_a_new_site_forecasts_its_first_ward_and_a_closed_ward_admits_no_one(empty_store, desks):
    """A fresh store (no stay finished yet) and a ward whose every bed is out of service: forecasts, staffing and
    the ward report work and invent no arrivals."""
    from services.desk import open_desk
    desk = open_desk(empty_store.path, "admin", "admin-password")
    try:
        wid = desk.capacity.wards.add_ward("Medicine C", "medical", 4)
        forecast = desk.capacity.census.forecasts()
        assert [f.ward for f in forecast] == ["Medicine C"]
        assert all(d.mean == 0 and d.arrivals == 0 for d in forecast[0].days)
        assert desk.reports.ward_pdf("Medicine C").startswith(b"%PDF")
        for bed in desk.capacity.wards.ward(wid).beds:
            desk.capacity.wards.set_out_of_service(bed.id, "refurbishment")
    finally:
        desk.lock()
    admin = desks("admin")
    ward_id = admin.capacity.wards.add_ward("Closed Unit", "medical", 2)
    for bed in admin.capacity.wards.ward(ward_id).beds:
        admin.capacity.wards.set_out_of_service(bed.id, "refurbishment")
    f = next(x for x in admin.capacity.census.forecasts() if x.ward == "Closed Unit")
    assert f.capacity == 0 and all(d.arrivals == 0 for d in f.days)
