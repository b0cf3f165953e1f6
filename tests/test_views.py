"""Real widgets offscreen: unlock, list, patient page, keyboard use, lock."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from ui.app import create_window


@pytest.fixture
def window(qtbot, qt_settings, demo_store):
    app = QApplication.instance()
    w = create_window(demo_store, app, build_demo=False)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    w.activateWindow()  # shortcuts (Esc, Ctrl+L) only fire in the active window
    qtbot.waitUntil(lambda: w.isActiveWindow() and w.unlock_view.demo_box.isVisible(), timeout=5000)
    yield w
    w.vm.lock()


def _login(qtbot, w, user="dr.demo", pw="wardlens-clinician"):
    qtbot.keyClicks(w.unlock_view.user, user)
    qtbot.keyClick(w.unlock_view.user, Qt.Key.Key_Return)  # moves to the password
    qtbot.keyClicks(w.unlock_view.password, pw)
    qtbot.keyClick(w.unlock_view.password, Qt.Key.Key_Return)


def test_unlock_screen_shows_demo_logins_and_wrong_password_message(qtbot, window):
    assert "dr.demo" in window.unlock_view.demo_box.text()
    _login(qtbot, window, pw="bad-password")
    qtbot.waitUntil(lambda: window.unlock_view.error.isVisible(), timeout=10_000)
    assert window.unlock_view.error.text() == "Wrong user name or password."
    assert window.unlock_view.password.text() == ""


def test_keyboard_flow_list_patient_back_and_lock(qtbot, window):
    _login(qtbot, window)
    qtbot.waitUntil(lambda: window.workspace is not None, timeout=10_000)
    ws = window.workspace
    qtbot.waitUntil(lambda: ws.list_vm.model.rowCount() > 0, timeout=10_000)
    assert "patients in the store" in ws.list_view.status.text()
    assert window.focusWidget() is ws.list_view.search
    found_by = ws.list_vm.model.headers.index("Found by")
    assert ws.list_view.table.isColumnHidden(found_by)   # empty without a search: the diagnosis gets the room
    qtbot.keyClicks(ws.list_view.search, "Cardiology")
    qtbot.waitUntil(lambda: "Cardiology" in ws.list_view.status.text(), timeout=10_000)
    assert not ws.list_view.table.isColumnHidden(found_by)
    qtbot.keyClick(ws.list_view.search, Qt.Key.Key_Return)  # to the table
    assert window.focusWidget() is ws.list_view.table
    ws.list_view.table.setCurrentIndex(ws.list_vm.model.index(0, 0))
    qtbot.keyClick(ws.list_view.table, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: ws.pages.currentWidget() is ws.patient_view and ws.patient_vm.patient is not None
                    and ws.patient_vm.selected_encounter is not None, timeout=10_000)
    assert ws.patient_view.diagnoses.rowCount() >= 1
    window.activateWindow()  # the offscreen platform drops activation when pages change
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None, timeout=5000)
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Escape)
    assert ws.pages.currentWidget() is ws.list_view
    window.lock_action.trigger()
    assert window.workspace is None and window.stack.currentWidget() is window.unlock_view
    assert window.vm.session is None


def test_analyst_list_has_no_names_and_no_edit_buttons(qtbot, window):
    _login(qtbot, window, "analyst.demo", "wardlens-analyst")
    qtbot.waitUntil(lambda: window.workspace is not None, timeout=10_000)
    ws = window.workspace
    qtbot.waitUntil(lambda: ws.list_vm.model.rowCount() > 0, timeout=10_000)
    names = {ws.list_vm.model.index(r, 1).data() for r in range(20)}
    assert all(n.startswith("Patient ") for n in names)
    assert not ws.list_view.new_button.isVisible()
    assert "name" not in ws.list_view.search.placeholderText().split(";")[0]  # says what it can search by


def test_window_state_is_remembered(qtbot, qt_settings, demo_store):
    app = QApplication.instance()
    w = create_window(demo_store, app, build_demo=False)
    qtbot.addWidget(w)  # deleted by qtbot on the GUI thread, never by a garbage collection elsewhere
    w.resize(720, 520)
    w.show()
    w.close()
    w2 = create_window(demo_store, app, build_demo=False)
    qtbot.addWidget(w2)
    assert (w2.width(), w2.height()) == (720, 520)


def test_admin_reads_the_audit_log_and_verifies_the_store(qtbot, window):
    _login(qtbot, window, "admin", "wardlens-admin")
    qtbot.waitUntil(lambda: window.workspace is not None, timeout=10_000)
    ws = window.workspace
    titles = [ws.nav.item(i).text() for i in range(ws.nav.count())]
    assert "Audit log" in titles
    ws.nav.setCurrentRow(titles.index("Audit log"))
    qtbot.waitUntil(lambda: ws.audit_vm.model.rowCount() > 0, timeout=10_000)
    ws.audit_view.filter.setText("login")
    assert all("login" in ws.audit_vm.model.row(r).action for r in range(ws.audit_vm.model.rowCount()))
    window.admin_menu.actions()[-1].trigger()   # Admin → Verify store: the Store page, checking
    assert ws.pages.currentWidget() is ws.store_view
    qtbot.waitUntil(lambda: "intact" in ws.store_view.status.text(), timeout=30_000)
    assert "Store verified" in ws.store_view.report.toPlainText()
    qtbot.waitUntil(lambda: "Schema version" in [l for l, _v in ws.store_vm.details], timeout=20_000)


def test_nurse_has_no_audit_page(qtbot, window):
    _login(qtbot, window, "nurse.demo", "wardlens-nurse")
    qtbot.waitUntil(lambda: window.workspace is not None, timeout=10_000)
    ws = window.workspace
    assert "Audit log" not in [ws.nav.item(i).text() for i in range(ws.nav.count())]


def test_clinician_exports_the_list_and_analyst_only_deidentified(qtbot, window, tmp_path):
    from pathlib import Path
    _login(qtbot, window)
    qtbot.waitUntil(lambda: window.workspace is not None, timeout=10_000)
    ws = window.workspace
    qtbot.waitUntil(lambda: ws.list_vm.model.rowCount() > 0, timeout=10_000)
    out = tmp_path / "patients.csv"
    with qtbot.waitSignal(ws.exporter.finished, timeout=20_000) as done:
        ws.exporter.export_model(ws.list_vm.model, str(out), "patient list")
    assert "exported" in done.args[0]
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("Patient no.,Name") and len(lines) == ws.list_vm.model.total + 1
    window.vm.lock()
    qtbot.waitUntil(lambda: window.workspace is None, timeout=5000)
    window.unlock_view.user.clear()
    _login(qtbot, window, "analyst.demo", "wardlens-analyst")
    qtbot.waitUntil(lambda: window.workspace is not None, timeout=10_000)
    ex = window.workspace.exporter
    assert not ex.can_export_tables and ex.can_export_deidentified
    with qtbot.waitSignal(ex.finished, timeout=20_000) as refused:
        ex.export_model(window.workspace.list_vm.model, str(tmp_path / "x.csv"), "patient list")
    assert "de-identified" in refused.args[0] and not Path(tmp_path / "x.csv").exists()
    deid = tmp_path / "deid.csv"
    with qtbot.waitSignal(ex.finished, timeout=20_000):
        ex.export_deidentified(str(deid))
    head = deid.read_text(encoding="utf-8").splitlines()[0]
    assert "patient_pseudonym" in head and "family_name" not in head


def test_dashboards_page_is_built_on_first_visit_and_fills_in(qtbot, window):
    _login(qtbot, window, "analyst.demo", "wardlens-analyst")
    qtbot.waitUntil(lambda: window.workspace is not None, timeout=10_000)
    ws = window.workspace
    assert ws.dashboards_page.view is None  # unlocking did not pay for 17 charts
    titles = [ws.nav.item(i).text() for i in range(ws.nav.count())]
    with qtbot.waitSignal(ws.dashboards_vm.refreshed, timeout=60_000):
        ws.nav.setCurrentRow(titles.index("Dashboards"))
    view = ws.dashboards_page.view
    assert view is not None and view.isVisible() and view.tabs.count() == 4
    assert len(view.ward.bars.opts["width"]) == len(ws.dashboards_vm.results["readmission"].by_ward.rows)
    ws.nav.setCurrentRow(0)
    ws.nav.setCurrentRow(titles.index("Dashboards"))
    assert ws.dashboards_page.view is view  # built once


def test_a_result_message_outlives_the_task_that_produced_it(qtbot, window):
    """The status bar's "working…" line is cleared when the task ends, but not a message shown by its
    result (an export's "rows exported to …" vanished in the same millisecond before)."""
    _login(qtbot, window)
    qtbot.waitUntil(lambda: window.workspace is not None, timeout=10_000)
    bar, runner = window.statusBar(), window.runner
    qtbot.waitUntil(lambda: not runner.busy, timeout=30_000)  # the jobs the workspace starts at unlock
    task = runner.run("Exporting", lambda p, c: 1,
                      on_success=lambda _: bar.showMessage("42 rows exported to x.csv", 15_000))
    qtbot.waitUntil(lambda: not task.running and not runner.busy, timeout=10_000)
    assert bar.currentMessage() == "42 rows exported to x.csv"
    task = runner.run("Quiet work", lambda p, c: 1)
    assert bar.currentMessage() == "Quiet work…"
    qtbot.waitUntil(lambda: not task.running and not runner.busy, timeout=10_000)
    assert bar.currentMessage() == ""  # its own line is cleared
    window.workspace.beds_vm.notice.emit("Patient P placed in Surgery S1-1")
    assert bar.currentMessage() == "Patient P placed in Surgery S1-1"


def test_every_page_fits_a_1280_pixel_screen(qtbot, window):
    """Hospital workstations often have 1280-px screens: no page may force the window wider."""
    _login(qtbot, window, "admin", "wardlens-admin")
    qtbot.waitUntil(lambda: window.workspace is not None and window.workspace.list_vm.model.rowCount() > 0,
                    timeout=10_000)
    ws = window.workspace
    ws.list_vm.activate_row(0)
    qtbot.waitUntil(lambda: ws.patient_vm.patient is not None, timeout=10_000)
    for row in range(ws.nav.count()):
        ws.nav.setCurrentRow(row)
        assert window.minimumSizeHint().width() <= 1280, ws.nav.item(row).text()


def test_model_card_dialog_reads_use_and_limits_first_and_closes(qtbot, window):
    """The patient page's model card: intended use and limits before the figures, figures in words with their
    intervals, a Close button, Esc closes it, and it fits a 1280x800 screen."""
    from PySide6.QtWidgets import QDialogButtonBox
    _login(qtbot, window)
    qtbot.waitUntil(lambda: window.workspace is not None and window.workspace.list_vm.model.rowCount() > 0,
                    timeout=10_000)
    ws = window.workspace
    ws.list_vm.activate_row(0)
    qtbot.waitUntil(lambda: ws.patient_vm.patient is not None, timeout=10_000)
    dialog = ws.patient_view.open_model_card()
    qtbot.waitUntil(dialog.isVisible, timeout=5000)
    text = dialog.view.toPlainText()
    assert text.index("What it is for") < text.index("Limits") < text.index("How well it did") < text.index("Details")
    assert "Ranking (ROC AUC): 0.6" in text and "95% interval" in text
    assert dialog.width() <= 1280 and dialog.height() <= 800
    assert dialog.buttons.button(QDialogButtonBox.StandardButton.Close) is not None
    qtbot.keyClick(dialog.view, Qt.Key.Key_Escape)
    assert not dialog.isVisible()
    again = ws.patient_view.open_model_card()
    qtbot.waitUntil(again.isVisible, timeout=5000)
    again.buttons.button(QDialogButtonBox.StandardButton.Close).click()
    assert not again.isVisible()


def test_labs_tab_says_when_a_patient_has_no_lab_results(qtbot, window):
    _login(qtbot, window)
    qtbot.waitUntil(lambda: window.workspace is not None, timeout=10_000)
    ws = window.workspace
    conn = ws.patient_vm.session.session.db.conn
    has_labs = "EXISTS (SELECT 1 FROM encounters e JOIN lab_results l ON l.encounter_id = e.id WHERE e.patient_id = p.id)"
    without = conn.execute(f"SELECT id FROM patients p WHERE NOT {has_labs} ORDER BY id LIMIT 1").fetchone()[0]
    with_labs = conn.execute(
        "SELECT e.patient_id FROM encounters e JOIN lab_results l ON l.encounter_id = e.id "
        "WHERE e.encounter_nbr = (SELECT max(encounter_nbr) FROM encounters WHERE patient_id = e.patient_id) "
        "ORDER BY e.patient_id LIMIT 1").fetchone()[0]
    view = ws.patient_view
    ws.open_patient(without)
    qtbot.waitUntil(lambda: ws.patient_vm.patient is not None and ws.patient_vm.patient.id == without
                    and ws.patient_vm.selected_encounter is not None, timeout=10_000)
    assert view.labs_page.currentWidget() is view.labs_empty
    assert view.labs_empty.text() == "No lab results recorded for this patient."
    ws.open_patient(with_labs)
    qtbot.waitUntil(lambda: ws.patient_vm.patient is not None and ws.patient_vm.patient.id == with_labs
                    and ws.patient_vm.selected_encounter is not None
                    and bool(ws.patient_vm.selected_encounter.labs), timeout=10_000)
    assert view.labs_page.currentWidget() is view.labs and view.labs.rowCount() > 0


def _nurse_on_page_at_1280(qtbot, window, title: str):
    """Log in as the nurse, make the window 1280x800 (a common ward screen) and show the page `title`."""
    _login(qtbot, window, "nurse.demo", "wardlens-nurse")
    qtbot.waitUntil(lambda: window.workspace is not None, timeout=10_000)
    ws = window.workspace
    window.resize(1280, 800)
    ws.nav.setCurrentRow([ws.nav.item(i).text() for i in range(ws.nav.count())].index(title))
    return ws


def test_worklist_fits_1280_pixels_with_factor_text_elided_and_in_tooltips(qtbot, window):
    ws = _nurse_on_page_at_1280(qtbot, window, "Discharges")
    qtbot.waitUntil(lambda: ws.worklist_vm.model.rowCount() > 0, timeout=30_000)
    qtbot.wait(200)  # let the columns resize to their contents
    t, model = ws.worklist_view.table, ws.worklist_vm.model
    last = model.columnCount() - 1
    widths = [t.columnWidth(c) for c in range(model.columnCount())]
    assert sum(widths) <= t.viewport().width() + 1 and not t.horizontalScrollBar().isVisible(), widths
    assert model.headerData(last, Qt.Orientation.Horizontal) == "Top factors" and widths[last] >= 120
    row = next(r for r in range(model.rowCount()) if model.row(r).risk.factors)
    tip = model.index(row, last).data(Qt.ItemDataRole.ToolTipRole)
    assert all(f.text in tip for f in model.row(row).risk.factors)


def test_beds_page_headers_readable_and_forecast_dates_do_not_overlap(qtbot, window):
    ws = _nurse_on_page_at_1280(qtbot, window, "Beds & Staff")
    qtbot.waitUntil(lambda: ws.beds_vm.snapshot is not None and ws.beds_view.waiting.rowCount() > 0, timeout=60_000)
    ws.beds_view.lower.setCurrentIndex(1)
    assert ws.beds_view.lower.tabText(1) == f"Waiting admissions ({ws.beds_view.waiting.rowCount()})"
    qtbot.wait(200)
    t = ws.beds_view.waiting
    fm = t.horizontalHeader().fontMetrics()
    for c in range(t.columnCount()):
        label = t.horizontalHeaderItem(c).text()
        assert t.columnWidth(c) >= fm.horizontalAdvance(label) + 8, (label, t.columnWidth(c))
    ws.beds_view.lower.setCurrentIndex(0)  # the census of the ward fits without a sideways scroll
    qtbot.waitUntil(lambda: not ws.beds_view.inpatients.horizontalScrollBar().isVisible(), timeout=2_000)
    chart = ws.beds_view.chart
    major = chart.tick_labels
    per_label = chart.getPlotItem().getViewBox().width() / len(ws.beds_vm.forecast.days) * chart.tick_step
    widest = max(chart.fontMetrics().horizontalAdvance(text) for _, text in major)
    assert "\n" not in "".join(text for _, text in major) and per_label >= widest, (per_label, widest, major)
    # the chart marks the peak the ward report prints (WardForecast.peak), and says it
    peak = ws.beds_vm.forecast.peak
    xs, ys = chart.peak.getData()
    assert list(xs) == [peak.day_index] and list(ys) == [peak.mean]
    assert ws.beds_vm.forecast.peak_text in chart.getPlotItem().titleLabel.text


def test_report_saved_and_printed_from_the_patient_page(qtbot, owner, qt_settings, demo_store, tmp_path):
    import shutil
    import subprocess
    from PySide6.QtPrintSupport import QPrinter
    from ui.patient_view import PatientView
    from tests.test_viewmodels import _unlocked
    from viewmodels.patients_vm import PatientViewModel
    vm, runner, session = _unlocked(qtbot, owner, demo_store)
    page = PatientViewModel(session, runner, owner)
    view = PatientView(page)
    qtbot.addWidget(view)
    with qtbot.waitSignal(page.loaded, timeout=20_000):
        page.load(1)
    out = tmp_path / "report.pdf"
    with qtbot.waitSignal(page.saved, timeout=30_000):
        page.save_report(str(out))
    assert out.read_bytes().startswith(b"%PDF") and not (tmp_path / "report.pdf.part").exists()
    assert shutil.which("pdftotext"), "poppler-utils (installer/system-deps.sh) reads the report back"
    text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True).stdout
    assert page.patient.mrn in text and "Dr Demo" in text
    printed = tmp_path / "printed.pdf"
    view._printer = QPrinter(QPrinter.PrinterMode.HighResolution)
    view._printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
    view._printer.setOutputFileName(str(printed))
    with qtbot.waitSignal(page.reportPagesReady, timeout=30_000) as pages:
        page.print_report(150)
    assert pages.args[0] and not pages.args[0][0].isNull()
    assert printed.exists() and printed.stat().st_size > 10_000
    prints = session.session.db.conn.execute("SELECT count(*) FROM audit_log WHERE action = 'print'").fetchone()[0]
    assert prints == 2


