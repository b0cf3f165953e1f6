"""The main window: unlock screen, or the workspace with navigation once a session is open."""
from __future__ import annotations

from PySide6.QtCore import QByteArray, QSettings, Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (QHBoxLayout, QVBoxLayout, QLabel, QListWidget, QListWidgetItem, QMainWindow, QMessageBox,
                               QFileDialog, QProgressBar, QPushButton, QStackedWidget, QWidget)

from viewmodels.session_vm import Desk
from ui.patient_dialogs import EncounterDialog, PatientDialog
from ui.patient_list_view import PatientListView
from ui.patient_view import PatientView
from ui.theme import icon
from ui.unlock_view import UnlockView
from ui.audit_view import AuditView
from ui.beds_view import BedsView
from ui.models_view import ModelsView
from ui.dashboards_view import DashboardsView
from ui.export_button import export_button
from ui.lazy_page import LazyPage
from ui.worklist_view import AlertBanner, WorklistView
from ui.xray_view import XrayView
from viewmodels.audit_vm import AuditViewModel
from viewmodels.background import BackgroundRunner
from viewmodels.changes_vm import StoreChangesViewModel
from viewmodels.beds_vm import BedsViewModel
from viewmodels.models_vm import ModelsViewModel
from viewmodels.dashboards_vm import DashboardsViewModel
from viewmodels.export_vm import TableExporter
from viewmodels.worklist_vm import AlertsViewModel, WorklistViewModel
from viewmodels.xray_vm import XrayViewModel
from viewmodels.people_vm import PeopleViewModel
from viewmodels.store_vm import StoreViewModel
from viewmodels.wards_vm import WardsViewModel
from viewmodels.backups_vm import BackupsViewModel
from viewmodels.settings_vm import SettingsViewModel
from viewmodels.imports_vm import ImportsViewModel
from viewmodels.admin_vm import AdminViewModel
from ui.people_view import PeopleView
from ui.store_view import StoreView
from ui.wards_view import WardsView
from ui.backups_view import BackupsView
from ui.settings_view import SettingsView
from ui.imports_view import ImportsView
from viewmodels.patients_vm import PatientListViewModel, PatientViewModel
from ui.model_card_dialog import ModelCardDialog
from viewmodels.about_vm import about_markdown
from viewmodels.session_vm import Permission, SessionViewModel


