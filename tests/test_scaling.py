"""200% display scaling: every page of a real window, in a fresh Qt process (the factor is read once, when
the QApplication starts), stays within a 1280 x 800 logical screen and really draws at twice the pixels."""
from __future__ import annotations

import pytest

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

_SCRIPT = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, sys.argv[2])
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, sys.argv[3])
    from ui.app import create_window
    w = create_window(sys.argv[1], app, build_demo=False)
    w.resize(1280, 800); w.show()

    def wait(pred, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end and not pred():
            app.processEvents(); time.sleep(0.02)
        return pred()

    out = {"dpr": w.devicePixelRatioF(), "pages": {}}
    out["unlock_width"] = w.minimumSizeHint().width()
    w.vm.unlock("admin", "wardlens-admin")
    ok = wait(lambda: w.workspace is not None and w.workspace.list_vm.model.rowCount() > 0, 30)
    ws = w.workspace
    ws.list_vm.activate_row(0)
    ok = ok and wait(lambda: ws.patient_vm.patient is not None, 30)
    for row in range(ws.nav.count()):
        ws.nav.setCurrentRow(row)
        wait(lambda: False, 0.3)
        out["pages"][ws.nav.item(row).text()] = w.minimumSizeHint().width()
    img = w.grab()
    out["grab"] = [img.width(), img.height()]
    # every dialog: the smallest it can be shown at must fit a 1280 x 800 logical screen
    from ui.model_card_dialog import ModelCardDialog
    from ui.patient_dialogs import EncounterDialog, PatientDialog
    dialogs = {"patient": PatientDialog(lambda v: {}, ws.patient_vm.patient, w),
               "encounter": EncounterDialog(lambda v: {}, ws.patient_vm.wards(), ws.patient_vm.free_beds,
                                            ws.patient_vm.selected_encounter, w),
               "model card": ModelCardDialog(ws.patient_vm.model_card(), w)}
    w._about()
    dialogs["about"] = w.about_dialog
    out["dialogs"] = {}
    for name, d in dialogs.items():
        d.show()
        wait(lambda: False, 0.2)
        hint = d.minimumSizeHint()
        out["dialogs"][name] = [hint.width(), hint.height()]
        d.close()
    out["ok"] = bool(ok)
    w.vm.lock()
    print("RESULT " + json.dumps(out))
""")


@pytest.mark.slow
def test_every_page_fits_at_200_percent_scaling(demo_store, tmp_path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QT_SCALE_FACTOR="2")
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(demo_store), str(ROOT), str(tmp_path / "settings")],
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    res = json.loads(line[len("RESULT "):])
    assert res["ok"], "workspace did not open at 200%"
    assert res["dpr"] == 2.0
    assert res["grab"][0] >= 2 * 1280  # drawn at device pixels, not upscaled later
    assert res["unlock_width"] <= 1280
    assert len(res["pages"]) >= 7, res["pages"]
    too_wide = {page: w for page, w in res["pages"].items() if w > 1280}
    assert not too_wide, f"pages wider than a 1280-px logical screen at 200%: {too_wide}"
    assert set(res["dialogs"]) == {"patient", "encounter", "model card", "about"}, res["dialogs"]
    too_big = {name: wh for name, wh in res["dialogs"].items() if wh[0] > 1280 or wh[1] > 800}
    assert not too_big, f"dialogs larger than a 1280 x 800 logical screen at 200%: {too_big}"
