"""Beds & Staff: the ward's 14-day occupancy forecast against capacity, nurses per shift, expected
discharges, and recommended beds for waiting admissions."""
from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFileDialog, QGridLayout, QHBoxLayout, QHeaderView, QLabel, QPushButton,
                               QSplitter, QTableView, QTableWidget, QTableWidgetItem, QTabWidget, QVBoxLayout,
                               QWidget)

from ui.tables import read_only_table
from viewmodels.beds_vm import BedsViewModel

pg.setConfigOptions(antialias=True, background="w", foreground="#1d2b33")


def _table(model) -> QTableView:
    t = read_only_table(model)
    t.setTabKeyNavigation(False)
    return t


class ForecastChart(pg.PlotWidget):
    """Expected occupancy with its 80% band, the ward's capacity, and the days that may overflow."""

    def __init__(self) -> None:
        super().__init__()
        self.setMinimumHeight(self.fontMetrics().height() * 14)
        self.showGrid(x=False, y=True, alpha=0.2)
        self.setLabel("left", "Occupied beds")
        # three columns across the top (two rows: three took a third of a 1280x800 chart), on white, above the
        # headroom left by show_forecast: no line runs through it
        self.addLegend(offset=(10, 4), colCount=3, brush=pg.mkBrush(255, 255, 255, 230), pen=pg.mkPen("#d0d7dc"))
        # the expected occupancy in its two parts: today's patients still in (falls as they go home) and the new
        # arrivals on top of them (the ward's usual admissions and the waiting list)
        self.zero = self.plot(pen=None)
        self.staying = self.plot(pen=pg.mkPen("#8a99a3", width=1.5, style=Qt.PenStyle.DotLine),
                                 name="today's patients still in")
        self.staying_fill = pg.FillBetweenItem(self.zero, self.staying, brush=pg.mkBrush(138, 153, 163, 45))
        self.addItem(self.staying_fill)
        self.low = self.plot(pen=pg.mkPen("#7fb8c6", width=1))
        self.high = self.plot(pen=pg.mkPen("#7fb8c6", width=1))
        self.band = pg.FillBetweenItem(self.low, self.high, brush=pg.mkBrush(14, 122, 147, 50))
        self.addItem(self.band)
        self.mean = self.plot(pen=pg.mkPen("#0b5f73", width=3), name="expected, with arrivals (80% band)")
        self.capacity = self.plot(pen=pg.mkPen("#a4161a", width=2, style=Qt.PenStyle.DashLine), name="capacity")
        self.risk = pg.ScatterPlotItem(symbol="t", size=14, brush=pg.mkBrush("#a4161a"), pen=None,
                                       name="may exceed capacity")
        self.addItem(self.risk)
        # the peak the ward report prints (WardForecast.peak): marked here so the two visibly agree
        self.peak = pg.ScatterPlotItem(symbol="o", size=11, brush=pg.mkBrush("#ffffff"),
                                       pen=pg.mkPen("#0b5f73", width=2.5), name="peak (expected)")
        self.addItem(self.peak)

    def show_forecast(self, forecast) -> None:
        if forecast is None:
            for item in (self.low, self.high, self.mean, self.capacity, self.zero, self.staying):
                item.setData([], [])
            self.risk.setData([], [])
            self.peak.setData([], [])
            return
        days = forecast.days
        x = list(range(len(days)))
        self.low.setData(x, [d.low for d in days])
        self.high.setData(x, [d.high for d in days])
        self.mean.setData(x, [d.mean for d in days])
        self.zero.setData(x, [0.0] * len(days))
        self.staying.setData(x, [d.staying for d in days])
        self.capacity.setData([-0.3, len(days) - 0.7], [forecast.capacity] * 2)
        risky = [d for d in days if d.at_risk]
        self.risk.setData([d.day_index for d in risky], [d.high for d in risky])
        self._days = [(d.day_index, d.date) for d in days]
        self._ticks()
        self.setYRange(0, max(forecast.capacity, max(d.high for d in days)) * 1.6 + 1, padding=0)
        peak = forecast.peak
        self.peak.setData([peak.day_index], [peak.mean])
        self.setTitle(f"{forecast.ward}: next {len(days)} days ({days[0].date:%d %b} – {days[-1].date:%d %b})<br>"
                      f"<span style='font-size:9pt'>peak {forecast.peak_text}</span>")

    def _ticks(self) -> None:
        """Short labels ("Sun 22") on as many days as fit without overlapping; a plain tick on the others."""
        days = getattr(self, "_days", [])
        if not days:
            return
        label = self.fontMetrics().horizontalAdvance("Wed 30") + self.fontMetrics().averageCharWidth() * 2
        per_day = max(1.0, self.getPlotItem().getViewBox().width() / max(len(days), 1))
        self.tick_step = max(1, math.ceil(label / per_day))
        major = [(i, d.strftime("%a %d")) for n, (i, d) in enumerate(days) if n % self.tick_step == 0]
        minor = [(i, "") for n, (i, _) in enumerate(days) if n % self.tick_step]
        self.tick_labels = major
        self.getAxis("bottom").setTicks([major, minor])

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt name
        super().resizeEvent(event)
        self._ticks()  # a narrower chart labels fewer days


