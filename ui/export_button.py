"""An "Export CSV…" button for a table page."""
from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import QFileDialog, QPushButton, QWidget


def export_button(parent: QWidget, label: str, default_name: str, on_path: Callable[[str], None]) -> QPushButton:
    button = QPushButton(label, parent)

    def ask() -> None:
        path, _ = QFileDialog.getSaveFileName(parent, label.rstrip("…").replace("&", ""), default_name, "CSV (*.csv)")
        if path:
            on_path(path if path.lower().endswith(".csv") else path + ".csv")
    button.clicked.connect(ask)
    return button
