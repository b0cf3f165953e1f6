"""Discharge worklist page and the alert banner."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFrame, QHBoxLayout, QHeaderView, QLabel, QPushButton,
                               QScrollArea, QSplitter, QVBoxLayout, QWidget)

from ui.tables import read_only_table
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
        self.table = read_only_table(vm.model)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        # short columns sized to their contents, the factor text (last) takes the rest, elided, full in its
        # tooltip: the table fits a 1280-px screen beside the detail pane without a horizontal scroll bar
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(vm.model.columnCount() - 1, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(self.fontMetrics().averageCharWidth() * 6)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.table.setTabKeyNavigation(False)
        split.addWidget(self.table)
        self.detail = QFrame(objectName="Card")
        self.detail_layout = QVBoxLayout(self.detail)
        split.addWidget(self.detail)
        split.setStretchFactor(0, 1)
        split.setSizes([900, 250])
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
        days = f"{p.days_in} {'day' if p.days_in == 1 else 'days'} in hospital"  # as the table's Days column
        head = QLabel(f"<b>{p.patient_label}</b><br>{p.ward} {p.bed} · {days} · risk <b>{r.percent}</b> "
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
    """Open alerts at the top of the workspace; each stays until someone acknowledges it. One line shows by
    default, with "Show all" beside it, so a 800-px-high screen keeps its page; expanded, every alert is listed
    (scrolling past five)."""

    SHOWN = 1

    def __init__(self, vm: AlertsViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        self.expanded = False
        self._alerts: list = []
        self.setStyleSheet("AlertBanner { background: #fff4e5; border-bottom: 2px solid #b35c00; }")
        outer = QHBoxLayout(self)
        outer.setContentsMargins(12, 4, 12, 4)
        self.scroll = QScrollArea(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
        self.scroll.setStyleSheet("QScrollArea, QScrollArea > QWidget > QWidget { background: transparent; }")
        body = QWidget()
        self.lay = QVBoxLayout(body)
        self.lay.setContentsMargins(0, 0, 0, 0)
        self.scroll.setWidget(body)
        outer.addWidget(self.scroll, 1)
        self.more = QPushButton(flat=True)
        self.more.clicked.connect(self._toggle)
        outer.addWidget(self.more, 0, Qt.AlignmentFlag.AlignTop)
        self.setVisible(False)
        vm.alertsChanged.connect(self.show_alerts)

    def _toggle(self) -> None:
        self.expanded = not self.expanded
        self.show_alerts(self._alerts)

    def show_alerts(self, alerts: list) -> None:
        self._alerts = list(alerts)
        _clear(self.lay)
        self.setVisible(bool(alerts))
        shown = alerts if self.expanded else alerts[:self.SHOWN]
        for a in shown:
            row = QHBoxLayout()
            what = "Capacity" if a.kind == "capacity" else "Readmission risk"
            text = QLabel(f"⚠ <b>{what}:</b> {a.message}", wordWrap=True)
            text.setAccessibleName("Alert")
            row.addWidget(text, 1)
            go = QPushButton("Open ward" if a.kind == "capacity" else "Open patient")
            go.setToolTip("Show the ward's forecast" if a.kind == "capacity" else "Open this patient's record")
            go.clicked.connect(lambda _=False, i=a.id: self.vm.open_alert(i))
            row.addWidget(go)
            ack = QPushButton("Acknowledge")
            ack.setEnabled(self.vm.can_acknowledge)
            ack.clicked.connect(lambda _=False, i=a.id: self.vm.acknowledge(i))
            row.addWidget(ack)
            self.lay.addLayout(row)
        extra = len(alerts) - self.SHOWN
        self.more.setVisible(extra > 0)
        self.more.setText("Show fewer" if self.expanded else f"Show all {len(alerts)} open alerts ({extra} more)")
        rows = max(1, len(shown))
        self.scroll.setFixedHeight(min(rows, 5) * 42)  # up to five rows; more scroll


def _clear(layout) -> None:
    while layout.count():
        item = layout.takeAt(0)
        if item.widget():
            item.widget().hide()  # at once: deleteLater alone leaves it painted until the next event pass
            item.widget().deleteLater()
        elif item.layout():
            _clear(item.layout())
