"""Small pyqtgraph chart widgets for the dashboards: each keeps its plot items and updates them in place
(setData/setOpts) when new data arrives, and a ChartCard frames one with a title, caption and export.
No computation beyond placing what the view-model hands over."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pyqtgraph as pg
from pyqtgraph.exporters import ImageExporter
from PySide6.QtCore import QBuffer, QIODevice, QRectF, Qt, Signal
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

INK, MUTED, GRID = "#1d2b33", "#4b5d66", "#d5e0e4"
TEAL, TEAL_LIGHT, RED, AMBER = "#0e7a93", "#7fc6d6", "#c0392b", "#d68910"
PALETTE = ("#0e7a93", "#d68910", "#6c8a1f", "#8e44ad", "#c0392b", "#34495e", "#16a085")


def _brush(color: str, alpha: int = 255):
    c = pg.mkColor(color)
    c.setAlpha(alpha)
    return pg.mkBrush(c)


class Chart(pg.PlotWidget):
    """A white, non-interactive plot with readable axes."""

    def __init__(self, x_label: str = "", y_label: str = "", height: int = 260) -> None:
        super().__init__(background="w")
        self.setMinimumHeight(height)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        item = self.getPlotItem()
        item.hideButtons()
        item.setMenuEnabled(False)
        item.setMouseEnabled(False, False)
        item.showGrid(x=True, y=True, alpha=0.15)
        font = QFont()
        font.setPointSizeF(8.5)
        for name in ("left", "bottom"):
            ax = item.getAxis(name)
            ax.setPen(pg.mkPen(MUTED))
            ax.setTextPen(pg.mkPen(INK))
            ax.setTickFont(font)
            ax.enableAutoSIPrefix(False)
        self._tick_font = font
        self.set_labels(x_label, y_label)

    def fit_left_axis(self, labels: Sequence[str]) -> None:
        """Room for the longest category label (pyqtgraph drops tick texts that do not fit)."""
        width = max((QFontMetrics(self._tick_font).horizontalAdvance(str(t)) for t in labels), default=20)
        self.getAxis("left").setWidth(width + 14)

    def set_labels(self, x_label: str, y_label: str) -> None:
        style = {"color": MUTED, "font-size": "9pt"}
        self.getPlotItem().setLabel("bottom", x_label, **style)
        self.getPlotItem().setLabel("left", y_label, **style)

    legend_offset = (-8, 8)   # top right; positive x = from the left edge

    def legend(self):
        item = self.getPlotItem()
        if item.legend is None:
            item.addLegend(offset=self.legend_offset, labelTextColor=INK, brush=_brush("#ffffff", 220),
                           pen=pg.mkPen(GRID))
        return item.legend


class _TextPool:
    """Re-used TextItems (value labels on bars and cells)."""

    def __init__(self, plot: pg.PlotWidget, anchor=(0, 0.5), size: float = 8.0) -> None:
        self.plot, self.anchor, self.items = plot, anchor, []
        self.font = QFont()
        self.font.setPointSizeF(size)

    def show(self, entries: Sequence[tuple[float, float, str, str]]) -> None:
        """entries: (x, y, text, colour)."""
        while len(self.items) < len(entries):
            t = pg.TextItem(anchor=self.anchor)
            t.setFont(self.font)
            self.plot.addItem(t)
            self.items.append(t)
        for t, (x, y, text, color) in zip(self.items, entries):
            t.setText(text, color=color)
            t.setPos(x, y)
            t.setVisible(True)
        for t in self.items[len(entries):]:
            t.setVisible(False)


class HBarChart(Chart):
    """Horizontal bars (first label on top), optional error bars and a text beside each bar."""

    def __init__(self, x_label: str = "", percent: bool = True) -> None:
        super().__init__(x_label)
        self.percent = percent
        self.bars = pg.BarGraphItem(x0=[], y=[], height=0.62, width=[], brush=_brush(TEAL, 200), pen=pg.mkPen(None))
        self.errors = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), beam=0.18, pen=pg.mkPen(INK, width=1.2))
        self.addItem(self.bars)
        self.addItem(self.errors)
        self.texts = _TextPool(self)
        self.getPlotItem().showGrid(x=True, y=False, alpha=0.15)

    def set_data(self, labels: Sequence[str], values: Sequence[float], low: Sequence[float] | None = None,
                 high: Sequence[float] | None = None, texts: Sequence[str] | None = None) -> None:
        n = len(labels)
        v = np.asarray(values, dtype=float)
        y = np.arange(n)[::-1].astype(float)
        self.bars.setOpts(x0=np.zeros(n), y=y, width=v, height=0.62)
        if low is not None and high is not None:
            lo, hi = np.asarray(low, float), np.asarray(high, float)
            self.errors.setData(x=v, y=y, left=v - lo, right=hi - v, beam=0.18)
            ends = hi
        else:
            self.errors.setData(x=np.zeros(0), y=np.zeros(0))
            ends = v
        top = float(np.nanmax(ends)) if n else 1.0
        self.texts.show([(e + top * 0.015, yy, t, INK) for e, yy, t in zip(ends, y, texts or [])])
        self.getAxis("left").setTicks([[(yy, lab) for yy, lab in zip(y, labels)]])
        self.fit_left_axis(labels)
        fmt = (lambda x: f"{x:.0%}") if self.percent else (lambda x: f"{x:.2g}")
        right = top * 1.45 if top > 0 else 1.0  # room for the value text beside the longest bar
        step = _nice_step(right)
        self.getAxis("bottom").setTicks([[(t, fmt(t)) for t in np.arange(0, right + 1e-9, step)]])
        self.setXRange(0, right, padding=0)
        self.setYRange(-0.6, max(n - 0.4, 0.6), padding=0.02)


def _nice_step(span: float) -> float:
    raw = max(span, 1e-9) / 5
    mag = 10 ** np.floor(np.log10(raw))
    return float(min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw))


class TrendChart(Chart):
    """Rate per period: points joined by a line, Wilson error bars, a dashed reference line."""

    def __init__(self, y_label: str = "") -> None:
        super().__init__("", y_label)
        self.errors = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), beam=0.2, pen=pg.mkPen(TEAL_LIGHT, width=1.5))
        self.line = pg.PlotDataItem([], [], pen=pg.mkPen(TEAL, width=2), symbol="o", symbolSize=7,
                                    symbolBrush=_brush(TEAL), symbolPen=pg.mkPen("w"), name="30-day readmission rate")
        self.reference = pg.InfiniteLine(angle=0, pen=pg.mkPen(MUTED, width=1, style=Qt.PenStyle.DashLine),
                                         label="", labelOpts={"color": MUTED, "position": 0.03, "anchors": [(0, 1), (0, 1)]})
        for it in (self.errors, self.line, self.reference):
            self.addItem(it)

    def set_data(self, labels: Sequence[str], values, low, high, reference: float | None = None,
                 reference_label: str = "") -> None:
        x = np.arange(len(labels), dtype=float)
        v, lo, hi = (np.asarray(a, float) for a in (values, low, high))
        self.line.setData(x, v)
        self.errors.setData(x=x, y=v, top=hi - v, bottom=v - lo, beam=0.2)
        self.reference.setVisible(reference is not None)
        if reference is not None:
            self.reference.setValue(reference)
            self.reference.label.setFormat(reference_label)
        self.getAxis("bottom").setTicks([[(i, lab) for i, lab in enumerate(labels)]])
        top = float(np.nanmax(hi)) if len(hi) else 1.0
        step = _nice_step(top * 1.1)
        self.getAxis("left").setTicks([[(t, f"{t:.0%}") for t in np.arange(0, top * 1.1 + 1e-9, step)]])
        self.setXRange(-0.5, len(labels) - 0.5, padding=0)
        self.setYRange(0, max(top * 1.1, 0.05), padding=0)


class HistogramChart(Chart):
    """Bars over bin edges, an optional overlay line, and labelled vertical markers."""

    def __init__(self, x_label: str = "", y_label: str = "encounters", overlay_name: str = "") -> None:
        super().__init__(x_label, y_label)
        self.bars = pg.BarGraphItem(x0=[], x1=[], height=[], brush=_brush(TEAL, 190), pen=pg.mkPen("w"))
        self.addItem(self.bars)
        self.overlay = pg.PlotDataItem([], [], pen=pg.mkPen(AMBER, width=2.5), symbol="o", symbolSize=5,
                                       symbolBrush=_brush(AMBER), symbolPen=None, name=overlay_name)
        self.addItem(self.overlay)
        if overlay_name:
            self.legend().addItem(self.overlay, overlay_name)
        self.markers: list[pg.InfiniteLine] = []

    def set_data(self, edges, counts, markers: Sequence[tuple[str, float]] = (), overlay_x=None, overlay_y=None,
                 tick_format: str = "{:g}", ticks: Sequence[float] | None = None) -> None:
        e, c = np.asarray(edges, float), np.asarray(counts, float)
        self.bars.setOpts(x0=e[:-1], x1=e[1:], height=c)
        self.overlay.setData([] if overlay_x is None else overlay_x, [] if overlay_y is None else overlay_y)
        while len(self.markers) < len(markers):
            line = pg.InfiniteLine(angle=90, pen=pg.mkPen(RED, width=1.5, style=Qt.PenStyle.DashLine), label="",
                                   labelOpts={"color": RED, "position": 0.95, "anchors": [(0, 0.5), (0, 0.5)],
                                              "fill": _brush("#ffffff", 200)})
            self.addItem(line)
            self.markers.append(line)
        for k, (line, (text, x)) in enumerate(zip(self.markers, markers)):
            line.setValue(x)
            line.label.setFormat(text)
            line.label.setPosition(0.95 - 0.09 * k)  # staggered so neighbouring labels do not overlap
            line.setVisible(True)
        for line in self.markers[len(markers):]:
            line.setVisible(False)
        top = max(float(c.max()) if len(c) else 1.0, float(np.max(overlay_y)) if overlay_y is not None and len(overlay_y) else 0)
        if ticks is None and len(e):
            step = _nice_step(e[-1] - e[0])
            ticks = np.arange(np.ceil(e[0] / step) * step, e[-1] + 1e-9, step)
        self.getAxis("bottom").setTicks([[(t, tick_format.format(t)) for t in ticks]] if ticks is not None else None)
        self.setXRange(e[0], e[-1], padding=0.01) if len(e) else None
        self.setYRange(0, max(top * 1.15, 1), padding=0)


class LineChart(Chart):
    """Named lines and point series on 0..1 axes (ROC, calibration), with a dashed diagonal."""

    legend_offset = (8, 8)  # top left stays empty above a diagonal

    def __init__(self, x_label: str, y_label: str, percent: bool = False) -> None:
        super().__init__(x_label, y_label)
        self.percent = percent
        self.diagonal = pg.PlotDataItem([0, 1], [0, 1], pen=pg.mkPen(MUTED, style=Qt.PenStyle.DashLine))
        self.curve = pg.PlotDataItem([], [], pen=pg.mkPen(TEAL, width=2.5))
        self.points = pg.PlotDataItem([], [], pen=pg.mkPen(TEAL, width=1.5), symbol="o", symbolSize=8,
                                      symbolBrush=_brush(TEAL), symbolPen=pg.mkPen("w"))
        self.errors = pg.ErrorBarItem(x=np.zeros(0), y=np.zeros(0), beam=0.006, pen=pg.mkPen(TEAL_LIGHT, width=1.5))
        for it in (self.diagonal, self.errors, self.curve, self.points):
            self.addItem(it)
        self._named = ""

    def set_curve(self, x, y, name: str = "") -> None:
        self.curve.setData(np.asarray(x, float), np.asarray(y, float))
        self._name(self.curve, name)
        self.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.02)

    def set_points(self, x, y, low, high, name: str = "", limit: float = 1.0) -> None:
        x, y, lo, hi = (np.asarray(a, float) for a in (x, y, low, high))
        self.points.setData(x, y)
        self.errors.setData(x=x, y=y, top=hi - y, bottom=y - lo, beam=limit * 0.012)
        self.diagonal.setData([0, limit], [0, limit])
        if self.percent:
            ticks = [[(t, f"{t:.0%}") for t in np.arange(0, limit + 1e-9, _nice_step(limit))]]
            self.getAxis("bottom").setTicks(ticks)
            self.getAxis("left").setTicks(ticks)
        self._name(self.points, name)
        self.setRange(xRange=(0, limit), yRange=(0, limit), padding=0.02)

    def _name(self, item, name: str) -> None:
        if name and name != self._named:
            leg = self.legend()
            leg.clear()
            leg.addItem(item, name)
            self._named = name


class HeatMapChart(Chart):
    """A labelled matrix as an ImageItem with the value printed in each cell."""

    def __init__(self, levels=(-1.0, 1.0), diverging: bool = True, fmt: str = "{:+.2f}", height: int = 300,
                 text_size: float = 8.0) -> None:
        super().__init__(height=height)
        self.image = pg.ImageItem(axisOrder="row-major")
        stops = ([(0.0, "#2166ac"), (0.5, "#f7f7f7"), (1.0, "#b2182b")] if diverging
                 else [(0.0, "#f1f7f9"), (1.0, "#0b5f73")])
        self.image.setColorMap(pg.ColorMap([s for s, _ in stops], [pg.mkColor(c) for _, c in stops]))
        self.levels, self.fmt = levels, fmt
        self.addItem(self.image)
        self.texts = _TextPool(self, anchor=(0.5, 0.5), size=text_size)
        self.getPlotItem().showGrid(False, False)
        self.getPlotItem().invertY(True)

    def set_data(self, matrix, row_labels: Sequence[str], col_labels: Sequence[str], levels=None,
                 texts: Sequence[Sequence[str]] | None = None) -> None:
        m = np.asarray(matrix, dtype=float)
        lo, hi = levels or self.levels
        self.image.setImage(m, levels=(lo, hi))
        self.image.setRect(QRectF(0, 0, m.shape[1], m.shape[0]))
        mid = (lo + hi) / 2
        cells = []
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                strong = abs(m[i, j] - mid) > 0.6 * (hi - lo) / 2 if self.levels[0] < 0 else m[i, j] > mid
                text = texts[i][j] if texts is not None else self.fmt.format(m[i, j])
                cells.append((j + 0.5, i + 0.5, text, "#ffffff" if strong else INK))
        self.texts.show(cells)
        self.getAxis("left").setTicks([[(i + 0.5, lab) for i, lab in enumerate(row_labels)]])
        self.fit_left_axis(row_labels)
        self.getAxis("bottom").setTicks([[(j + 0.5, lab) for j, lab in enumerate(col_labels)]])
        self.setRange(xRange=(0, m.shape[1]), yRange=(0, m.shape[0]), padding=0)


class ScatterChart(Chart):
    """Point groups (one colour each, with a legend), a highlighted set and optional lines."""

    legend_offset = (8, 8)

    def __init__(self, x_label: str = "", y_label: str = "", height: int = 300) -> None:
        super().__init__(x_label, y_label, height)
        self.groups: list[pg.ScatterPlotItem] = []
        self.highlight = pg.ScatterPlotItem(size=12, symbol="d", brush=_brush(RED), pen=pg.mkPen(INK, width=1))
        self.lines: list[pg.PlotDataItem] = []
        self._legend_key: tuple = ()

    def set_data(self, x, y, groups, group_names: Sequence[str], highlight_x=(), highlight_y=(),
                 highlight_name: str = "", lines: Sequence[tuple[Sequence, Sequence, str, str, bool]] = ()) -> None:
        """lines: (x, y, name, colour, dashed)."""
        x, y, g = np.asarray(x, float), np.asarray(y, float), np.asarray(groups, int)
        while len(self.groups) < len(group_names):
            k = len(self.groups)
            item = pg.ScatterPlotItem(size=5, pen=None, brush=_brush(PALETTE[k % len(PALETTE)], 150))
            self.addItem(item)
            self.groups.append(item)
        for k, item in enumerate(self.groups):
            sel = g == k
            item.setData(x[sel], y[sel])
            item.setVisible(k < len(group_names))
        if self.highlight.scene() is None:
            self.addItem(self.highlight)  # above the groups
        self.highlight.setData(np.asarray(highlight_x, float), np.asarray(highlight_y, float))
        while len(self.lines) < len(lines):
            self.lines.append(self.plot([], []))
        for item, (lx, ly, _name, color, dashed) in zip(self.lines, lines):
            item.setData(np.asarray(lx, float), np.asarray(ly, float))
            item.setPen(pg.mkPen(color, width=2.5, style=Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine))
            item.setVisible(True)
        for item in self.lines[len(lines):]:
            item.setVisible(False)
        key = (tuple(group_names), highlight_name, tuple(ln[2] for ln in lines))
        if key != self._legend_key:
            leg = self.legend()
            leg.clear()
            for item, name in zip(self.groups, group_names):
                leg.addItem(item, name)
            if highlight_name:
                leg.addItem(self.highlight, highlight_name)
            for item, ln in zip(self.lines, lines):
                if ln[2]:
                    leg.addItem(item, ln[2])
            self._legend_key = key
        self.getPlotItem().enableAutoRange()


class ChartCard(QFrame):
    """Title, chart (or any widget), caption and an "Export PNG…" button."""

    exportRequested = Signal(str)

    def __init__(self, key: str, title: str, chart: QWidget, exportable: bool = True) -> None:
        super().__init__(objectName="Card")
        self.key, self.chart = key, chart
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        self.title = QLabel(title, objectName="CardTitle")
        self.title.setStyleSheet("font-weight: 600; font-size: 11pt; color: #0b5f73;")
        top.addWidget(self.title, 1)
        self.export_button = QPushButton("Export PNG…")
        self.export_button.setToolTip("Save this chart as a PNG image (audited)")
        self.export_button.setAccessibleName(f"Export {title} as PNG")
        self.export_button.setVisible(exportable and isinstance(chart, pg.PlotWidget))
        self.export_button.clicked.connect(lambda: self.exportRequested.emit(self.key))
        top.addWidget(self.export_button)
        lay.addLayout(top)
        lay.addWidget(chart, 1)
        self.caption = QLabel(wordWrap=True, objectName="Subtitle")
        self.caption.setStyleSheet("font-size: 9pt;")
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.caption)

    def set_caption(self, text: str) -> None:
        self.caption.setText(text)

    def png_bytes(self, width: int = 1200) -> bytes:
        """The chart as PNG bytes; the view-model writes them (services.core.outputs decides where it may)."""
        exporter = ImageExporter(self.chart.getPlotItem())
        exporter.parameters()["width"] = int(width)
        image = exporter.export(toBytes=True)
        buf = QBuffer()
        buf.open(QIODevice.OpenModeFlag.WriteOnly)
        if image is None or image.isNull() or not image.save(buf, "PNG"):
            raise OSError("Could not render the chart as an image.")
        return bytes(buf.data())
