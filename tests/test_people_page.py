"""The People page driven through its widgets, as an administrator would, and checked from the store."""
from __future__ import annotations

import pytest

from services.core.errors import PasswordChangeRequired, WrongPassword
from services.desk import open_desk
from tests.conftest import DEMO_PASSWORDS


def unlock(store, user: str, password: str, new_password: str | None = None):
    """A login to the store the page is on (a desk store file or a server store's URL), as the unlock screen does."""
    return open_desk(store, user, password, new_password=new_password)


@pytest.fixture
def page(qtbot, desks, owner):
    from ui.people_view import PeopleView
    from viewmodels.background import BackgroundRunner
    from viewmodels.people_vm import PeopleViewModel
    vm = PeopleViewModel(desks("admin"), BackgroundRunner(owner), owner)
    handed: list[tuple[str, str]] = []
    view = PeopleView(vm, ask_new=lambda parent: ("nurse3", "Nurse Three", "nurse"),
                      ask_role=lambda parent, user, role: "clinician",
                      show_password=lambda parent, user, pw: handed.append((user, pw)))
    qtbot.addWidget(view)
    view.resize(1280, 700)
    view.show()
    with qtbot.waitSignal(vm.model.modelReset, timeout=20_000):
        vm.refresh()
    return view, vm, handed, desks.store


def _click(qtbot, vm, button) -> None:
    """Click and wait for the change and the list read after it."""
    with qtbot.waitSignals([vm.changed, vm.model.modelReset], timeout=30_000, order="strict"):
        button.click()
    assert vm.status.endswith("done."), vm.status


def test_add_a_nurse_who_must_choose_her_password_then_deactivate_and_reactivate(qtbot, page):
    view, vm, handed, demo_store = page
    assert [vm.model.row(r)["username"] for r in range(vm.model.rowCount())] == \
        ["admin", "analyst.demo", "dr.demo", "nurse.demo"]
    assert not view.deactivate_button.isEnabled()   # nothing selected
    _click(qtbot, vm, view.add_button)
    user, otp = handed[-1]
    assert user == "nurse3"
    with pytest.raises(PasswordChangeRequired):
        unlock(demo_store, "nurse3", otp)
    unlock(demo_store, "nurse3", otp, new_password="nurse3-chosen").lock()
    qtbot.waitUntil(lambda: any(vm.model.row(r)["username"] == "nurse3" for r in range(vm.model.rowCount())))
    view.select("nurse3")
    assert view.deactivate_button.isEnabled() and not view.reactivate_button.isEnabled()
    _click(qtbot, vm, view.deactivate_button)
    with pytest.raises(WrongPassword):
        unlock(demo_store, "nurse3", "nurse3-chosen")
    view.select("nurse3")
    assert view.reactivate_button.isEnabled()
    _click(qtbot, vm, view.reactivate_button)
    assert handed[-1][0] == "nurse3"
    unlock(demo_store, "nurse3", handed[-1][1], new_password="nurse3-back-again").lock()


def test_role_change_and_new_password_from_the_page(qtbot, page):
    view, vm, handed, demo_store = page
    view.select("nurse.demo")
    _click(qtbot, vm, view.role_button)
    changed = unlock(demo_store, "nurse.demo", DEMO_PASSWORDS["nurse.demo"])
    assert changed.user.role.value == "clinician"
    changed.lock()
    view.select("nurse.demo")
    _click(qtbot, vm, view.reset_button)
    assert handed[-1][0] == "nurse.demo"
    with pytest.raises(WrongPassword):
        unlock(demo_store, "nurse.demo", DEMO_PASSWORDS["nurse.demo"])
    admin = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        assert admin.site.verify().ok
    finally:
        admin.lock()


def test_only_administrators_get_the_page(qtbot, desks, owner):
    from ui.main_window import Workspace
    from viewmodels.background import BackgroundRunner
    runner = BackgroundRunner(owner)
    for user, shown in (("admin", True), ("dr.demo", False), ("analyst.demo", False)):
        ws = Workspace(desks(user), runner)
        qtbot.addWidget(ws)
        titles = [ws.nav.item(i).text() for i in range(ws.nav.count())]
        assert ("People" in titles) is shown, (user, titles)
        ws.alerts_vm._timer.stop()
        qtbot.waitUntil(lambda: not runner.busy, timeout=20_000)   # its first reads finish before the session locks


