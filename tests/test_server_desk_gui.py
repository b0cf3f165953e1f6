"""The desk's unlock screen with "Hospital server": real widgets offscreen against the real server demo store."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from tests.conftest import DEMO_PASSWORDS
from ui.app import create_window


@pytest.fixture
def window(qtbot, qt_settings, tmp_path, monkeypatch):
    monkeypatch.setenv("WARDLENS_STORE", str(tmp_path / "none" / "site.db"))
    w = create_window(tmp_path / "no-store-here.db", QApplication.instance(), build_demo=False)
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    yield w
    w.vm.lock()


def _fill(view, url: str) -> None:
    parts = urlsplit(url)
    view.server_choice.setChecked(True)
    view.server_box.host.setText(parts.hostname)
    view.server_box.port.setText(str(parts.port))
    view.server_box.database.setText(parts.path.lstrip("/"))
    view.server_box.ca_file.setText(parse_qs(parts.query)["sslrootcert"][0])


def test_a_desk_opens_the_hospital_server_and_remembers_its_address(qtbot, window, server_demo_store):
    view = window.unlock_view
    assert not view.server_box.isVisible()
    _fill(view, server_demo_store)
    assert view.server_box.isVisible() and not view.demo_box.isVisible()   # no demo logins for a server
    qtbot.keyClicks(view.user, "dr.demo")
    qtbot.keyClicks(view.password, DEMO_PASSWORDS["dr.demo"])
    qtbot.keyClick(view.password, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.workspace is not None or view.error.isVisible(), timeout=20_000)
    assert window.workspace is not None, view.error.text()
    ws = window.workspace
    qtbot.waitUntil(lambda: ws.list_vm.model.rowCount() > 0, timeout=20_000)
    assert window.vm.session.session.db.kind == "server"
    assert window.settings.value("server/database") == urlsplit(server_demo_store).path.lstrip("/")
    assert not any("password" in k for k in window.settings.allKeys())   # an address, never a password


def test_an_unreachable_server_is_said_in_plain_words_and_nothing_typed_is_lost(qtbot, window, tmp_path):
    view = window.unlock_view
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    _fill(view, f"postgresql://localhost:1/wardlens?sslmode=verify-full&sslrootcert={ca}")
    qtbot.keyClicks(view.user, "dr.demo")
    qtbot.keyClicks(view.password, "whatever-it-is")
    qtbot.keyClick(view.password, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: view.error.isVisible(), timeout=20_000)
    assert "cannot be reached" in view.error.text() or "did not prove" in view.error.text()
    assert view.user.text() == "dr.demo" and view.server_box.host.text() == "localhost"


def test_an_address_without_a_ca_file_is_refused_before_connecting(qtbot, window):
    view = window.unlock_view
    view.server_choice.setChecked(True)
    view.server_box.host.setText("wardlens.hospital.local")
    view.server_box.database.setText("wardlens")
    qtbot.keyClicks(view.user, "dr.demo")
    qtbot.keyClicks(view.password, "x")
    qtbot.keyClick(view.password, Qt.Key.Key_Return)
    assert "sslrootcert" in view.error.text() or "CA" in view.error.text()
    assert window.workspace is None


def test_pages_an_administrator_gets_on_each_store(qtbot, desks, owner):
    """Backups, restore, key rotation and the recovery key are a desk store's; on the server they are the DBA's."""
    from ui.main_window import Workspace
    from viewmodels.background import BackgroundRunner
    runner = BackgroundRunner(owner)
    desk = desks("admin")
    ws = Workspace(desk, runner)
    qtbot.addWidget(ws)
    titles = [ws.nav.item(i).text() for i in range(ws.nav.count())]
    server = isinstance(desks.store, str)
    assert ("Backups" in titles) is not server and "People" in titles and "Store" in titles
    assert ws.people_view.rotate_button.isVisibleTo(ws.people_view) is not server
    assert ws.people_view.recovery_button.isVisibleTo(ws.people_view) is not server
    with qtbot.waitSignal(ws.store_vm.detailsChanged, timeout=20_000):
        ws.store_vm.refresh()
    first = dict(ws.store_vm.details)
    assert ("Server" in first) is server and "Schema version" in first
    qtbot.waitUntil(lambda: not runner.busy, timeout=20_000)
    ws.changes_vm.stop()


def test_the_store_page_verifies_what_each_store_is(qtbot, desks, owner):
    from viewmodels.background import BackgroundRunner
    from viewmodels.store_vm import StoreViewModel
    runner = BackgroundRunner(owner)
    vm = StoreViewModel(desks("admin"), runner, owner)
    with qtbot.waitSignal(vm.reportChanged, timeout=60_000):
        vm.verify()
    server = isinstance(desks.store, str)
    assert vm.report[0].startswith("Store verified")
    assert ("server's guards" in vm.report[0]) is server and ("encryption" in vm.report[0]) is not server
    runner.wait_idle()
