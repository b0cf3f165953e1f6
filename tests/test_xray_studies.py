"""X-ray studies kept inside the store, and the X-ray page (real model from resources/models/xray)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from services.desk import open_desk
from services.core.errors import PermissionDenied
from services.imaging.xray_image import XrayImageError
from services.imaging.xray import NOT_A_CHEST_FILM
from services.imaging.studies import ImageRefused, XrayStudyService, overlay_rgba
from tests.conftest import shared_path

CLIN = ("dr.demo", "wardlens-clinician")


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_image_is_stored_inside_the_store_and_reopened(demo_store, tmp_path):
    original = shared_path("nih_cxr", "originals", "00000001_000.png")
    s = open_desk(demo_store, *CLIN)
    svc = s.imaging.studies
    before = set(tmp_path.rglob("*"))
    study = svc.add_study(1, original, identity_confirmed=True)  # a PNG names no patient: confirmed here
    assert set(tmp_path.rglob("*")) == before, "no loose image file is written"
    assert study.width == study.height >= 256 and not study.refused and len(study.findings) == 14
    assert "No Finding" not in {f for f, _p, _flag in study.findings}
    assert s.session.db.conn.execute("SELECT length(image) FROM xray_studies WHERE id = ?", (study.id,)).fetchone()[0] \
        == original.stat().st_size
    opened = svc.open(study.id)
    assert {k: v for k, v in opened.result.probabilities.items() if k != "No Finding"} == \
        pytest.approx(dict((f, p) for f, p, _ in study.findings), abs=1e-5)
    plain, heat, findings = svc.report_images(study.id)
    assert plain.startswith(b"\x89PNG") and heat.startswith(b"\x89PNG") and findings
    assert [x.id for x in svc.studies(1)] == [study.id]
    assert b"IHDR" not in demo_store.read_bytes(), "the image bytes are encrypted at rest"
    s.lock()


def test_bad_files_are_refused_and_nothing_is_stored(demo_store, tmp_path):
    s = open_desk(demo_store, *CLIN)
    svc = s.imaging.studies
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(XrayImageError):
        svc.add_study(1, bad)
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(_png(np.zeros((64, 64), np.uint8))[:60])
    with pytest.raises(XrayImageError):
        svc.add_study(1, trunc)
    assert s.session.db.conn.execute("SELECT count(*) FROM xray_studies").fetchone()[0] == 0
    s.lock()


def test_refused_image_is_not_stored_but_audited_and_told_in_plain_words(demo_store, tmp_path):
    s = open_desk(demo_store, *CLIN)
    svc = s.imaging.studies
    blank = tmp_path / "blank.png"
    blank.write_bytes(_png(np.full((256, 256), 255, np.uint8)))
    with pytest.raises(ImageRefused) as info:
        svc.add_study(1, blank)
    message = str(info.value)
    assert message.startswith(NOT_A_CHEST_FILM) and "so no findings are shown" in message
    assert "blank.png was not added to the patient's record" in message
    assert "distance" not in message and ">" not in message and "limit" not in message  # no jargon in the sentence
    assert info.value.result.ood_details and all("limit" in d for d in info.value.result.ood_details)
    assert info.value.opened.study is None and info.value.opened.image.pixels.shape == (256, 256)
    assert s.session.db.conn.execute("SELECT count(*) FROM xray_studies").fetchone()[0] == 0
    assert svc.studies(1) == []
    action, entity, detail = s.session.db.conn.execute(
        "SELECT action, entity, detail FROM audit_log ORDER BY id DESC LIMIT 1 OFFSET 1").fetchone()  # then the read
    assert (action, entity) == ("xray_refused", "patient") and "image not stored" in detail and "limit" in detail
    assert "blank.png" not in detail   # a file name may name the patient: never in the audit log, readable by all
    s.lock()


def test_nurse_cannot_add_images(demo_store, tmp_path):
    s = open_desk(demo_store, "nurse.demo", "wardlens-nurse")
    p = tmp_path / "x.png"
    p.write_bytes(_png(np.zeros((64, 64), np.uint8)))
    with pytest.raises(PermissionDenied):
        s.imaging.studies.add_study(1, p)
    s.lock()


def test_overlay_marks_only_where_the_map_is_hot():
    gray = np.full((4, 4), 100.0, np.float32)
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0] = 1.0
    rgba = overlay_rgba(gray, heat)
    assert tuple(rgba[3, 3, :3]) == (100, 100, 100) and rgba[0, 0, 0] > 100 and rgba[0, 0, 2] < 100


def test_xray_page_offscreen(qtbot, owner, qt_settings, demo_store):
    original = shared_path("nih_cxr", "originals", "00027426_000.png")
    from ui.xray_view import XrayView
    from viewmodels.background import BackgroundRunner
    from viewmodels.xray_vm import XrayViewModel
    s = open_desk(demo_store, *CLIN)
    vm = XrayViewModel(s, BackgroundRunner(owner), owner)
    view = XrayView(vm, lambda: "card", ask=lambda label, check: True)
    qtbot.addWidget(view)
    vm.set_patient(1, "Test patient")
    with qtbot.waitSignal(vm.imageChanged, timeout=30_000):
        vm.add_file(str(original))
    assert view.list.count() == 1 and view.finding.count() == 14
    assert view.image.pixmap() is not None and not view.image.pixmap().isNull()
    with qtbot.waitSignal(vm.imageChanged, timeout=10_000):
        view.heat.setChecked(False)
    s.lock()


def _legacy_refused_study(s, patient_id: int = 1) -> int:
    """A refused image as earlier versions stored it (with technical reasons), before refusals were dropped."""
    results = {"probabilities": {}, "flags": {}, "thresholds": {}, "ood": True,
               "ood_reasons": ["unlike the chest radiographs the model was trained on (distance 2148 > 1131)"],
               "ood_distance": 2148.0}
    with s.session.db.transaction() as c:
        cur = c.execute("INSERT INTO xray_studies (patient_id, taken_at, source_name, format, image, width, height, "
                        "results, model_version, created_by, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                        (patient_id, "2026-01-02 10:00:00", "holiday.png", "png", _png(np.zeros((64, 64), np.uint8)),
                         64, 64, __import__("json").dumps(results), "old", "dr.demo", "2026-01-02 10:00:00"))
        return int(cur.lastrowid)


def test_xray_page_refusal_is_plain_and_nothing_is_listed(qtbot, owner, qt_settings, demo_store, tmp_path):
    from ui.xray_view import XrayView
    from viewmodels.background import BackgroundRunner
    from viewmodels.xray_vm import XrayViewModel
    s = open_desk(demo_store, *CLIN)
    vm = XrayViewModel(s, BackgroundRunner(owner), owner)
    view = XrayView(vm, lambda: "card", ask=lambda label, check: True)
    qtbot.addWidget(view)
    view.show()
    vm.set_patient(1, "Test patient")
    qtbot.waitUntil(lambda: "No X-ray studies" in vm.status, timeout=10_000)
    blank = tmp_path / "blank.png"
    blank.write_bytes(_png(np.full((256, 256), 255, np.uint8)))
    with qtbot.waitSignal(vm.imageChanged, timeout=30_000):
        vm.add_file(str(blank))
    assert vm.status == "blank.png was not added to the patient's record."
    assert view.refusal.isVisible() and view.refusal.text().startswith(NOT_A_CHEST_FILM)
    assert "limit" not in view.refusal.text() and "limit" in view.refusal.toolTip()
    assert "limit" in view.status.toolTip() and "limit" not in view.status.text()
    assert view.list.count() == 0 and vm.opened.study is None
    assert not view.heat.isVisible() and not view.chart.isVisible()  # no heat map, no findings chart
    assert view.image.pixmap() is not None and not view.image.pixmap().isNull()  # the refused picture is shown
    assert s.session.db.conn.execute("SELECT count(*) FROM xray_studies").fetchone()[0] == 0

    junk = tmp_path / "letter.pdf"   # then a file that is no image: its own message, the refused film gone with it
    junk.write_bytes(b"%PDF-1.4\n" + b"x" * 200)
    vm.add_file(str(junk))
    qtbot.waitUntil(lambda: "letter.pdf" in vm.status and not vm.status.startswith("Reading"), timeout=10_000)
    assert vm.opened is None and not view.refusal.isVisible() and "blank.png" not in view.status.text()

    with qtbot.waitSignal(vm.imageChanged, timeout=30_000):  # a real film afterwards: listed, banner gone
        vm.add_file(str(shared_path("nih_cxr", "originals", "00000001_000.png")))
    qtbot.waitUntil(lambda: view.list.count() == 1 and not view.refusal.isVisible(), timeout=10_000)
    assert view.heat.isVisible() and view.chart.isVisible() and view.list.currentRow() == 0
    assert vm.status.startswith("00000001_000.png: ") and "refused" not in vm.status and view.status.toolTip() == ""
    s.lock()


def test_a_refused_study_kept_by_an_earlier_version_is_marked_refused(qtbot, owner, qt_settings, demo_store):
    from ui.xray_view import XrayView
    from viewmodels.background import BackgroundRunner
    from viewmodels.xray_vm import XrayViewModel, study_verdict
    s = open_desk(demo_store, *CLIN)
    sid = _legacy_refused_study(s)
    study = s.imaging.studies.study(sid)
    assert study.refused and study_verdict(study) == "Refused: not a chest X-ray"
    vm = XrayViewModel(s, BackgroundRunner(owner), owner)
    view = XrayView(vm, lambda: "card", ask=lambda label, check: True)
    qtbot.addWidget(view)
    view.show()
    with qtbot.waitSignal(vm.imageChanged, timeout=30_000):
        vm.set_patient(1, "Test patient")
    item = view.list.item(0)
    assert "Refused: not a chest X-ray" in item.text() and item.font().italic() and item.toolTip()
    assert item.foreground().color().name() == "#a4161a"
    assert view.refusal.isVisible() and view.refusal.text().startswith(NOT_A_CHEST_FILM)
    assert vm.status == "holiday.png: refused when it was added; it has no findings."
    s.lock()


def test_the_viewer_zooms_windows_a_dicom_and_shows_the_earlier_film_beside(qtbot, owner, qt_settings, demo_store,
                                                                            tmp_path):
    import pydicom
    from ui.xray_view import XrayView
    from viewmodels.background import BackgroundRunner
    from viewmodels.xray_vm import XrayViewModel
    ds = pydicom.dcmread(shared_path("dicom", "rsna_pneumonia_example.dcm"))
    ds.WindowCenter, ds.WindowWidth = 120, 160   # the file's own window
    windowed_file = tmp_path / "windowed.dcm"
    ds.save_as(windowed_file)
    s = open_desk(demo_store, *CLIN)
    runner = BackgroundRunner(owner)
    vm = XrayViewModel(s, runner, owner)
    view = XrayView(vm, lambda: "card", ask=lambda label, check: True)
    qtbot.addWidget(view)
    view.resize(1280, 800)
    view.show()
    vm.set_patient(1, "Test patient")
    with qtbot.waitSignal(vm.imageChanged, timeout=30_000):
        vm.add_file(str(shared_path("nih_cxr", "originals", "00000001_000.png")))   # the earlier film
    with qtbot.waitSignals([vm.windowChanged, vm.imageChanged], timeout=30_000,
                           check_params_cbs=[lambda w: w is not None, None], order="strict"):
        vm.add_file(str(windowed_file))
    qtbot.waitUntil(lambda: view.window_row.isVisible(), timeout=10_000)
    assert (view.centre.value(), view.width.value()) == (120, 160)   # the file's window first
    first = view.image.pixmap().toImage()
    assert first.size().width() == ds.Columns
    # zoom in; a new rendering of the same film keeps the zoom
    view.image.view.zoom_by(2.0)
    assert view.image.zoom == pytest.approx(2.0, rel=0.01)
    view.centre.setValue(40)
    view.width.setValue(60)
    with qtbot.waitSignal(vm.imageChanged, timeout=10_000):
        view._window_typed()
    assert view.image.pixmap().toImage() != first and view.image.zoom == pytest.approx(2.0, rel=0.1)
    with qtbot.waitSignal(vm.imageChanged, timeout=10_000):
        view.file_window.click()
    assert view.centre.value() == 120 and view.image.pixmap().toImage() == first
    view.image.view.fit()
    assert view.image.zoom == pytest.approx(1.0)
    # the patient's earlier film beside this one
    with qtbot.waitSignal(vm.comparisonChanged, timeout=30_000, check_params_cb=lambda c: c and c[0] is not None):
        view.compare.setChecked(True)
    assert view.earlier.isVisible() and "Earlier film: 00000001_000.png" in view.earlier_label.text()
    assert view.earlier_image.pixmap() is not None
    # a PNG has no window to set
    view.list.setCurrentRow(1)
    qtbot.waitUntil(lambda: not view.window_row.isVisible(), timeout=10_000)
    runner.cancel_all()   # no worker may be inside the store when it closes
    runner.wait_idle()
    s.lock()


def test_a_cd_from_another_hospital_is_read_as_its_list_of_images(qtbot, owner, qt_settings, demo_store, tmp_path):
    """A DICOMDIR: the user picks the films; a file the index names outside the medium, or missing, is never offered;
    each picked film goes through the usual checks."""
    import shutil
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.fileset import FileSet
    from services.imaging.dicomdir import is_dicomdir, read_dicomdir
    from ui.xray_view import XrayView
    from viewmodels.background import BackgroundRunner
    from viewmodels.xray_vm import XrayViewModel
    medium = tmp_path / "cd"
    fs = FileSet()
    for source in (shared_path("dicom", "rsna_pneumonia_example.dcm"), get_testdata_file("CT_small.dcm")):
        ds = pydicom.dcmread(source)
        ds.StudyID = ds.get("StudyID") or "1"   # a DICOMDIR's STUDY record needs one (PS3.3 F.5)
        ds.SeriesNumber = ds.get("SeriesNumber") or 1
        ds.InstanceNumber = ds.get("InstanceNumber") or 1
        fs.add(ds)
    fs.write(medium)
    entries = read_dicomdir(medium)
    assert is_dicomdir(medium) and is_dicomdir(medium / "DICOMDIR") and len(entries) == 2
    assert entries[0].radiograph and not entries[1].radiograph   # the radiograph first
    missing = entries[1].path
    missing.unlink()
    assert [e.path for e in read_dicomdir(medium)] == [entries[0].path]
    # an index crafted to name a file beside the medium, not on it
    shutil.copy(entries[0].path, tmp_path / "outside.dcm")
    index = pydicom.dcmread(medium / "DICOMDIR")
    for record in index.DirectoryRecordSequence:
        if "ReferencedFileID" in record and record.DirectoryRecordType == "IMAGE":
            record.ReferencedFileID = ["..", "outside.dcm"]
    crafted = tmp_path / "crafted"
    crafted.mkdir()
    index.save_as(crafted / "DICOMDIR")
    try:
        assert all(e.path.is_relative_to(crafted) for e in read_dicomdir(crafted))
    except Exception as exc:   # pydicom itself may refuse the index: then nothing is offered either
        assert "DICOMDIR" in str(exc)
    s = open_desk(demo_store, *CLIN)
    runner = BackgroundRunner(owner)
    vm = XrayViewModel(s, runner, owner)
    offered = []
    view = XrayView(vm, lambda: "card", ask=lambda label, check: True,
                    choose=lambda found: offered.extend(found) or [str(found[0].path)])
    qtbot.addWidget(view)
    vm.set_patient(1, "Test patient")
    qtbot.waitUntil(lambda: "X-ray studies" in vm.status or "studies for" in vm.status, timeout=20_000)
    with qtbot.waitSignal(vm.studiesChanged, timeout=30_000, check_params_cb=lambda st: len(st) == 1):
        vm.add_file(str(medium / "DICOMDIR"))
    assert [e.path for e in offered] == [entries[0].path]
    runner.cancel_all()   # no worker may be inside the store when it closes
    runner.wait_idle()
    s.lock()


def test_films_picked_later_join_the_line_and_the_largest_films_still_open(owner, demo_store):
    from services.imaging.xray_image import _check_pixels
    from viewmodels.background import BackgroundRunner
    from viewmodels.xray_vm import XrayViewModel
    _check_pixels(4600 * 4600, "big.dcm", "a 16-bit film", 1, 2)   # as before window/level: not refused
    s = open_desk(demo_store, *CLIN)
    runner = BackgroundRunner(owner)
    vm = XrayViewModel(s, runner, owner)
    vm._queue, vm._adding = ["/media/cd/IMG2"], True
    vm.add_files([])   # a cancelled second pick keeps the films still waiting
    assert vm._queue == ["/media/cd/IMG2"]
    runner.cancel_all()   # no worker may be inside the store when it closes
    runner.wait_idle()
    s.lock()
