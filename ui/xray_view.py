"""The X-ray page: open an image for the patient, see it with a toggleable heat map, the findings as
sorted bars against their thresholds, and the model card."""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from html import escape

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QHBoxLayout, QLabel, QListWidget,
                               QListWidgetItem, QMessageBox, QPushButton, QSplitter, QVBoxLayout, QWidget)

from ui.model_card_dialog import ModelCardDialog
from ui.radiograph_viewer import RadiographViewer
from viewmodels.xray_vm import finding_name, XrayViewModel, default_finding, study_verdict

IMAGE_FILTER = "Chest radiographs (*.png *.jpg *.jpeg *.dcm *.dicom DICOMDIR);;All files (*)"
REFUSED_COLOUR = "#a4161a"


EMPTY_TEXT = ("No radiograph shown.\n\nChoose a study on the left, or use “Open image…” to add a chest radiograph "
              "(PNG, JPEG or DICOM) to this patient's record.")


class FindingsChart(pg.PlotWidget):
    """Horizontal bars, highest first; a tick marks each finding's operating threshold."""

    def __init__(self) -> None:
        super().__init__()
        # the labels ("Pleural thickening (not assessed reliably)") take about 40 characters: room left for the bars
        self.setMinimumWidth(self.fontMetrics().averageCharWidth() * 58)
        self.setXRange(0, 1)
        self.setLabel("bottom", "probability")
        self.getAxis("bottom").setTicks([[(0, "0"), (0.5, "0.5"), (1, "1")]])   # five ticks ran together
        self.getViewBox().invertY(True)
        self.bars = pg.BarGraphItem(x0=0, y=[], width=[], height=0.7, brushes=[])
        self.addItem(self.bars)
        self.ticks = pg.ScatterPlotItem(symbol="|", size=18, pen=pg.mkPen("#1d2b33", width=2), brush=None)
        self.addItem(self.ticks)
        self.hideButtons()
        self.setMouseEnabled(False, False)

    def show_findings(self, findings, thresholds: dict[str, float]) -> None:
        """(name, probability, flagged, assessed) per finding: flagged red, assessed blue, not assessed reliably grey
        (never flagged, no threshold tick)."""
        names = [f[0] for f in findings]
        ys = list(range(len(names)))
        self.bars.setOpts(x0=0, y=ys, width=[f[1] for f in findings], height=0.7,
                          brushes=[pg.mkBrush("#a4161a" if f[2] else ("#7fb8c6" if f[3] else "#c9c9c9"))
                                   for f in findings])
        ticked = [(thresholds.get(f[0], 0.0), y) for f, y in zip(findings, ys) if f[3]]
        self.ticks.setData([t for t, _ in ticked], [y for _, y in ticked])
        self.getAxis("left").setTicks([[(i, finding_name(f[0]) + ("" if f[3] else " (not assessed reliably)"))
                                        for i, f in enumerate(findings)]])
        self.setYRange(-0.6, max(len(names), 1) - 0.4)