class Workspace(QWidget):
    """Navigation on the left, pages on the right; built per session and thrown away at lock."""

    def __init__(self, session: Desk, runner: BackgroundRunner, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session, self.user = session, session.user.username
        self.list_vm = PatientListViewModel(session, runner, self)
        self.patient_vm = PatientViewModel(session, runner, self)
        self.nav = QListWidget(objectName="NavList")
        self.nav.setAccessibleName("Navigation")
        self.nav.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.pages = QStackedWidget()
        self._models_loaded = False
        self.list_view = PatientListView(self.list_vm)
        self.patient_view = PatientView(self.patient_vm)
        self._add_page("Patients", "patients", self.list_view)
        self._add_page("Patient", "patient", self.patient_view)
        self.xray_vm = XrayViewModel(session, runner, self)
        self.xray_view = XrayView(self.xray_vm, lambda: self.patient_vm.assessments.model_card_markdown("xray"))
        self._add_page("X-ray", "xray", self.xray_view)
        self.worklist_vm = WorklistViewModel(session, runner, self)
        self.worklist_view = WorklistView(self.worklist_vm)
        if self.worklist_vm.can_act:  # identified data: not for analysts
            self._add_page("Discharges", "worklist", self.worklist_view)
        self.beds_vm = BedsViewModel(session, runner, self)
        self.beds_view = BedsView(self.beds_vm)
        self._add_page("Beds & Staff", "beds", self.beds_view)
        self.dashboards_vm = DashboardsViewModel(session, runner, self)
        # 17 pyqtgraph plots take ~0.15 s to build: only when the page is first opened
        self.dashboards_page = LazyPage(lambda: DashboardsView(self.dashboards_vm))
        self._add_page("Dashboards", "dashboards", self.dashboards_page)
        self.audit_vm = AuditViewModel(session, runner, self)
        self.audit_view = AuditView(self.audit_vm)
        if self.audit_vm.allowed:
            self._add_page("Audit log", "audit", self.audit_view)
        self.models_vm = ModelsViewModel(session, runner, self)
        self.models_view = ModelsView(self.models_vm)
        if session.can(Permission.MANAGE_MODELS):
            self._add_page("Models", "models", self.models_view)
        # administration pages: (title, icon, view-model, view); each sets <name>_vm and <name>_view
        for title, icon_name, vm_type, view_type in (
                ("People", "people", PeopleViewModel, PeopleView), ("Wards", "wards", WardsViewModel, WardsView),
                ("Backups", "backups", BackupsViewModel, BackupsView), ("Imports", "imports", ImportsViewModel, ImportsView),
                ("Settings", "settings", SettingsViewModel, SettingsView), ("Store", "store", StoreViewModel, StoreView)):
            vm = vm_type(session, runner, self)
            setattr(self, f"{icon_name}_vm", vm)
            setattr(self, f"{icon_name}_view", view_type(vm))
            if vm.allowed:
                self._add_page(title, icon_name, getattr(self, f"{icon_name}_view"))
        self.imports_vm.imported.connect(lambda _s: self.list_vm.refresh())
        self.wards_vm.changed.connect(lambda _w: self.beds_vm.snapshot is not None and self.beds_vm.refresh())
        self.admin_vm = AdminViewModel(session, runner, self)
        self.exporter = TableExporter(session, runner, self)
        self._add_exports()
        self.alerts_vm = AlertsViewModel(session, runner, self)
        self.banner = AlertBanner(self.alerts_vm)
        longest = max(self.nav.fontMetrics().horizontalAdvance(self.nav.item(i).text()) for i in range(self.nav.count()))
        self.nav.setFixedWidth(longest + self.nav.iconSize().width() + self.fontMetrics().averageCharWidth() * 14)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.nav)
        right = QVBoxLayout()
        right.setContentsMargins(0, 0, 0, 0)
        right.setSpacing(0)
        right.addWidget(self.banner)
        right.addWidget(self.pages, 1)
        lay.addLayout(right, 1)
        self.nav.currentRowChanged.connect(self.pages.setCurrentIndex)
        self.nav.currentRowChanged.connect(self._page_shown)
        self.nav.setCurrentRow(0)
        for row in (1, 2):  # the patient's pages appear once a patient is opened
            self.nav.item(row).setHidden(True)

        self.patient_view.xrayRequested.connect(lambda: self.nav.setCurrentRow(2))
        self.list_vm.openPatient.connect(self.open_patient)
        self.worklist_vm.openPatient.connect(self.open_patient)
        self.alerts_vm.openPatient.connect(self.open_patient)
        self.alerts_vm.openWard.connect(self.open_ward)
        self.patient_view.backRequested.connect(lambda: self.nav.setCurrentRow(0))
        self.list_view.newPatientRequested.connect(self.new_patient)
        self.patient_view.editPatientRequested.connect(self.edit_patient)
        self.patient_view.addEncounterRequested.connect(lambda: self.edit_encounter(new=True))
        self.patient_view.editEncounterRequested.connect(lambda: self.edit_encounter(new=False))
        self.patient_vm.saved.connect(lambda _msg: self.list_vm.refresh())
        for source in (self.patient_vm.saved, self.beds_vm.notice, self.worklist_vm.notice):
            source.connect(lambda msg: self.window().statusBar().showMessage(msg, 15_000))
        for i in range(self.nav.count()):
            QShortcut(QKeySequence(f"Ctrl+{i + 1}"), self, activated=lambda i=i: self.nav.setCurrentRow(i))
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self.patient_view, activated=lambda: self.nav.setCurrentRow(0),
                  context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.list_vm.refresh()
        self.alerts_vm.start()
        self.changes_vm = StoreChangesViewModel(session, self)   # other desks' changes (a server store)
        self.changes_vm.changed.connect(self._others_changed)
        self.changes_vm.start()

    def _others_changed(self, tables: list[str]) -> None:
        """Another desk changed patients, stays, alerts or waiting admissions: refresh what shows shared state."""
        self.list_vm.refresh()
        self.alerts_vm.refresh()
        if self.beds_vm.snapshot is not None:
            self.beds_vm.refresh()
        if self.worklist_vm.model.total or self.worklist_vm.status:
            self.worklist_vm.refresh()

    def _add_exports(self) -> None:
        """CSV buttons where the role may export: identified tables for clinicians and admins, the
        de-identified encounter export for analysts. The service enforces the same rules."""
        ex = self.exporter
        if ex.can_export_tables:
            for view, model, what in ((self.list_view, self.list_vm.model, "patient list"),
                                      (self.worklist_view, self.worklist_vm.model, "discharge worklist"),
                                      (self.audit_view, self.audit_vm.model, "audit log")):
                view.layout().itemAt(0).layout().addWidget(
                    export_button(view, "Export &CSV…", f"{what.replace(' ', '-')}.csv",
                                  lambda path, m=model, w=what: ex.export_model(m, path, w)))
        elif ex.can_export_deidentified:
            self.list_view.layout().itemAt(0).layout().addWidget(
                export_button(self.list_view, "Export de-identified &CSV…", "encounters-deidentified.csv",
                              ex.export_deidentified))
        ex.finished.connect(lambda msg: self.window().statusBar().showMessage(msg, 15_000))

    def _page_shown(self, row: int) -> None:
        # Pages compute on first view only, so unlocking stays fast.
        page = self.pages.widget(row)
        if page is self.xray_view:   # the page follows the patient in view, or says there is none
            p = self.patient_vm.patient
            self.xray_vm.set_patient(p.id if p is not None else None, self.patient_vm.header_lines[0])
        elif page is self.beds_view and self.beds_vm.snapshot is None:
            self.beds_vm.refresh()
        elif page is self.audit_view and self.audit_vm.model.total == 0:
            self.audit_vm.refresh()
        elif page in (self.people_view, self.wards_view, self.backups_view, self.store_view):
            {self.people_view: self.people_vm, self.wards_view: self.wards_vm, self.backups_view: self.backups_vm,
             self.store_view: self.store_vm}[page].refresh()   # cheap; another desk or the command line may change them
        elif page is self.settings_view and not self.settings_vm.values:
            self.settings_vm.refresh()
        elif page is self.models_view and not self._models_loaded:
            self._models_loaded = True
            self.models_vm.refresh()
        elif page is self.dashboards_page:
            self.dashboards_page.ensure()
            self.dashboards_vm.ensure_loaded()
        elif page is self.worklist_view and self.worklist_vm.model.total == 0 and not self.worklist_vm.status:
            self.worklist_vm.refresh()

    def go_to(self, title: str) -> bool:
        """Show the page with this title (menus); False where this role has no such page."""
        for i in range(self.nav.count()):
            if self.nav.item(i).text() == title and not self.nav.item(i).isHidden():
                self.nav.setCurrentRow(i)
                return True
        return False

    def _add_page(self, title: str, icon_name: str, page: QWidget) -> None:
        QListWidgetItem(icon(icon_name), title, self.nav)
        self.pages.addWidget(page)

    def open_patient(self, patient_id: int) -> None:
        self.patient_vm.load(patient_id)
        self._show_patient_pages()
        self.nav.setCurrentRow(1)

    def open_ward(self, ward: str) -> None:
        self.nav.setCurrentRow(self.pages.indexOf(self.beds_view))
        if self.beds_vm.snapshot is not None:
            self.beds_vm.select_ward(ward)
        else:   # the page computes on first view: choose the ward once it has
            self.beds_vm.loaded.connect(lambda: self.beds_vm.select_ward(ward), Qt.ConnectionType.SingleShotConnection)

    def _show_patient_pages(self) -> None:
        for row in (1, 2):
            self.nav.item(row).setHidden(False)

    def new_patient(self) -> None:
        PatientDialog(lambda v: self.patient_vm.save_patient(v), None, self).exec()
        if self.patient_vm.patient is not None:
            self._show_patient_pages()
            self.nav.setCurrentRow(1)

    def edit_patient(self) -> None:
        p = self.patient_vm.patient
        if p is not None:
            PatientDialog(lambda v: self.patient_vm.save_patient(v, p.id), p, self).exec()

    def edit_encounter(self, new: bool) -> None:
        e = None if new else self.patient_vm.selected_encounter
        if not new and e is None:
            return
        EncounterDialog(lambda v: self.patient_vm.save_encounter(v, None if new else e.id), self.patient_vm.wards(),
                        lambda wid: self.patient_vm.free_beds(wid, e.bed_id if e else None), e, self).exec()


