"""Store page (administrators): the store's details and counts, and the full check with its report."""
from __future__ import annotations

from PySide6.QtWidgets import QFormLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from ui.page import page_header
from viewmodels.store_vm import StoreViewModel


class StoreView(QWidget):
    def __init__(self, vm: StoreViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        lay = QVBoxLayout(self)
        self.verify_button = QPushButton("&Verify now")
        self.verify_button.setToolTip("Check encryption, structure, the audit chain and its signatures (a minute or "
                                      "two on a large store); the check is audited")
        self.refresh_button = QPushButton("&Refresh")
        lay.addLayout(page_header("Store", self.verify_button, self.refresh_button))
        self.form = QFormLayout()
        lay.addLayout(self.form)
        lay.addWidget(QLabel("<b>Last check</b>"))
        self.report = QPlainTextEdit(readOnly=True, placeholderText="Not checked in this session: press Verify now.")
        self.report.setAccessibleName("Store check report")
        lay.addWidget(self.report, 1)
        self.status = QLabel(objectName="Subtitle", wordWrap=True)
        lay.addWidget(self.status)
        self.verify_button.clicked.connect(vm.verify)
        self.refresh_button.clicked.connect(vm.refresh)
        vm.statusChanged.connect(self.status.setText)
        vm.detailsChanged.connect(self._details)
        vm.reportChanged.connect(lambda lines: self.report.setPlainText("\n".join(lines)))
        self._details(vm.details)

    def _details(self, rows: list[tuple[str, str]]) -> None:
        while self.form.rowCount():
            self.form.removeRow(0)
        for label, value in rows:
            text = QLabel(value, wordWrap=True)
            text.setAccessibleName(label)
            self.form.addRow(f"{label}:", text)