def test_rotate_keys_from_the_page_closes_the_session_and_old_key_files_stop_working(qtbot, demo_store, owner, tmp_path,
                                                                                   monkeypatch):
    import shutil
    from services.store.database import DatabaseError, connect_raw
    from services.store.keyfile import KeyFile, key_file_path
    from ui.main_window import MainWindow
    from viewmodels.background import BackgroundRunner
    from viewmodels.session_vm import SessionViewModel
    from PySide6.QtCore import QSettings
    shutil.copy(key_file_path(demo_store), tmp_path / "old.keys")
    runner = BackgroundRunner(owner)
    vm = SessionViewModel(demo_store, runner, build_demo_if_missing=False, parent=owner)
    window = MainWindow(vm, runner, QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    with qtbot.waitSignal(vm.sessionChanged, timeout=20_000):
        vm.unlock("admin", DEMO_PASSWORDS["admin"])
    ws = window.workspace
    ws.alerts_vm._timer.stop()
    qtbot.waitUntil(lambda: not runner.busy, timeout=20_000)
    notices: list[str] = []
    vm.notice.disconnect()
    vm.notice.connect(notices.append)
    from PySide6.QtWidgets import QMessageBox
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question", lambda parent, title, text: asked.append(text) or
                        QMessageBox.StandardButton.Yes)
    with qtbot.waitSignal(vm.sessionChanged, timeout=20_000):
        ws.people_view.rotate_button.click()   # asks first, then the session closes
    assert asked and "no earlier key file" in asked[0]
    qtbot.waitUntil(lambda: bool(notices) or bool(vm.error), timeout=60_000)
    assert notices and "Keys rotated" in notices[0], (notices, vm.error)
    old = KeyFile.load(tmp_path / "old.keys").data_key("user:nurse.demo", DEMO_PASSWORDS["nurse.demo"].encode())
    with pytest.raises(DatabaseError):
        connect_raw(demo_store, old).execute("SELECT count(*) FROM patients").fetchone()
    for user in ("admin", "nurse.demo"):
        unlock(demo_store, user, DEMO_PASSWORDS[user]).lock()


def test_admin_menu_and_backup_from_the_file_menu(qtbot, demo_store, owner, tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QFileDialog, QMessageBox
    from ui.main_window import MainWindow
    from viewmodels.background import BackgroundRunner
    from viewmodels.session_vm import SessionViewModel
    runner = BackgroundRunner(owner)
    vm = SessionViewModel(demo_store, runner, build_demo_if_missing=False, parent=owner)
    window = MainWindow(vm, runner, QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    assert not window.admin_menu.menuAction().isVisible() and not window.backup_action.isEnabled()
    with qtbot.waitSignal(vm.sessionChanged, timeout=20_000):
        vm.unlock("admin", DEMO_PASSWORDS["admin"])
    ws = window.workspace
    ws.alerts_vm._timer.stop()
    assert window.admin_menu.menuAction().isVisible() and window.backup_action.isEnabled()
    people = next(a for a in window.admin_menu.actions() if a.text() == "&People")
    people.trigger()
    assert ws.nav.currentItem().text() == "People"
    for action, page in ((window.import_action, "Imports"), (window.restore_action, "Backups")):   # File menu
        assert action.isEnabled()
        action.trigger()
        assert ws.nav.currentItem().text() == page
    for title in ("Settings", "Backups", "Imports"):
        next(a for a in window.admin_menu.actions() if a.text() == f"&{title}").trigger()
        assert ws.nav.currentItem().text() == title
    target = tmp_path / "usb" / "monday.db"
    target.parent.mkdir()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "WardLens store (*.db)"))
    told: list[str] = []
    monkeypatch.setattr(QMessageBox, "information", lambda parent, title, text: told.append(text))
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text: told.append(text))
    window.backup_action.trigger()
    qtbot.waitUntil(lambda: bool(told), timeout=60_000)
    assert "written and verified" in told[0] and target.exists() and (tmp_path / "usb" / "monday.db.keys").exists()
    qtbot.waitUntil(lambda: not runner.busy, timeout=20_000)
    vm.lock()
    nurse_vm = vm
    with qtbot.waitSignal(nurse_vm.sessionChanged, timeout=20_000):
        nurse_vm.unlock("nurse.demo", DEMO_PASSWORDS["nurse.demo"])
    window.workspace.alerts_vm._timer.stop()
    assert not window.admin_menu.menuAction().isVisible() and not window.backup_action.isEnabled()
    assert not window.import_action.isEnabled() and not window.restore_action.isEnabled()
    assert not window.workspace.go_to("Settings") and not window.workspace.go_to("Imports")
    qtbot.waitUntil(lambda: not runner.busy, timeout=20_000)
    vm.lock()


def test_a_new_recovery_key_from_the_page_is_shown_once_and_replaces_the_old_one(qtbot, desks, owner):
    from services.site.accounts import unlock_with_recovery
    demo_store = desks.store
    if isinstance(demo_store, str):
        pytest.skip("a server store has no recovery key: its DBA restores access (test_server_roles)")
    from ui.people_view import PeopleView
    from viewmodels.background import BackgroundRunner
    from viewmodels.people_vm import PeopleViewModel
    vm = PeopleViewModel(desks("admin"), BackgroundRunner(owner), owner)
    shown: list[str] = []
    asked: list[str] = []
    view = PeopleView(vm, show_recovery_key=lambda parent, key: shown.append(key),
                      confirm=lambda parent, text: asked.append(text) or True)
    qtbot.addWidget(view)
    view.show()
    for _ in range(2):
        with qtbot.waitSignal(vm.changed, timeout=30_000):
            view.recovery_button.click()
        assert vm.status == "New recovery key: done.", vm.status
    assert len(shown) == 2 and shown[0] != shown[1] and "stops working" in asked[0]
    with pytest.raises(WrongPassword):
        unlock_with_recovery(demo_store, shown[0])
    unlock_with_recovery(demo_store, shown[1]).lock()
    admin = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        assert any(e.action.startswith("recovery") for e in admin.site.audit_log(30))
    finally:
        admin.lock()