class MainWindow(QMainWindow):
    def __init__(self, session_vm: SessionViewModel, runner: BackgroundRunner, settings: QSettings) -> None:
        super().__init__()
        self.vm, self.runner, self.settings = session_vm, runner, settings
        self.setWindowTitle("WardLens")
        self.setWindowIcon(icon("wardlens"))
        self.stack = QStackedWidget()
        self.setCentralWidget(self.stack)
        self.unlock_view = UnlockView(session_vm, settings=settings)
        self.unlock_view.user.setText(str(settings.value("last_user", "")))
        self.stack.addWidget(self.unlock_view)
        self.workspace: Workspace | None = None

        self.user_label = QLabel()
        self.busy = QProgressBar(maximumWidth=160)
        self.busy.setRange(0, 0)
        self.busy.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the work in progress; nothing half-done is kept")
        self.cancel_button.setVisible(False)
        self.lock_button = QPushButton(icon("lock"), "&Lock")
        self.lock_button.setVisible(False)
        self.statusBar().addPermanentWidget(self.busy)
        self.statusBar().addPermanentWidget(self.cancel_button)
        self.statusBar().addPermanentWidget(self.user_label)
        self.statusBar().addPermanentWidget(self.lock_button)

        file_menu = self.menuBar().addMenu("&File")
        self.import_action = QAction("&Import…", self, enabled=False, triggered=lambda: self._go("Imports"))
        self.backup_action = QAction("&Backup…", self, enabled=False, triggered=self._backup)
        self.restore_action = QAction("&Restore…", self, enabled=False, triggered=lambda: self._go("Backups"))
        for action in (self.import_action, self.backup_action, self.restore_action):
            file_menu.addAction(action)
        file_menu.addSeparator()
        self.password_action = QAction("Change my &password…", self, enabled=False, triggered=self._change_password)
        file_menu.addAction(self.password_action)
        self.lock_action = QAction(icon("lock"), "&Lock session", self, shortcut=QKeySequence("Ctrl+L"), enabled=False)
        file_menu.addAction(self.lock_action)
        file_menu.addSeparator()
        file_menu.addAction(QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit, triggered=self.close))
        self.admin_menu = self.menuBar().addMenu("&Admin")
        for title in ("People", "Wards", "Settings", "Backups", "Imports", "Audit log", "Models", "Store"):
            self.admin_menu.addAction(QAction(f"&{title}", self, triggered=lambda _=False, t=title: self._go(t)))
        self.admin_menu.addAction(QAction("&Verify store", self, triggered=self._verify))
        self.admin_menu.menuAction().setVisible(False)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(QAction("&About WardLens", self, triggered=self._about))

        self.lock_action.triggered.connect(session_vm.lock)
        self.lock_button.clicked.connect(session_vm.lock)
        session_vm.sessionChanged.connect(self._session_changed)
        session_vm.notice.connect(lambda text: QMessageBox.warning(self, "WardLens", text))
        runner.busyChanged.connect(self.busy.setVisible)
        runner.busyChanged.connect(self.cancel_button.setVisible)
        runner.taskStarted.connect(lambda t: self.statusBar().showMessage(f"{t.label}…"))
        # clear only the task's own "working…" line: a result message shown meanwhile must stay readable
        runner.taskFinished.connect(lambda t: self.statusBar().currentMessage() == f"{t.label}…"
                                    and self.statusBar().clearMessage())
        self.cancel_button.clicked.connect(runner.cancel_all)
        self._restore_state()

    def _session_changed(self, session: Desk | None) -> None:
        if self.workspace is not None and session is None:
            # where the user was (ids only, in memory): the same user unlocking again comes back to it
            ws = self.workspace
            p = ws.patient_vm.patient
            self._resume: tuple[str, int, int | None] | None = (ws.user, ws.nav.currentRow(), p.id if p is not None else None)
        if self.workspace is not None:  # drop every widget and model holding patient data
            self.workspace.changes_vm.stop()
            self.stack.removeWidget(self.workspace)
            self.workspace.deleteLater()
            self.workspace = None
        self.admin_menu.menuAction().setVisible(session is not None and session.can(Permission.MANAGE_USERS))
        desk_backups = session is not None and session.can(Permission.BACKUP) and not session.on_server
        self.backup_action.setEnabled(desk_backups)
        self.import_action.setEnabled(session is not None and session.can(Permission.IMPORT))
        self.restore_action.setEnabled(desk_backups)   # the Backups page
        if session is None:
            self.user_label.setText("")
            self.lock_button.setVisible(False)
            self.lock_action.setEnabled(False)
            self.password_action.setEnabled(False)
            self.stack.setCurrentWidget(self.unlock_view)
            self.unlock_view.reset()
            return
        self.settings.setValue("last_user", session.user.username)
        self.workspace = Workspace(session, self.runner)
        self.workspace.people_vm.rotateRequested.connect(self.vm.rotate_keys)
        self.workspace.backups_vm.restoreRequested.connect(self.vm.restore_from_list)
        self.workspace.admin_vm.notice.connect(lambda text: QMessageBox.information(self, "Backup", text))
        self.workspace.admin_vm.failed.connect(lambda text: QMessageBox.warning(self, "Backup", text))
        self.stack.addWidget(self.workspace)
        self.stack.setCurrentWidget(self.workspace)
        where = f" · {self.vm.store_label}" if self.vm.use_server else ""   # everyone sees they share the server
        self.user_label.setText(f"{session.user.display_name or session.user.username} ({session.user.role.value})"
                                f"{where}")
        self.lock_button.setVisible(True)
        self.lock_action.setEnabled(True)
        self.password_action.setEnabled(True)
        self.workspace.list_view.focus_search()
        resume, self._resume = getattr(self, "_resume", None), None
        if resume is not None and resume[0] == session.user.username:   # another user starts from the list
            _user, row, patient_id = resume
            if patient_id is not None:
                self.workspace.open_patient(patient_id)
            self.workspace.nav.setCurrentRow(row)

    def _go(self, title: str) -> None:
        if self.workspace is not None:
            self.workspace.go_to(title)

    def _verify(self) -> None:
        if self.workspace is not None and self.workspace.go_to("Store"):
            self.workspace.store_vm.verify()

    def _backup(self) -> None:
        if self.workspace is None:
            return
        from PySide6.QtCore import QDateTime
        default = f"wardlens-backup-{QDateTime.currentDateTime().toString('yyyyMMdd-HHmm')}.db"
        path, _ = QFileDialog.getSaveFileName(self, "Back up the store to", default, "WardLens store (*.db)")
        if path and self.workspace is not None:   # the session may have locked while the dialog was open
            self.workspace.admin_vm.backup(path if path.endswith(".db") else path + ".db")

    def _change_password(self) -> None:
        if self.workspace is None:
            return
        from ui.password_widgets import ChangePasswordDialog
        from viewmodels.password_vm import ChangePasswordViewModel
        vm = ChangePasswordViewModel(self.workspace.session, self.runner, self.workspace)
        self.password_dialog = ChangePasswordDialog(vm, self.workspace)   # goes with the workspace when it locks
        vm.changed.connect(lambda: self.statusBar().showMessage("Your password was changed.", 15_000))
        self.password_dialog.open()

    def _about(self) -> None:
        self.about_dialog = ModelCardDialog(about_markdown(), self, title="About WardLens")
        self.about_dialog.view.setAccessibleName("About WardLens")
        self.about_dialog.show()

    def _restore_state(self) -> None:
        geometry = self.settings.value("window/geometry")
        restored = isinstance(geometry, QByteArray) and not geometry.isEmpty() and self.restoreGeometry(geometry)
        if not restored or self.width() < 640 or self.height() < 480:
            # First start, or a geometry saved on a tiny screen: a size where every page is readable.
            screen = self.screen().availableGeometry()
            self.resize(min(1200, screen.width()), min(780, screen.height()))
        state = self.settings.value("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt name
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.vm.lock()
        self.runner.cancel_all()
        self.runner.wait_idle(3000)  # a first-start demo build still running is discarded, never half-kept
        super().closeEvent(event)
