"""Discharge worklist page and the alert banner."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFrame, QHBoxLayout, QHeaderView, QLabel, QPushButton,
                               QSplitter, QTableView, QVBoxLayout, QWidget)

from viewmodels.worklist_vm import AlertsViewModel, WorklistViewModel


class WorklistView(QWidget):
    def __init__(self, vm: WorklistViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(QLabel("Discharge worklist", objectName="PageTitle"))
        top.addStretch(1)
        label = QLabel("&Ward")
        self.ward = QComboBox(sizeAdjustPolicy=QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.ward.setAccessibleName("Ward filter")
        label.setBuddy(self.ward)
        top.addWidget(label)
        top.addWidget(self.ward)
        self.refresh_button = QPushButton("&Refresh")
        top.addWidget(self.refresh_button)
        lay.addLayout(top)
        self.status = QLabel(objectName="Subtitle", wordWrap=True)
        lay.addWidget(self.status)
        split = QSplitter(Qt.Orientation.Horizontal)
        self.table = QTableView()
        self.table.setModel(vm.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setTabKeyNavigation(False)
        split.addWidget(self.table)
        self.detail = QFrame(objectName="Card")
        self.detail_layout = QVBoxLayout(self.detail)
        split.addWidget(self.detail)
        split.setSizes([800, 380])
        lay.addWidget(split, 1)

        self.refresh_button.clicked.connect(vm.refresh)
        self.ward.currentIndexChanged.connect(lambda _i: vm.set_ward(self.ward.currentData() or ""))
        vm.statusChanged.connect(self.status.setText)
        vm.loaded.connect(self._loaded)
        vm.selectedChanged.connect(self._show_detail)
        self.table.selectionModel().currentRowChanged.connect(lambda cur, _p: vm.select(cur.row()))
        self.table.activated.connect(lambda idx: vm.activate(idx.row()))

    def _loaded(self) -> None:
        current = self.ward.currentData() or ""
        self.ward.blockSignals(True)
        self.ward.clear()
        self.ward.addItem("All wards", "")
        for w in self.vm.wards:
            self.ward.addItem(w, w)
        self.ward.setCurrentIndex(max(0, self.ward.findData(current)))
        self.ward.blockSignals(False)

    def _show_detail(self, row) -> None:
        while self.detail_layout.count():
            item = self.detail_layout.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        if row is None:
            return
        p, r = row.inpatient, row.risk
        head = QLabel(f"<b>{p.patient_label}</b><br>{p.ward} {p.bed} · day {p.days_in + 1} · risk <b>{r.percent}</b> "
                      f"({r.band})<br>LACE {r.lace} · HOSPITAL {r.hospital}", wordWrap=True)
        self.detail_layout.addWidget(head)
        factors = "".join(f"<li>{f.text}</li>" for f in r.factors) or "<li>none</li>"
        self.detail_layout.addWidget(QLabel(f"<b>What raises the risk</b><ul style='margin-left:-20px'>{factors}</ul>",
                                            wordWrap=True))
        self.detail_layout.addWidget(QLabel("<b>Recommended interventions</b>"))
        if not row.interventions:
            self.detail_layout.addWidget(QLabel("No rule fires for this stay."))
        for rec in row.interventions:
            box = QFrame()
            bl = QVBoxLayout(box)
            bl.setContentsMargins(0, 4, 0, 4)
            state = {"done": "✔ done", "declined": "✖ declined"}.get(rec.status, "open")
            who = f" by {rec.done_by}" if rec.done_by else ""
            bl.addWidget(QLabel(f"<b>{rec.title}</b> — {state}{who}<br><i>{rec.why}</i>", wordWrap=True))
            buttons = QHBoxLayout()
            if rec.status == "recommended":
                done, decline = QPushButton("Mark &done"), QPushButton("Decline")
                done.clicked.connect(lambda _=False, rec=rec: self.vm.mark(rec, "done"))
                decline.clicked.connect(lambda _=False, rec=rec: self.vm.mark(rec, "declined"))
                for b in (done, decline):
                    b.setEnabled(self.vm.can_act)
                    buttons.addWidget(b)
            else:
                reopen = QPushButton("Reopen")
                reopen.setEnabled(self.vm.can_act)
                reopen.clicked.connect(lambda _=False, rec=rec: self.vm.mark(rec, "recommended"))
                buttons.addWidget(reopen)
            buttons.addStretch(1)
            bl.addLayout(buttons)
            self.detail_layout.addWidget(box)
        self.detail_layout.addStretch(1)


class AlertBanner(QFrame):
    """Open alerts at the top of the workspace; each stays until someone acknowledges it."""

    SHOWN = 2

    def __init__(self, vm: AlertsViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        self.setStyleSheet("AlertBanner { background: #fff4e5; border-bottom: 2px solid #b35c00; }")
        self.lay = QVBoxLayout(self)
        self.lay.setContentsMargins(12, 6, 12, 6)
        self.setVisible(False)
        vm.alertsChanged.connect(self.show_alerts)

    def show_alerts(self, alerts: list) -> None:
        _clear(self.lay)
        self.setVisible(bool(alerts))
        for a in alerts[:self.SHOWN]:
            row = QHBoxLayout()
            what = "Capacity" if a.kind == "capacity" else "Readmission risk"
            text = QLabel(f"⚠ <b>{what}:</b> {a.message}", wordWrap=True)
            text.setAccessibleName("Alert")
            row.addWidget(text, 1)
            ack = QPushButton("Acknowledge")
            ack.setEnabled(self.vm.can_acknowledge)
            ack.clicked.connect(lambda _=False, i=a.id: self.vm.acknowledge(i))
            row.addWidget(ack)
            self.lay.addLayout(row)
        if len(alerts) > self.SHOWN:
            self.lay.addWidget(QLabel(f"… and {len(alerts) - self.SHOWN} more open alerts"))


def _clear(layout) -> None:
    while layout.count():
        item = layout.takeAt(0)
        if item.widget():
            item.widget().deleteLater()
        elif item.layout():
            _clear(item.layout())
