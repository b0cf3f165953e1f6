"""The readmission risk panel of the patient page: risk and band, top factors, LACE and HOSPITAL."""
from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QLabel, QPushButton, QVBoxLayout, QWidget

from models.domain import RiskAssessment

BAND_COLOURS = {"high": "#a4161a", "medium": "#b35c00", "low": "#2b7a3d"}
BAND_MEANING = {  # the cut-offs themselves come from the model bundle (see the model card)
    "high": "At or above the model's operating threshold: plan follow-up before discharge.",
    "medium": "Above the usual risk but below the operating threshold.",
    "low": "Below the usual risk for this population.",
}


class RiskPanel(QFrame):
    modelCardRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, objectName="Card")
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("<b>30-day readmission risk</b>"))
        self.percent = QLabel("—")
        self.percent.setStyleSheet("font-size: 26pt; font-weight: 700;")
        self.percent.setAccessibleName("Readmission risk")
        lay.addWidget(self.percent)
        self.band = QLabel(wordWrap=True)
        lay.addWidget(self.band)
        self.factors = QLabel(wordWrap=True)
        self.factors.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(self.factors)
        self.scores = QLabel(wordWrap=True)
        self.scores.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(self.scores)
        self.stay = QLabel(wordWrap=True)
        self.stay.setTextFormat(Qt.TextFormat.RichText)
        lay.addWidget(self.stay)
        lay.addStretch(1)
        self.model = QLabel(objectName="Subtitle", wordWrap=True)
        lay.addWidget(self.model)
        self.card_button = QPushButton("Model &card…")
        lay.addWidget(self.card_button)
        self.card_button.clicked.connect(self.modelCardRequested)
        self.setMinimumWidth(self.fontMetrics().averageCharWidth() * 38)

    def show_los(self, e) -> None:
        if e is None:
            self.stay.setText("")
            return
        if e.beyond_model:  # the census's one rule: past the model's 14-day range there is no estimate
            self.stay.setText(f"<b>Length of stay</b> (in hospital {e.days_in} d)<br>beyond the model's range "
                              "(14 days): no expected discharge date")
            return
        self.stay.setText(f"<b>Length of stay</b> (in hospital {e.days_in} d)<br>expected {e.los_point:.1f} days "
                          f"(80%: {e.los_low}–{e.los_high}); discharge {e.expected_discharge:%a %d %b} "
                          f"(80%: {e.discharge_earliest:%d %b} – {e.discharge_latest:%d %b})")

    def show_message(self, text: str) -> None:
        if text:
            self.percent.setText("…" if text.startswith("Scoring") else "—")
            self.band.setText(text)
            self.factors.setText("")
            self.scores.setText("")

    def clear(self) -> None:
        """Nothing of a previous encounter or patient stays in the panel."""
        self.percent.setText("—")
        self.percent.setStyleSheet("font-size: 26pt; font-weight: 700;")
        for label in (self.band, self.factors, self.scores, self.model, self.stay):
            label.setText("")

    def show_risk(self, r: RiskAssessment | None) -> None:
        if r is None:
            self.clear()
            return
        colour = BAND_COLOURS.get(r.band, "#1d2b33")
        self.percent.setText(r.percent)
        self.percent.setStyleSheet(f"font-size: 26pt; font-weight: 700; color: {colour};")
        if not r.eligible:
            self.band.setText(f"Not eligible for a readmission risk: {r.not_eligible_reason}.")
        else:
            when = "at discharge" if r.at_discharge else "if discharged today (stay so far)"
            self.band.setText(f"<b style='color:{colour}'>{r.band.upper()}</b> {when}. {BAND_MEANING.get(r.band, '')}")
        if r.eligible and r.outside_population:
            self.band.setText(self.band.text() + f"<br><b>Caution:</b> {escape(r.outside_population)}.")
        items = "".join(f"<li>{f.text}</li>" for f in r.factors) or "<li>no factor raises the risk</li>"
        unknown = "".join(f"<li>{escape(u)}</li>" for u in r.unknown_inputs)
        self.factors.setText(f"<b>What raises it most</b><ul style='margin-left:-20px'>{items}</ul>" +
                             (f"<b>Not known to the model</b><ul style='margin-left:-20px'>{unknown}</ul>"
                              if unknown else ""))
        lace = " + ".join(f"{k}{v}" for k, v in r.lace_components.items())
        measured = "".join(f"<br>{escape(part.split('.')[1])}: {escape(words)}" for part, words in r.measured.items())
        note = ("Other parts use documented proxies." if measured else "Both computed from the coded record with "
                "documented proxies.")
        self.scores.setText(f"<b>LACE</b> {r.lace} ({r.lace_band}; {lace})<br><b>HOSPITAL</b> {r.hospital} "
                            f"({r.hospital_band}){measured}<br><i>{note}</i>")
        version = r.model_version.removeprefix("readmission-")
        self.model.setText(f"Readmission model, version {version}; high risk from {100 * r.threshold:.1f}%")