class XrayView(QWidget):
    def __init__(self, vm: XrayViewModel, card_markdown, parent: QWidget | None = None, ask=None, choose=None) -> None:
        super().__init__(parent)
        self.vm = vm
        self._ask = ask or self._ask_identity   # (patient label, check) -> True to add the image (tests pass one)
        self._choose = choose or self._choose_films   # (entries) -> the paths picked from a DICOMDIR
        self._card = card_markdown
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        self.title = QLabel("X-ray", objectName="PageTitle")
        top.addWidget(self.title)
        top.addStretch(1)
        self.add_button = QPushButton("&Open image…")
        self.add_button.setVisible(vm.can_add)
        self.card_button = QPushButton("Model &card…")
        top.addWidget(self.add_button)
        top.addWidget(self.card_button)
        lay.addLayout(top)
        self.status = QLabel(objectName="Subtitle", wordWrap=True)
        lay.addWidget(self.status)
        # a refused image: said above the picture in words, the measured values in the tooltip
        self.refusal = QLabel(wordWrap=True, objectName="RefusalBanner")
        self.refusal.setAccessibleName("Refusal")
        self.refusal.setStyleSheet(f"#RefusalBanner {{ background: #fbeaea; border: 1px solid {REFUSED_COLOUR}; "
                                   f"border-radius: 6px; padding: 8px; color: {REFUSED_COLOUR}; font-weight: 600; }}")
        self.refusal.setVisible(False)
        split = QSplitter(Qt.Orientation.Horizontal)
        self.list = QListWidget()
        self.list.setAccessibleName("Studies")
        self.list.setMaximumWidth(self.fontMetrics().averageCharWidth() * 34)
        # a long file name is elided in its middle (its end, .dcm or _000.png, stays in view; the whole in the
        # tooltip) rather than scrolled sideways
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        split.addWidget(self.list)
        centre = QWidget()
        cl = QVBoxLayout(centre)
        cl.setContentsMargins(0, 0, 0, 0)
        controls = QHBoxLayout()
        self.heat = QCheckBox("&Heat map")
        self.heat.setChecked(vm.heat_map_on)
        self.finding = QComboBox(sizeAdjustPolicy=QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.finding.setAccessibleName("Heat map of finding")
        self.for_label = QLabel("for")
        controls.addWidget(self.heat)
        controls.addWidget(self.for_label)
        controls.addWidget(self.finding)
        controls.addStretch(1)
        self.compare = QCheckBox("Compare with the &earlier film")
        self.compare.setToolTip("The patient's film before this one, side by side")
        controls.addWidget(self.compare)
        cl.addLayout(controls)
        # window/level of a DICOM film: the file's own window first; the findings are always the file window's
        self.window_row = QWidget()
        wl = QHBoxLayout(self.window_row)
        wl.setContentsMargins(0, 0, 0, 0)
        self.centre = QDoubleSpinBox(decimals=0, minimum=-1e6, maximum=1e6, singleStep=10)
        self.width = QDoubleSpinBox(decimals=0, minimum=1, maximum=1e6, singleStep=10)
        self.centre.setAccessibleName("Window centre (level)")
        self.width.setAccessibleName("Window width")
        self.file_window = QPushButton("File's &window")
        self.file_window.setToolTip("Back to the window stored in the DICOM file (what the model read)")
        for w in (QLabel("Window: level"), self.centre, QLabel("width"), self.width, self.file_window):
            wl.addWidget(w)
        wl.addStretch(1)
        self.window_row.setVisible(False)
        cl.addWidget(self.window_row)
        self.legend = QLabel("Heat map: red to yellow where the evidence for the finding is highest in this film "
                             "(yellow the highest), clear elsewhere; relative, not a probability.", objectName="Subtitle",
                             wordWrap=True)
        cl.addWidget(self.legend)
        cl.addWidget(self.refusal)
        self.films = films = QSplitter(Qt.Orientation.Horizontal)
        self.image = RadiographViewer(EMPTY_TEXT)
        films.addWidget(self.image)
        self.earlier = QWidget()
        el = QVBoxLayout(self.earlier)
        el.setContentsMargins(0, 0, 0, 0)
        self.earlier_label = QLabel(objectName="Subtitle", wordWrap=True)
        self.earlier_image = RadiographViewer("")
        self.earlier_image.view.setAccessibleName("Earlier radiograph")
        el.addWidget(self.earlier_label)
        el.addWidget(self.earlier_image, 1)
        self.earlier.setVisible(False)
        films.addWidget(self.earlier)
        cl.addWidget(films, 1)
        split.addWidget(centre)
        self.chart = FindingsChart()
        split.addWidget(self.chart)
        split.setSizes([220, 600, 380])
        lay.addWidget(split, 1)

        self.add_button.clicked.connect(self._open_file)
        self.card_button.clicked.connect(lambda: ModelCardDialog(self._card(), self).exec())
        self.heat.toggled.connect(vm.set_heat_map)
        self.finding.currentTextChanged.connect(vm.set_finding)
        self.list.currentItemChanged.connect(lambda cur, _p: cur and vm.open_study(cur.data(Qt.ItemDataRole.UserRole)))
        vm.studiesChanged.connect(self._studies)
        vm.openedChanged.connect(self._opened)
        vm.imageChanged.connect(self.image.set_image)
        vm.windowChanged.connect(self._window)
        vm.comparisonChanged.connect(self._comparison)
        self.compare.toggled.connect(vm.set_compare)
        self.compare.toggled.connect(self._show_earlier)
        self.centre.editingFinished.connect(self._window_typed)
        self.width.editingFinished.connect(self._window_typed)
        self.file_window.clicked.connect(vm.reset_window)
        vm.dicomdirOpened.connect(lambda entries: vm.add_files(self._choose(entries)))
        vm.statusChanged.connect(self.status.setText)
        vm.detailChanged.connect(self.status.setToolTip)
        vm.patientChanged.connect(self._patient)
        vm.identityCheckNeeded.connect(self._identity)
        self._patient(vm.patient_label)

    def _show_earlier(self, on: bool) -> None:
        self.earlier.setVisible(on)
        if on:   # the two films side by side, the same width
            half = max(self.films.width() // 2, 100)
            self.films.setSizes([half, half])

    def _window(self, window) -> None:
        self.window_row.setVisible(window is not None)
        if window is not None:
            for box, value in zip((self.centre, self.width), window):
                box.blockSignals(True)
                box.setValue(value)
                box.blockSignals(False)

    def _window_typed(self) -> None:
        self.vm.set_window(self.centre.value(), self.width.value())

    def _comparison(self, shown) -> None:
        if shown is None:
            self.earlier_image.setText("")
            self.earlier_label.setText("")
            return
        image, label = shown
        self.earlier_label.setText(label)
        if image is None:
            self.earlier_image.setText(label)
        else:
            self.earlier_image.set_image(image, keep_view=False)

    def _choose_films(self, entries) -> list[str]:
        from ui.dicomdir_dialog import DicomdirDialog
        dialog = DicomdirDialog(entries, self.vm.patient_label, self)
        return dialog.chosen() if dialog.exec() else []

    def _identity(self, check) -> None:
        if self._ask(self.vm.patient_label, check):
            self.vm.confirm_identity()
        else:
            self.vm.decline_identity()

    def _ask_identity(self, label: str, check) -> bool:
        """The image's identity beside the record's, and an explicit choice; the default answer is No."""
        rows = "".join(
            f"<tr><td>{r.field}</td><td>{escape(r.in_image) or '—'}</td><td>{escape(r.in_record) or '—'}</td>"
            f"<td style='color:{'#a4161a' if r.match is False else '#1d2b33'}'>"
            f"{'differs' if r.match is False else ('same' if r.match else 'not in image')}</td></tr>" for r in check.rows)
        table = (f"<table cellpadding=4><tr><th align=left></th><th align=left>In the image</th>"
                 f"<th align=left>In the record</th><th></th></tr>{rows}</table>") if rows else ""
        box = QMessageBox(QMessageBox.Icon.Warning, "Whose image is this?",
                          f"<p><b>{escape(check.reason[:1].upper() + check.reason[1:])}</b></p>{table}"
                          f"<p>Add it to the record of <b>{escape(label)}</b> only if you are sure it is this "
                          "patient's. Your confirmation is recorded in the audit log.</p>", parent=self)
        add = box.addButton("Add to this patient", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Do not add", QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(box.buttons()[-1])
        box.exec()
        return box.clickedButton() is add

    def _patient(self, label: str) -> None:
        """A page without a patient says so; adding an image needs the patient it goes to."""
        self.title.setText(f"X-ray – {label}" if label else "X-ray – no patient open")
        self.add_button.setEnabled(bool(label))
        if not label:
            self.image.setText("No patient open.\n\nChoose a patient on the Patients page (Ctrl+1); their chest "
                               "radiographs are shown here.")

    def _open_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a chest radiograph", "", IMAGE_FILTER)
        if path:
            self.vm.add_file(path)

    def _studies(self, studies) -> None:
        self.title.setText(f"X-ray – {self.vm.patient_label}")
        self.list.blockSignals(True)
        self.list.clear()
        for s in studies:
            verdict = study_verdict(s)
            item = QListWidgetItem(f"{s.created_at[:16]}\n{s.source_name}\n{verdict}")
            item.setData(Qt.ItemDataRole.UserRole, s.id)
            item.setToolTip(f"{s.source_name}\n{verdict}")   # a long file name is cut in the narrow list
            if s.refused:  # kept from before refused images were no longer stored: unmistakably not a study
                item.setText(f"{s.created_at[:16]}\n{s.source_name}\n⚠ {verdict}")
                item.setForeground(QColor(REFUSED_COLOUR))
                font = item.font()
                font.setItalic(True)
                item.setFont(font)
                item.setToolTip("The model refused this image as not a chest radiograph; it has no findings.")
            self.list.addItem(item)
        self.list.blockSignals(False)

    def _opened(self, opened) -> None:
        if opened is None:
            self.image.show_empty()
            self.chart.show_findings([], {})
            self.refusal.setVisible(False)
            return
        self.list.blockSignals(True)
        self.list.setCurrentRow(-1)  # a refused image is not in the list: nothing stays selected
        for i in range(self.list.count()):
            if opened.study is not None and self.list.item(i).data(Qt.ItemDataRole.UserRole) == opened.study.id:
                self.list.setCurrentRow(i)
        self.list.blockSignals(False)
        r = opened.result
        if r.ood:
            self.refusal.setText(r.refusal_message)
            self.refusal.setToolTip("Measured against the model's limits: " + "; ".join(r.ood_details))
        self.refusal.setVisible(r.ood)
        grey = set(r.not_assessed)
        findings = sorted(((k, r.probabilities[k], r.flag_of(k), k not in grey) for k in r.findings),
                          key=lambda t: (t[0] in grey, -t[1]))   # No Finding is a class of the model, not a finding
        self.chart.show_findings(findings, r.thresholds)
        self.finding.blockSignals(True)
        self.finding.clear()
        self.finding.addItems(r.findings)
        shown = default_finding(r)
        if shown:
            self.finding.setCurrentText(shown)
        self.finding.blockSignals(False)
        for w in (self.heat, self.for_label, self.finding, self.legend, self.chart):   # none for a refused image
            w.setVisible(not r.ood)
