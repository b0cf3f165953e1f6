"""The Imports page driven through its widgets: progress, the rejected rows with line and reason, their export, and a
cancel that imports nothing."""
from __future__ import annotations

import csv
import gzip

import pytest

from tests.security.conftest import ROOT


def _csv(tmp_path, fresh: int = 2, copies: int = 1):
    """Rows from the committed demo sample: `fresh` with new encounter numbers (imported), the rest as they are (already
    in the demo store: rejected), plus one row with a field missing."""
    with gzip.open(ROOT / "resources" / "demo" / "uci_sample.csv.gz", "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(5)]
    header = lines[0].rstrip("\n").split(",")
    at = header.index("encounter_id")
    rows = []
    for i, line in enumerate(lines[1:] * copies):
        cells = next(csv.reader([line]))
        if i < fresh:
            cells[at] = str(990_000_000 + i)
        rows.append(cells)
    path = tmp_path / "in.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
        f.write("1,2,3\n")   # a short row
    return path


@pytest.fixture
def page(qtbot, desks, owner, tmp_path):
    from ui.imports_view import ImportsView
    from viewmodels.background import BackgroundRunner
    from viewmodels.imports_vm import ImportsViewModel
    desk = desks("admin")
    vm = ImportsViewModel(desk, BackgroundRunner(owner), owner)
    chosen: list[str] = []
    view = ImportsView(vm, choose=lambda parent: chosen.pop(), save_as=lambda parent: str(tmp_path / "rejects.csv"))
    qtbot.addWidget(view)
    view.resize(1280, 800)
    view.show()
    return view, vm, desk, chosen


def test_import_shows_progress_rejects_with_reasons_and_exports_them(qtbot, page, tmp_path):
    view, vm, desk, chosen = page
    before = desk.records.counts()["encounters"]
    chosen.append(str(_csv(tmp_path)))
    with qtbot.waitSignal(vm.runningChanged, timeout=60_000, check_params_cb=lambda running: not running):
        view.choose_button.click()
    assert vm.report is not None and vm.report.counts["encounters"]["imported"] == 2, vm.status
    assert desk.records.counts()["encounters"] == before + 2
    reasons = [vm.model.row(r).reason for r in range(vm.model.rowCount())]
    assert len(reasons) == 3 and sum("already in the store" in r for r in reasons) == 2
    assert any("expected" in r and "fields" in r for r in reasons)
    assert "2 encounters imported" in view.status.text() and "3 rejected" in view.status.text()
    assert {vm.model.row(r).file for r in range(vm.model.rowCount())} == {"in.csv"}
    assert view.export_button.isEnabled()
    view.export_button.click()
    qtbot.waitUntil(lambda: (tmp_path / "rejects.csv").exists(), timeout=20_000)
    got = list(csv.DictReader((tmp_path / "rejects.csv").open(encoding="utf-8")))
    assert [r["where"] for r in got] == [vm.model.row(r).where for r in range(vm.model.rowCount())]
    assert len(got) == 3 and all(r["where"].startswith("line ") and r["file"] == "in.csv" for r in got)
    view.grab().save(str(tmp_path / "imports.png"))   # looked at by hand (docs/admin screenshots)


def test_cancel_imports_nothing(qtbot, page, tmp_path, monkeypatch):
    import services.records.importer as importer
    view, vm, desk, chosen = page
    monkeypatch.setattr(importer, "BATCH", 1)   # a cancel point after every row
    before = desk.records.counts()["encounters"]
    chosen.append(str(_csv(tmp_path, fresh=400, copies=100)))
    started = []
    vm.progressChanged.connect(lambda d, t: started.append(d) or vm.cancel())
    with qtbot.waitSignal(vm.runningChanged, timeout=60_000, check_params_cb=lambda running: not running):
        view.choose_button.click()
    assert started and vm.status == "Cancelled: nothing was imported."
    assert desk.records.counts()["encounters"] == before


def test_the_page_takes_files_from_the_watched_folder(qtbot, page, tmp_path):
    import os
    view, vm, desk, chosen = page
    drop = tmp_path / "drop"
    drop.mkdir()
    desk.site.settings.set("import_folder", str(drop))
    msg = "\r".join(["MSH|^~\\&|PAS|H|WL|H|202601011000||ADT^A01|1|P|2.5", "EVN|A01|202601011000",
                     "PID|1||W-77^^^H^MR||ROE^ANN||19600101|F", "PV1|1|I|||||||||||||||||VW1"]) + "\r"
    (drop / "a01.hl7").write_text(msg)
    old = (drop / "a01.hl7").stat().st_mtime - 60
    os.utime(drop / "a01.hl7", (old, old))
    before = desk.records.counts()["encounters"]
    with qtbot.waitSignal(vm.watchChanged, timeout=30_000):
        vm.watch_pass()
    assert "1 file imported" in vm.watch_status
    assert desk.records.counts()["encounters"] == before + 1 and (drop / "done" / "a01.hl7").exists()
    assert view.watch.text() == vm.watch_status


def test_a_csv_with_its_own_columns_is_mapped_saved_and_imported(qtbot, desks, owner, tmp_path):
    import json
    from ui.imports_view import ImportsView
    from ui.mapping_dialog import MappingDialog
    from viewmodels.background import BackgroundRunner
    from viewmodels.imports_vm import ImportsViewModel
    desk = desks("admin")
    export = tmp_path / "pas.csv"
    export.write_text("PATNO,SURNAME,DOB,SEX,ADMNO,ADMITTED,DISCHARGED,DX1,DX2\n"
                      "PX-1,Okafor,1950-02-03,F,A1,2025-01-01 10:00,2025-01-06 12:00,I50.9,N17.9\n", encoding="utf-8")
    saved = tmp_path / "pas-mapping.json"
    seen: dict = {}

    def map_columns(mvm, parent):
        dlg = MappingDialog(mvm, parent, save_as=lambda p: str(saved))
        qtbot.addWidget(dlg)
        qtbot.waitUntil(lambda: dlg.combos[("patients", "id")].count() == 10, timeout=10_000)
        assert not dlg.import_button.isEnabled()   # nothing mapped yet: the required fields are named
        assert "patients: no column for id" in dlg.problems.text()
        for key, column in {("patients", "id"): "PATNO", ("patients", "family"): "SURNAME",
                            ("patients", "birth_date"): "DOB", ("patients", "sex"): "SEX",
                            ("encounters", "id"): "ADMNO", ("encounters", "start"): "ADMITTED",
                            ("encounters", "end"): "DISCHARGED"}.items():
            dlg.combos[key].setCurrentText(column)
        for i in range(dlg.diagnoses.count()):
            if dlg.diagnoses.item(i).text() in ("DX1", "DX2"):
                dlg.diagnoses.item(i).setCheckState(Qt.CheckState.Checked)
        assert dlg.import_button.isEnabled() and dlg.problems.text() == "The mapping is complete."
        with qtbot.waitSignal(mvm.saved, timeout=10_000):
            dlg.save_button.click()
        dlg.resize(720, 640)
        dlg.grab().save(str(tmp_path / "mapping.png"))   # looked at by hand
        seen["dialog"] = True
        return True
    from PySide6.QtCore import Qt
    vm = ImportsViewModel(desk, BackgroundRunner(owner), owner)
    view = ImportsView(vm, choose_csv=lambda parent: str(export), map_columns=map_columns)
    qtbot.addWidget(view)
    before = desk.records.counts()["encounters"]
    with qtbot.waitSignal(vm.runningChanged, timeout=60_000, check_params_cb=lambda running: not running):
        view.map_button.click()
    assert seen["dialog"] and vm.report is not None and vm.report.rejected_total == 0, vm.status
    assert desk.records.counts()["encounters"] == before + 1
    doc = json.loads(saved.read_text())
    assert doc["diagnoses"]["code"] == ["DX1", "DX2"] and doc["encounters"]["patient"] == "PATNO"
    # the saved mapping is what the command line takes: the same file again through it changes nothing
    assert desk.records.import_files([export], mapping=saved).changed == 0
