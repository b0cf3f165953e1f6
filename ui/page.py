"""The head of every administration page: its title on the left, its actions on the right."""
from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget


def page_header(title: str, *actions: QWidget) -> QHBoxLayout:
    top = QHBoxLayout()
    top.addWidget(QLabel(title, objectName="PageTitle"))
    top.addStretch(1)
    for w in actions:
        top.addWidget(w)
    return top