def test_unlocking_returns_to_the_open_patient_but_not_for_another_user(qtbot, window):
    _login(qtbot, window)
    qtbot.waitUntil(lambda: window.workspace is not None and window.workspace.list_vm.model.rowCount() > 0,
                    timeout=10_000)
    ws = window.workspace
    pid = ws.list_vm.model.row(3).patient_id
    ws.open_patient(pid)
    qtbot.waitUntil(lambda: ws.patient_vm.patient is not None and ws.patient_vm.patient.id == pid, timeout=10_000)
    window.lock_action.trigger()
    window.unlock_view.user.clear()
    _login(qtbot, window)   # the same clinician again: back on that patient's page
    qtbot.waitUntil(lambda: window.workspace is not None, timeout=10_000)
    ws = window.workspace
    qtbot.waitUntil(lambda: ws.patient_vm.patient is not None and ws.patient_vm.patient.id == pid, timeout=10_000)
    assert ws.pages.currentWidget() is ws.patient_view
    window.lock_action.trigger()
    window.unlock_view.user.clear()
    _login(qtbot, window, "nurse.demo", "wardlens-nurse")   # someone else: the list, no patient open
    qtbot.waitUntil(lambda: window.workspace is not None, timeout=10_000)
    assert window.workspace.patient_vm.patient is None and window.workspace.pages.currentWidget() is window.workspace.list_view
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=30_000)


def test_a_long_status_line_never_widens_the_window(qtbot, window):
    _login(qtbot, window, "admin", "wardlens-admin")
    qtbot.waitUntil(lambda: window.workspace is not None and window.workspace.list_vm.model.rowCount() > 0,
                    timeout=10_000)
    ws = window.workspace
    long = "Recalibrated candidate readmission-recal-9c4cd823c17d stored: " + "not better than the active model " * 12
    for row in range(ws.nav.count()):
        ws.nav.setCurrentRow(row)
        qtbot.wait(100)
        page = ws.pages.currentWidget()
        for vm in {getattr(page, "vm", None), ws.list_vm}:
            if vm is not None and hasattr(vm, "_set_status"):
                vm._set_status(long)
        window.statusBar().showMessage(long)
        qtbot.wait(50)
        assert window.minimumSizeHint().width() <= 1280, ws.nav.item(row).text()
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=60_000)
