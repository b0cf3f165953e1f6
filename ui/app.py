"""Starting the GUI: application object, style, settings, the view-models and the main window."""
from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QSettings, QTimer
from PySide6.QtWidgets import QApplication

from ui.main_window import MainWindow
from ui.theme import icon, stylesheet
from viewmodels.background import BackgroundRunner
from viewmodels.session_vm import SessionViewModel

ACTIVITY_EVENTS = {QEvent.Type.KeyPress, QEvent.Type.MouseButtonPress, QEvent.Type.Wheel}


class ActivityFilter(QObject):
    """Any key, click or scroll counts as activity for the idle lock."""

    def __init__(self, vm: SessionViewModel, parent: QObject) -> None:
        super().__init__(parent)  # dies with the window, in the GUI thread, never by a stray GC
        self.vm = vm

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt name
        if event.type() in ACTIVITY_EVENTS:
            self.vm.note_activity()
        return False


def create_window(store_path: Path, app: QApplication, build_demo: bool = True) -> MainWindow:
    app.setOrganizationName("WardLens")
    app.setApplicationName("WardLens")
    app.setWindowIcon(icon("wardlens"))
    app.setStyleSheet(stylesheet())
    runner = BackgroundRunner(app)
    vm = SessionViewModel(store_path, runner, build_demo_if_missing=build_demo, parent=app)
    window = MainWindow(vm, runner, QSettings())
    activity = ActivityFilter(vm, window)
    app.installEventFilter(activity)
    window.destroyed.connect(lambda: app.removeEventFilter(activity))
    QTimer.singleShot(0, vm.prepare)
    return window


def run_gui(store_path: Path, argv: list[str]) -> int:
    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    window = create_window(store_path, app)
    window.show()
    return app.exec()
