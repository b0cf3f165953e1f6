"""The model card in a window of its own: the card as people read it, a Close button, Esc closes."""
from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget


class ModelCardDialog(QDialog):
    def __init__(self, markdown: str, parent: QWidget | None = None, title: str = "Model card") -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        lay = QVBoxLayout(self)
        self.view = QTextBrowser()
        self.view.setAccessibleName("Model card")
        self.view.setOpenExternalLinks(False)
        self.view.document().setDocumentMargin(12)
        self.view.setMarkdown(markdown)
        lay.addWidget(self.view, 1)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.reject)  # Close and Esc both reject: nothing to accept here
        lay.addWidget(self.buttons)
        self.buttons.button(QDialogButtonBox.StandardButton.Close).setDefault(True)
        # readable at 1280x800 without covering the whole screen: about 100 characters a line
        w = self.fontMetrics().averageCharWidth() * 120
        screen = (parent.screen() if parent is not None else self.screen()).availableGeometry()
        self.resize(min(w, screen.width() - 80), min(720, screen.height() - 80))
        self.view.setFocus()
