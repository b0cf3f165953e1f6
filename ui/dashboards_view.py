"""The analyst's dashboards: four tabs of pyqtgraph charts bound to DashboardsViewModel.

Charts are built once and updated in place when the view-model publishes new results; all
computation happens in the view-model's background jobs. Each chart has a caption and an
"Export PNG…" button (role-checked and audited by the view-model).
"""
from __future__ import annotations

import datetime as dt

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QFileDialog, QGridLayout, QHBoxLayout, QLabel,
                               QPushButton, QScrollArea, QTableView, QTabWidget, QVBoxLayout, QWidget)

from ui.elided_label import ElidedLabel
from ui.charts import AMBER, INK, RED, ChartCard, HBarChart, HeatMapChart, HistogramChart, LineChart, ScatterChart, \
    TrendChart
from ui.tables import read_only_table
from viewmodels.dashboards_vm import DashboardsViewModel


def _month(label: str) -> str:
    try:
        return dt.datetime.strptime(label, "%Y-%m").strftime("%b %Y")  # "Nov 2025": "Nov 25" read as a day
    except ValueError:
        return label


def _table(model) -> QTableView:
    t = read_only_table(model)
    t.setWordWrap(True)
    t.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def fit() -> None:  # show every row: the page scrolls, not the table
        t.resizeRowsToContents()
        t.setFixedHeight(t.horizontalHeader().height() + t.verticalHeader().length() + 2 * t.frameWidth() + 2)
    model.modelReset.connect(fit)
    return t


