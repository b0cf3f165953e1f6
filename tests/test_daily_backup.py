"""The daily automatic backup: made at the first unlock of the day by any role, verified, listed, pruned by the site's
retention, never touching files it did not name (services.site.daily_backup)."""
from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest

from services.desk import open_desk
from services.site.daily_backup import retention, run_daily
from services.site.backup import check_backup
from services.store.keyfile import key_file_path
from tests.conftest import DEMO_PASSWORDS
from tests.security.conftest import as_user, cli

TODAY = dt.date(2026, 12, 5)


def test_retention_keeps_the_newest_days_and_the_newest_of_each_recent_month():
    days = [dt.date(2026, 10, 1) + dt.timedelta(days=i) for i in range(66)]   # 1 Oct .. 5 Dec
    kept = retention(days, keep_daily=7, keep_monthly=2)
    assert {d for d, why in kept.items() if why == "daily"} == set(days[-7:])
    # the newest of each of the two newest months (5 Dec, 30 Nov) are daily ones already
    assert {d for d, why in kept.items() if why == "monthly"} == set()
    assert dt.date(2026, 10, 31) not in kept and len(kept) == 7
    assert retention(days, 7, 3)[dt.date(2026, 10, 31)] == "monthly"
    assert retention(days, 1, 3) == {dt.date(2026, 12, 5): "daily", dt.date(2026, 11, 30): "monthly",
                                     dt.date(2026, 10, 31): "monthly"}
    assert retention([], 7, 12) == {}


def test_a_nurse_makes_the_daily_backup_once_and_old_ones_go_by_retention(demo_store):
    desk = open_desk(demo_store, "nurse.demo", DEMO_PASSWORDS["nurse.demo"])
    try:
        first = run_daily(desk.session, TODAY)
        assert first.made == demo_store.parent / f"{demo_store.stem}-backups" / f"{demo_store.stem}-2026-12-05.db"
        assert check_backup(first.made, "nurse.demo", DEMO_PASSWORDS["nurse.demo"]) is not None   # verifies
        assert (first.made.stat().st_mode & 0o777) == 0o600
        assert run_daily(desk.session, TODAY).made is None                      # once a day
        folder = first.folder
        # ten older daily backups (copies of today's), plus files that are not WardLens's daily backups
        for i in range(1, 11):
            old = folder / f"{demo_store.stem}-{TODAY - dt.timedelta(days=i)}.db"
            shutil.copyfile(first.made, old)
            shutil.copyfile(key_file_path(first.made), key_file_path(old))
        (folder / "notes.txt").write_text("keep me")
        shutil.copyfile(first.made, folder / f"other-{TODAY - dt.timedelta(days=30)}.db")
        again = run_daily(desk.session, TODAY)
        assert again.made is None
        names = sorted(p.name for p in folder.iterdir())
        left = [n for n in names if n.startswith(demo_store.stem) and n.endswith(".db")]
        # 7 daily (5 Dec back to 29 Nov) + the newest of November's earlier ones is 29 Nov already: nothing more
        assert len(left) == 7 and f"{demo_store.stem}-2026-11-28.db" not in left
        assert "notes.txt" in names and f"other-{TODAY - dt.timedelta(days=30)}.db" in names
        assert not any(n.endswith(".keys") and n[:-5] not in names for n in names)   # keys went with their backups
        listed = desk.site.backups()
        assert [e.day for e in listed][:2] == [TODAY, TODAY - dt.timedelta(days=1)]
        assert listed[0].verified is True and listed[0].audit_rows and listed[0].kept_for == "daily"
        assert listed[1].verified is None   # copied by the test, not made by WardLens: not recorded as verified
        assert any(e.action == "backup" and "daily backup" in e.detail for e in desk.session.audit.recent(50))
    finally:
        desk.lock()


def test_the_site_chooses_the_folder_and_a_bad_one_is_refused(demo_store, tmp_path):
    from services.core.errors import ValidationError
    desk = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        with pytest.raises(ValidationError, match="full folder path"):
            desk.site.settings.set("backup_folder", "relative/folder")
        with pytest.raises(ValidationError, match="whole number"):
            desk.site.settings.set("backup_keep_daily", "0")
        desk.site.settings.set("backup_folder", str(tmp_path / "usb"))
        made = run_daily(desk.session, TODAY).made
        assert made is not None and made.parent == tmp_path / "usb"
    finally:
        desk.lock()


