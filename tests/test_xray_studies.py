"""X-ray studies kept inside the store, and the X-ray page (real model from resources/models/xray)."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from services.accounts import unlock
from services.errors import PermissionDenied
from services.xray_image import XrayImageError
from services.xray_studies import XrayStudyService, overlay_rgba
from tests.conftest import shared_path

CLIN = ("dr.demo", "wardlens-clinician")


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_image_is_stored_inside_the_store_and_reopened(demo_store, tmp_path):
    original = shared_path("nih_cxr", "originals", "00000001_000.png")
    s = unlock(demo_store, *CLIN)
    svc = XrayStudyService(s)
    before = set(tmp_path.rglob("*"))
    study = svc.add_study(1, original)
    assert set(tmp_path.rglob("*")) == before, "no loose image file is written"
    assert study.width == study.height >= 256 and not study.refused and len(study.findings) == 15
    assert s.db.conn.execute("SELECT length(image) FROM xray_studies WHERE id = ?", (study.id,)).fetchone()[0] \
        == original.stat().st_size
    opened = svc.open(study.id)
    assert opened.result.probabilities == pytest.approx(dict((f, p) for f, p, _ in study.findings), abs=1e-5)
    plain, heat, findings = svc.report_images(study.id)
    assert plain.startswith(b"\x89PNG") and heat.startswith(b"\x89PNG") and findings
    assert [x.id for x in svc.studies(1)] == [study.id]
    assert b"IHDR" not in demo_store.read_bytes(), "the image bytes are encrypted at rest"
    s.lock()


def test_bad_files_are_refused_and_nothing_is_stored(demo_store, tmp_path):
    s = unlock(demo_store, *CLIN)
    svc = XrayStudyService(s)
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(XrayImageError):
        svc.add_study(1, bad)
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(_png(np.zeros((64, 64), np.uint8))[:60])
    with pytest.raises(XrayImageError):
        svc.add_study(1, trunc)
    assert s.db.conn.execute("SELECT count(*) FROM xray_studies").fetchone()[0] == 0
    blank = tmp_path / "blank.png"
    blank.write_bytes(_png(np.full((256, 256), 255, np.uint8)))
    study = svc.add_study(1, blank)
    assert study.refused and study.refusal_reasons and study.findings == ()
    s.lock()


def test_nurse_cannot_add_images(demo_store, tmp_path):
    s = unlock(demo_store, "nurse.demo", "wardlens-nurse")
    p = tmp_path / "x.png"
    p.write_bytes(_png(np.zeros((64, 64), np.uint8)))
    with pytest.raises(PermissionDenied):
        XrayStudyService(s).add_study(1, p)
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
    s = unlock(demo_store, *CLIN)
    vm = XrayViewModel(s, BackgroundRunner(owner), owner)
    view = XrayView(vm, lambda: "card")
    qtbot.addWidget(view)
    vm.set_patient(1, "Test patient")
    with qtbot.waitSignal(vm.imageChanged, timeout=30_000):
        vm.add_file(str(original))
    assert view.list.count() == 1 and view.finding.count() == 14
    assert view.image.pixmap() is not None and not view.image.pixmap().isNull()
    with qtbot.waitSignal(vm.imageChanged, timeout=10_000):
        view.heat.setChecked(False)
    s.lock()