class DashboardsView(QWidget):
    def __init__(self, vm: DashboardsViewModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.vm = vm
        self.cards: dict[str, ChartCard] = {}
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(QLabel("Dashboards", objectName="PageTitle"))
        self.status = ElidedLabel(objectName="Subtitle")   # a long message never widens the window
        top.addWidget(self.status, 1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.refresh_button = QPushButton("&Refresh")
        self.refresh_button.setToolTip("Recompute every dashboard from the store (in the background)")
        top.addWidget(self.refresh_button)
        lay.addLayout(top)
        self.error = QLabel(objectName="ErrorLabel", wordWrap=True)
        self.error.setVisible(False)
        lay.addWidget(self.error)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        lay.addWidget(self.tabs, 1)

        # Readmission
        g = self._tab("Readmission")
        self.month = TrendChart("30-day readmission")
        self.month.setMaximumHeight(300)
        self.ward, self.age, self.dx = HBarChart("30-day readmission"), HBarChart("30-day readmission"), \
            HBarChart("30-day readmission")
        self.risk = HistogramChart("predicted 30-day readmission risk", "inpatients")
        self._card(g, "readmission_month", "Readmission rate by month of discharge", self.month, 0, 0, 1, 2)
        self._card(g, "readmission_ward", "By ward", self.ward, 1, 0)
        self._card(g, "readmission_age", "By age band", self.age, 1, 1)
        self._card(g, "readmission_dx", "By primary diagnosis group", self.dx, 2, 0)
        self._card(g, "readmission_risk", "Risk of current inpatients", self.risk, 2, 1)

        # Model performance
        g = self._tab("Model performance")
        self.drift = QLabel(wordWrap=True, objectName="HintBox")
        self.drift.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        g.addWidget(self.drift, 0, 0, 1, 2)
        self.metrics = _table(vm.metrics_model)
        c = self._card(g, "performance_metrics", "This hospital beside the model card", self.metrics, 1, 0, 1, 2)
        c.set_caption("Local figures on encounters with a known 30-day outcome; the card's are from the model's "
                      "held-out test set. ECE: the local interval is what chance alone reaches at this sample size.")
        self.roc = LineChart("1 − specificity (false-positive rate)", "sensitivity (true-positive rate)")
        self.calibration = LineChart("mean predicted risk", "observed 30-day readmission", percent=True)
        self.confusion = HeatMapChart(levels=(0, 1), diverging=False, height=200, text_size=10.5)
        self.confusion.setMaximumHeight(260)
        self._card(g, "performance_roc", "ROC curve", self.roc, 2, 0)
        self._card(g, "performance_calibration", "Calibration", self.calibration, 2, 1)
        self._card(g, "performance_confusion", "Confusion matrix at the operating threshold", self.confusion, 3, 0, 1, 2)

        # Length of stay
        g = self._tab("Length of stay")
        self.los_hist = HistogramChart("days in hospital", "encounters", overlay_name="expected by the model")
        self.los_scatter = ScatterChart("actual stay (days)", "predicted stay (days)", height=340)
        self._card(g, "los_distribution", "Length of stay", self.los_hist, 0, 0)
        self._card(g, "los_predicted", "Predicted against actual stay", self.los_scatter, 0, 1)

        # Exploration
        g = self._tab("Exploration")
        self.missing, self.importance = HBarChart("share of encounters"), HBarChart("mean |contribution| (log-odds)", False)
        self.correlation = HeatMapChart(height=340)
        self.pca, self.clusters = ScatterChart(height=320), ScatterChart(height=320)
        self._card(g, "explore_missing", "Missing values per column", self.missing, 0, 0)
        self._card(g, "explore_correlation", "Correlation of numeric fields", self.correlation, 0, 1)
        self._card(g, "explore_pca", "PCA projection (2-D)", self.pca, 1, 0)
        self._card(g, "explore_clusters", "Patient clusters", self.clusters, 1, 1)
        self._card(g, "explore_importance", "Feature importance (readmission model)", self.importance, 2, 0, 1, 2)
        self.anomalies = _table(vm.anomalies_model)
        self._card(g, "explore_anomalies", "Unusual encounters", self.anomalies, 3, 0, 1, 2)

        self.refresh_button.clicked.connect(vm.refresh)
        vm.statusChanged.connect(self.status.setText)
        vm.errorChanged.connect(self._show_error)
        vm.busyChanged.connect(lambda b: self.refresh_button.setEnabled(not b))
        vm.progressChanged.connect(lambda d, t, m: self.status.setText(f"{m} ({d}/{t})…" if d < t else m))
        vm.readmissionChanged.connect(self.show_readmission)
        vm.performanceChanged.connect(self.show_performance)
        vm.losChanged.connect(self.show_los)
        vm.explorationChanged.connect(self.show_exploration)
        for name, result in vm.results.items():  # a view built after results arrived shows them at once
            if result is not None:
                getattr(self, f"show_{name}")(result)

    # --- layout helpers ---------------------------------------------------------------------------
    def _tab(self, title: str) -> QGridLayout:
        page = QWidget()
        grid = QGridLayout(page)
        grid.setSpacing(10)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(page)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.tabs.addTab(scroll, title)
        return grid

    def _card(self, grid: QGridLayout, key: str, title: str, chart: QWidget, row: int, col: int, rows: int = 1,
              cols: int = 1) -> ChartCard:
        card = ChartCard(key, title, chart, exportable=self.vm.can_export)
        card.exportRequested.connect(self.export_chart)
        grid.addWidget(card, row, col, rows, cols)
        self.cards[key] = card
        return card

    def showEvent(self, event) -> None:  # noqa: N802 - Qt name
        super().showEvent(event)
        self.vm.ensure_loaded()

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))

    def export_chart(self, key: str) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export chart as PNG", f"{key}.png", "PNG image (*.png)")
        if path:
            self.vm.export_chart(key, path if path.lower().endswith(".png") else path + ".png", self.cards[key].png_bytes)

    # --- binding ----------------------------------------------------------------------------------
    def _rates(self, chart: HBarChart, key: str, rate_chart) -> None:
        rows = rate_chart.rows
        chart.set_data([r.label for r in rows], [r.rate for r in rows], [r.low for r in rows], [r.high for r in rows],
                       [f"{r.rate:.1%}  ({r.events}/{r.n})" for r in rows])
        self.cards[key].set_caption(rate_chart.caption)

    def show_readmission(self, d) -> None:
        rows = d.by_month.rows
        self.month.set_data([_month(r.label) for r in rows], [r.rate for r in rows], [r.low for r in rows],
                            [r.high for r in rows], d.overall.rate, f"overall {d.overall.rate:.1%}")
        self.cards["readmission_month"].set_caption(d.by_month.caption)
        self._rates(self.ward, "readmission_ward", d.by_ward)
        self._rates(self.age, "readmission_age", d.by_age)
        self._rates(self.dx, "readmission_dx", d.by_dx)
        self.risk.set_data(d.risk.edges, d.risk.counts, d.risk.markers, tick_format="{:.0%}",
                           ticks=d.risk.edges[::4])
        self.cards["readmission_risk"].set_caption(d.risk.caption)

    def show_performance(self, p) -> None:
        warn = p.drift.drift
        self.drift.setText(("⚠ " if warn else "") + p.drift.message)
        self.drift.setStyleSheet(f"color: {RED if warn else (AMBER if not p.drift.enough else INK)};"
                                 + (" font-weight: 600;" if warn else ""))
        self.roc.set_curve(p.fpr, p.tpr, f"AUC {p.auc:.3f}" if p.auc is not None else "")
        self.cards["performance_roc"].set_caption(p.roc_caption)
        cal = p.calibration
        top = max([b["high"] for b in cal] + [b["mean_predicted"] for b in cal] + [0.1])
        self.calibration.set_points([b["mean_predicted"] for b in cal], [b["observed"] for b in cal],
                                    [b["low"] for b in cal], [b["high"] for b in cal], "observed (Wilson 95%)",
                                    limit=min(1.0, float(np.ceil(top * 10) / 10)))
        self.cards["performance_calibration"].set_caption(p.calibration_caption)
        m = p.confusion
        self.confusion.set_data([[m["tp"], m["fn"]], [m["fp"], m["tn"]]], ["readmitted < 30 d", "not readmitted"],
                                [f"flagged high risk (≥ {p.threshold:.1%})", "not flagged"],
                                levels=(0, max(max(m.values()), 1)),
                                texts=[[f"{m['tp']:,} true positives", f"{m['fn']:,} missed (false negatives)"],
                                       [f"{m['fp']:,} false alarms (false positives)", f"{m['tn']:,} true negatives"]])
        self.cards["performance_confusion"].set_caption(p.confusion_caption)

    def show_los(self, d) -> None:
        edges = np.append(d.days - 0.5, d.days[-1] + 0.5)
        self.los_hist.set_data(edges, d.actual_counts, overlay_x=d.days, overlay_y=d.expected_counts, ticks=d.days)
        self.cards["los_distribution"].set_caption(d.distribution_caption)
        self.los_scatter.set_data(d.actual_jittered, d.predicted, np.zeros(len(d.predicted), int), ["encounters"],
                                  lines=[(d.days, d.mean_predicted_by_day, "mean prediction", AMBER, False),
                                         ([1, 14], [1, 14], "perfect", INK, True)])
        self.cards["los_predicted"].set_caption(d.scatter_caption)

    def show_exploration(self, e) -> None:
        self.missing.set_data(e.missing.labels, e.missing.values,
                              texts=[f"{v:.1%}" if v >= 0.001 else "< 0.1%" for v in e.missing.values])
        self.cards["explore_missing"].set_caption(e.missing.caption)
        labels = e.correlation.labels
        self.correlation.set_data(e.correlation.matrix, [f"{lab} ({i + 1})" for i, lab in enumerate(labels)],
                                  [str(i + 1) for i in range(len(labels))])
        self.cards["explore_correlation"].set_caption(e.correlation.caption)
        for chart, key, s in ((self.pca, "explore_pca", e.pca), (self.clusters, "explore_clusters", e.clusters)):
            chart.set_labels(s.x_label, s.y_label)
            chart.set_data(s.x, s.y, s.groups, s.group_names, s.highlight_x, s.highlight_y, s.highlight_name)
            self.cards[key].title.setText(s.title)
            self.cards[key].set_caption(s.caption)
        self.importance.set_data(e.importance.labels, e.importance.values,
                                 texts=[f"{v:.3f}" for v in e.importance.values])
        self.cards["explore_importance"].set_caption(e.importance.caption)
        self.cards["explore_anomalies"].set_caption(e.anomalies_caption)