class BedsView(QWidget):
    def __init__(self, vm: BedsViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(QLabel("Beds & Staff", objectName="PageTitle"))
        top.addStretch(1)
        top.addWidget(QLabel("&Ward"))
        self.ward = QComboBox(sizeAdjustPolicy=QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.ward.setAccessibleName("Ward")
        top.itemAt(top.count() - 1).widget().setBuddy(self.ward)
        top.addWidget(self.ward)
        self.refresh_button = QPushButton("&Refresh")
        top.addWidget(self.refresh_button)
        self.report_button = QPushButton("Ward re&port…")
        self.report_button.setVisible(vm.can_print)
        top.addWidget(self.report_button)
        lay.addLayout(top)
        self.status = QLabel(objectName="Subtitle", wordWrap=True)
        lay.addWidget(self.status)

        split = QSplitter(Qt.Orientation.Vertical)
        upper = QWidget()
        grid = QGridLayout(upper)
        grid.setContentsMargins(0, 0, 0, 0)
        self.chart = ForecastChart()
        grid.addWidget(self.chart, 0, 0)
        self.staff = _table(vm.staff_model)
        grid.addWidget(self.staff, 0, 1)
        grid.setColumnStretch(0, 3)
        grid.setColumnStretch(1, 2)
        split.addWidget(upper)
        # two tabs, not two half-width tables: at 1280 px neither fitted beside the other without scrolling
        self.lower = QTabWidget()
        box = QWidget()
        bl = QVBoxLayout(box)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.addWidget(QLabel("Patients in the chosen ward: predicted stay and expected discharge"))
        self.inpatients = _table(vm.inpatients_model)
        bl.addWidget(self.inpatients)
        self.lower.addTab(box, "In the ward now")
        wbox = QWidget()
        wl = QVBoxLayout(wbox)
        wl.setContentsMargins(0, 0, 0, 0)
        wl.addWidget(QLabel("Patients waiting for a bed, all wards: the recommended bed, or why none fits"))
        self.waiting = QTableWidget(0, 5)
        self.waiting.setHorizontalHeaderLabels(["Patient", "Needs", "Recommended", "Bed", ""])
        self.waiting.horizontalHeaderItem(2).setToolTip("The recommended bed (all wards), or why none fits")
        self.waiting.horizontalHeaderItem(3).setToolTip("The bed to place the patient in: the recommendation or "
                                                         "another free bed that meets the same constraints")
        self.waiting.verticalHeader().setVisible(False)
        # the two text columns share what the patient, bed and button columns leave and wrap: every header
        # stays readable at 1280 px (a single stretching column was squeezed to "ommended" there)
        header = self.waiting.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.waiting.setWordWrap(True)
        self.waiting.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        wl.addWidget(self.waiting)
        self.lower.addTab(wbox, "Waiting admissions")
        split.addWidget(self.lower)
        split.setSizes([380, 320])
        lay.addWidget(split, 1)

        self.refresh_button.clicked.connect(vm.refresh)
        self.report_button.clicked.connect(self._save_report)
        # the item's data is the ward's name; its text may carry a "⚠" for wards that may overflow
        self.ward.currentIndexChanged.connect(lambda i: i >= 0 and vm.select_ward(self.ward.itemData(i)))
        vm.loaded.connect(self._loaded)
        vm.wardChanged.connect(self._ward_changed)
        vm.statusChanged.connect(self.status.setText)

    def _save_report(self) -> None:
        name = (self.vm.ward or "all-wards").replace(" ", "-").lower()
        path, _ = QFileDialog.getSaveFileName(self, "Save ward report", f"ward-report-{name}.pdf", "PDF (*.pdf)")
        if path:
            self.vm.save_ward_report(path if path.lower().endswith(".pdf") else path + ".pdf")

    def _loaded(self) -> None:
        self.ward.blockSignals(True)
        self.ward.clear()
        for f in self.vm.snapshot.forecasts:
            self.ward.addItem(f.ward + ("  ⚠" if f.days_at_risk else ""), f.ward)
        self.ward.blockSignals(False)
        self._fill_waiting()

    def _ward_changed(self, ward: str) -> None:
        i = self.ward.findData(ward)
        if i >= 0 and i != self.ward.currentIndex():
            self.ward.blockSignals(True)
            self.ward.setCurrentIndex(i)
            self.ward.blockSignals(False)
        self.chart.show_forecast(self.vm.forecast)
        self.staff.resizeColumnsToContents()
        self.inpatients.resizeColumnsToContents()

    def _fill_waiting(self) -> None:
        recs = self.vm.snapshot.recommendations
        self.lower.setTabText(1, f"Waiting admissions ({len(recs)})")
        self.waiting.setRowCount(len(recs))
        for r, rec in enumerate(recs):
            w = rec.waiting
            needs = " · ".join(x for x in (w.ward_type, "isolation" if w.needs_isolation else "", w.sex) if x)
            self.waiting.setItem(r, 0, QTableWidgetItem(w.patient_label))
            needs_item = QTableWidgetItem(needs)
            needs_item.setToolTip(needs)
            self.waiting.setItem(r, 1, needs_item)
            rec_item = QTableWidgetItem(f"{rec.bed.ward} {rec.bed.label}" if rec.bed else f"none: {rec.reason}")
            rec_item.setToolTip(rec_item.text())
            if rec.bed is None:
                rec_item.setForeground(QColor("#a4161a"))
            self.waiting.setItem(r, 2, rec_item)
            choice = QComboBox()
            choice.setAccessibleName(f"Bed for {w.patient_label}")
            for b in self.vm.compatible_beds(w):
                choice.addItem(f"{b.ward} {b.label}", b.id)
            if rec.bed is not None:
                choice.setCurrentIndex(max(0, choice.findData(rec.bed.id)))
            self.waiting.setCellWidget(r, 3, choice)
            button = QPushButton("Place")
            button.setEnabled(self.vm.can_place and choice.count() > 0)
            button.clicked.connect(lambda _=False, w=w, c=choice, rec=rec: self.vm.place(
                w.id, c.currentData(), rec.bed.id if rec.bed else None))
            self.waiting.setCellWidget(r, 4, button)
        self.waiting.resizeRowsToContents()