def test_the_first_unlock_in_the_window_makes_it(qtbot, owner, demo_store, monkeypatch):
    from viewmodels.background import BackgroundRunner
    from viewmodels.session_vm import SessionViewModel
    monkeypatch.setenv("WARDLENS_DAILY_BACKUP", "on")
    vm = SessionViewModel(demo_store, BackgroundRunner(owner), build_demo_if_missing=False, parent=owner)
    vm.prepare()
    with qtbot.waitSignal(vm.sessionChanged, timeout=10_000):
        vm.unlock("dr.demo", DEMO_PASSWORDS["dr.demo"])
    made = demo_store.parent / f"{demo_store.stem}-backups" / f"{demo_store.stem}-{dt.date.today().isoformat()}.db"
    qtbot.waitUntil(lambda: key_file_path(made).exists() and made.exists(), timeout=30_000)
    vm.lock()


def test_the_command_line_makes_and_lists_it(demo_store):
    env = as_user("admin", DEMO_PASSWORDS["admin"])
    r = cli("backup", "--db", str(demo_store), "--daily", env=env)
    assert r.returncode == 0 and "written and verified" in r.stdout, r.stderr
    r = cli("backup", "--db", str(demo_store), "--daily", env=env)
    assert r.returncode == 0 and "already made today" in r.stdout
    r = cli("backups", "--db", str(demo_store), "--json", env=env)
    rows = json.loads(r.stdout)
    assert r.returncode == 0 and len(rows) == 1 and rows[0]["verified_when_made"] is True
    assert cli("backup", "--db", str(demo_store), env=env).returncode == 2   # neither --output nor --daily


def test_backups_page_backs_up_lists_and_restores_from_the_list(qtbot, demo_store, owner, tmp_path, monkeypatch):
    """As an administrator: Admin → Backups, Back up now, the backup listed; a patient added afterwards; Restore
    selected… with her password: the session closes, the store is the backup again (the patient gone), the store as
    it was kept beside it, and she is logged in again."""
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QInputDialog
    from ui.main_window import MainWindow
    from viewmodels.background import BackgroundRunner
    from viewmodels.session_vm import SessionViewModel
    runner = BackgroundRunner(owner)
    vm = SessionViewModel(demo_store, runner, build_demo_if_missing=False, parent=owner)
    window = MainWindow(vm, runner, QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    with qtbot.waitSignal(vm.sessionChanged, timeout=20_000):
        vm.unlock("admin", DEMO_PASSWORDS["admin"])
    ws = window.workspace
    ws.alerts_vm._timer.stop()
    qtbot.waitUntil(lambda: not runner.busy, timeout=20_000)
    notices: list[str] = []
    vm.notice.disconnect()
    vm.notice.connect(notices.append)
    assert ws.go_to("Backups")
    page, bvm = ws.backups_view, ws.backups_vm
    qtbot.waitUntil(lambda: "No backups yet" in bvm.status, timeout=20_000)   # the page read the folder
    page.backup_button.click()
    qtbot.waitUntil(lambda: bvm.model.rowCount() == 1, timeout=30_000)
    assert "written and verified" in bvm.status or "1 backup in" in bvm.status, bvm.status
    window.grab().save(str(tmp_path / "backups.png"))
    pid = vm.session.records.patients.add_patient({"mrn": "AFTER-1", "family_name": "Later", "given_name": "Ann",
                                                   "birth_date": "1970-01-01", "sex": "Female"})
    assert pid
    page.table.selectRow(0)
    assert page.restore_button.isEnabled()
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: (DEMO_PASSWORDS["admin"], True))
    with qtbot.waitSignals([vm.sessionChanged, vm.sessionChanged], timeout=60_000):   # closed, then back
        page.restore_button.click()
    assert vm.session is not None and vm.session.user.username == "admin"
    assert notices and "Restored from" in notices[-1], notices
    assert vm.session.records.patients.search("AFTER-1") == []          # the store is the backup again
    assert list(demo_store.parent.glob("*before-restore*")) or "kept as" in notices[-1]
    vm.lock()


def test_a_wrong_password_at_restore_changes_nothing(qtbot, demo_store, owner, tmp_path):
    from viewmodels.background import BackgroundRunner
    from viewmodels.session_vm import SessionViewModel
    desk = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    made = run_daily(desk.session, TODAY).made
    desk.lock()
    vm = SessionViewModel(demo_store, BackgroundRunner(owner), build_demo_if_missing=False, parent=owner)
    vm.prepare()
    with qtbot.waitSignal(vm.sessionChanged, timeout=20_000):
        vm.unlock("admin", DEMO_PASSWORDS["admin"])
    with qtbot.waitSignal(vm.errorChanged, timeout=60_000):
        vm.restore_from_list(str(made), "not-the-password")
    assert vm.session is None and vm.error
    assert open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"]).records.patients.search("", 1)
