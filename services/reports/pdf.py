"""Printable PDF reports (reportlab platypus): the patient risk report and the ward report.

Collecting and drawing are apart: `collect_patient_report` gathers what the session may see (names
follow `session.sees_names`) into a plain PatientReportData, `render_patient_report` draws it, and
`patient_report_pdf` is the audited, permission-checked entry point (PRINT) for the GUI and the CLI.
The X-ray section takes plain PNG bytes and a findings list (XraySection), so whatever produces the
study's image and heat map can feed it.
"""
from __future__ import annotations

import base64
import datetime as dt
import io
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from reportlab.graphics.shapes import Circle, Drawing, Line, Polygon, Rect, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import cm, mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas as rl_canvas
from reportlab.platypus import (Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle)
from xml.sax.saxutils import escape

from models.domain import Encounter, Patient, Permission, RiskAssessment
from services.core.paths import RESOURCES
from services.records.codes import diagnosis_label
from services.reports import scripts
from services.site.settings import stored_value
from services.capacity.forecast import staffing_by_date
from services.imaging.studies import overlay_rgba
from services.imaging.xray import finding_name, flaggable_now, is_finding, normalised_map
from services.risk.readmission import NOT_ELIGIBLE
from services.risk.clinical_scores import LACE_HIGH_RISK
from services.core.errors import ValidationError
from services.risk.interventions import CARE_PERMISSION, Recommendation, recommend
from services.records.uci_schema import admission_type_text, age_band_text, disposition_text, specialty_text

CONFIDENTIAL = "Confidential patient information"
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), RESOURCES / "report_assets")
BAND_COLOURS = {"low": colors.HexColor("#2e7d32"), "medium": colors.HexColor("#b26a00"),
                "high": colors.HexColor("#c62828")}
INK = colors.HexColor("#1f2933")
MUTED = colors.HexColor("#52606d")
RULE = colors.HexColor("#cbd2d9")
SHADE = colors.HexColor("#f0f4f8")

# ------------------------------------------------------------------------------ fonts and styles
_font_lock = threading.Lock()
_fonts: tuple[str, str] | None = None


def report_fonts() -> tuple[str, str]:
    """(regular, bold) font names: DejaVuSans where found (covers non-Western names), else Helvetica."""
    global _fonts
    with _font_lock:
        if _fonts is None:
            _fonts = ("Helvetica", "Helvetica-Bold")
            for d in FONT_DIRS:
                reg, bold = d / "DejaVuSans.ttf", d / "DejaVuSans-Bold.ttf"
                if reg.is_file() and bold.is_file():
                    try:
                        pdfmetrics.registerFont(TTFont("WL-Sans", str(reg)))
                        pdfmetrics.registerFont(TTFont("WL-Sans-Bold", str(bold)))
                        pdfmetrics.registerFontFamily("WL-Sans", normal="WL-Sans", bold="WL-Sans-Bold",
                                                      italic="WL-Sans", boldItalic="WL-Sans-Bold")
                        _fonts = ("WL-Sans", "WL-Sans-Bold")
                        break
                    except Exception:  # a damaged font file must not stop printing
                        continue
        return _fonts


@dataclass(frozen=True)
class _Styles:
    body: ParagraphStyle
    small: ParagraphStyle
    tiny: ParagraphStyle
    h1: ParagraphStyle
    h2: ParagraphStyle
    big: ParagraphStyle
    label: ParagraphStyle
    cell: ParagraphStyle
    cell_bold: ParagraphStyle
    right: ParagraphStyle
    pad: float = 2.5        # cell padding of tables (points)


def _styles(compact: bool = False) -> _Styles:
    """The report's type; `compact` is a little tighter, for a report that would spill a few lines onto page 2."""
    reg, bold = report_fonts()
    body = ParagraphStyle("body", fontName=reg, fontSize=9 if compact else 9.5, leading=11.5 if compact else 12.5,
                          textColor=INK)
    gap = 0.5 if compact else 1.0   # heading space scale
    cell = 8.2 if compact else 8.5
    return _Styles(
        body=body,
        small=ParagraphStyle("small", parent=body, fontSize=8, leading=9.6 if compact else 10, textColor=MUTED),
        tiny=ParagraphStyle("tiny", parent=body, fontSize=6.8, leading=8.4, textColor=MUTED),
        h1=ParagraphStyle("h1", parent=body, fontName=bold, fontSize=15, leading=19, spaceAfter=2),
        h2=ParagraphStyle("h2", parent=body, fontName=bold, fontSize=11, leading=14, spaceBefore=7 * gap,
                          spaceAfter=3 * gap,
                          keepWithNext=1,  # never a heading alone at the foot of a page
                          textColor=colors.HexColor("#102a43")),
        big=ParagraphStyle("big", parent=body, fontName=bold, fontSize=26, leading=30),
        label=ParagraphStyle("label", parent=body, fontSize=7.5, leading=9, textColor=MUTED),
        cell=ParagraphStyle("cell", parent=body, fontSize=cell, leading=cell + 2),
        cell_bold=ParagraphStyle("cellb", parent=body, fontName=bold, fontSize=cell, leading=cell + 2),
        right=ParagraphStyle("right", parent=body, fontSize=cell, leading=cell + 2, alignment=TA_RIGHT),
        pad=1.5 if compact else 2.5,
    )


def _p(text: Any, style: ParagraphStyle) -> Paragraph:
    return Paragraph(scripts.markup(escape(scripts.visual(str(text)))), style)


def _draw(canvas, x: float, y: float, text: str, font: str, size: float) -> None:
    """A line on the page frame (running title, footer) in any script (services.reports.scripts)."""
    for piece, face in scripts.runs(text, font):
        canvas.setFont(face, size)
        canvas.drawString(x, y, piece)
        x += canvas.stringWidth(piece, face, size)


def _fmt_date(d: dt.date | dt.datetime | None, with_time: bool = False) -> str:
    if d is None:
        return "—"
    if with_time and isinstance(d, dt.datetime):
        return d.strftime("%d %b %Y %H:%M")
    return d.strftime("%d %b %Y")


# ------------------------------------------------------------------------------ page frame
def _page_canvas(footer_centre: str, running_title: str, fonts: tuple[str, str]) -> type[rl_canvas.Canvas]:
    """A canvas class that knows the page count when drawing the footer ("Page 2 of 3")."""

    class NumberedCanvas(rl_canvas.Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict] = []

        def showPage(self) -> None:  # noqa: N802 (reportlab's name)
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self._decorate(total)
                super().showPage()
            super().save()

        def _decorate(self, total: int) -> None:
            w, h = self._pagesize
            reg, bold = fonts
            self.saveState()
            self.setStrokeColor(RULE)
            self.setLineWidth(0.5)
            self.line(18 * mm, 14 * mm, w - 18 * mm, 14 * mm)
            self.setFillColor(MUTED)
            self.setFont(bold, 7.5)
            self.drawString(18 * mm, 10 * mm, CONFIDENTIAL)
            self.setFont(reg, 7.5)
            self.drawRightString(w - 18 * mm, 10 * mm, f"Page {self._pageNumber} of {total}")
            _draw(self, 18 * mm, 6.5 * mm, footer_centre, reg, 6.8)   # own line: never runs into the notice
            if self._pageNumber > 1:  # patient identity on every page of a clinical document
                _draw(self, 18 * mm, h - 11 * mm, running_title, reg, 6.8)
                self.line(18 * mm, h - 13 * mm, w - 18 * mm, h - 13 * mm)
            self.restoreState()

    return NumberedCanvas


def _build_counted(story: list, title: str, author: str, footer_centre: str, running_title: str) -> tuple[bytes, int]:
    """The PDF and its number of pages."""
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm,
                            bottomMargin=20 * mm, title=title, author=author, subject=CONFIDENTIAL,
                            creator="WardLens")
    doc.build(story, canvasmaker=_page_canvas(footer_centre, running_title, report_fonts()))
    return buf.getvalue(), doc.page


def _build(story: list, title: str, author: str, footer_centre: str, running_title: str) -> bytes:
    return _build_counted(story, title, author, footer_centre, running_title)[0]


def _grid(data: list[list[Any]], widths: Sequence[float], header: bool = True, zebra: bool = False,
          pad: float = 2.5) -> Table:
    t = Table(data, colWidths=list(widths), repeatRows=1 if header else 0, hAlign="LEFT")
    style = [("VALIGN", (0, 0), (-1, -1), "TOP"), ("TOPPADDING", (0, 0), (-1, -1), pad),
             ("BOTTOMPADDING", (0, 0), (-1, -1), pad), ("LEFTPADDING", (0, 0), (-1, -1), 4),
             ("RIGHTPADDING", (0, 0), (-1, -1), 4), ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE)]
    if header:
        style += [("BACKGROUND", (0, 0), (-1, 0), SHADE), ("LINEBELOW", (0, 0), (-1, 0), 0.6, MUTED)]
    if zebra:
        style += [("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f7f9fb")])]
    t.setStyle(TableStyle(style))
    return t


# ------------------------------------------------------------------------------ X-ray section data
@dataclass(frozen=True)
class XrayFinding:
    name: str
    probability: float
    flagged: bool
    threshold: float | None = None
    assessed: bool = True   # False: the model does not assess it reliably (never flagged; printed in grey)


@dataclass(frozen=True)
class XraySection:
    """What the report needs of one chest X-ray study: display PNG, optional heat-map PNG (already
    blended over the image or on its own), and the findings (any order; the report sorts them)."""

    image_png: bytes
    heatmap_png: bytes | None
    findings: list[XrayFinding]
    taken_at: str = ""
    model_version: str = ""
    heatmap_label: str = ""
    note: str = ""            # e.g. why the image was refused (out of distribution)


def _png(img: PILImage.Image, max_side: int = 1024) -> bytes:
    img = img.copy()
    img.thumbnail((max_side, max_side))
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()


def heatmap_overlay_png(image_png: bytes, heat: Sequence[Sequence[float]] | np.ndarray) -> bytes:
    """The X-ray page's own overlay (services.imaging.studies.overlay_rgba) of a small heat grid (a 7x7 or 8x8 class
    activation map, any scale, normalised within the film) over the image: the report shows what the page showed."""
    base = PILImage.open(io.BytesIO(image_png)).convert("L")
    grid = normalised_map(np.asarray(heat, dtype=np.float32))
    up = np.asarray(PILImage.fromarray(grid, mode="F").resize(base.size, PILImage.BILINEAR), dtype=np.float32)
    rgba = overlay_rgba(np.asarray(base, dtype=np.float32), up)
    return _png(PILImage.fromarray(rgba[..., :3], mode="RGB"))


def xray_section_from_study(image: bytes, results_json: str | None, taken_at: str = "",
                            model_version: str = "") -> XraySection:
    """An XraySection from a row of `xray_studies` (image blob in its stored format, results JSON).

    Accepted results layouts: {"probabilities": {...}, "flags": {...}, "thresholds": {...},
    "ood": bool, "ood_reasons": [...], "heatmap_png": base64 | "heatmap": [[...]], "heatmap_finding": str}
    or a flat {finding: probability} mapping.
    """
    from services.imaging.xray_image import load_xray_bytes  # validates format and size; numpy + PIL only

    loaded = load_xray_bytes(image, "stored study")
    pixels = np.clip(np.asarray(loaded.pixels, dtype=np.float32), 0, 255).astype(np.uint8)
    image_png = _png(PILImage.fromarray(pixels, mode="L"))
    res: dict[str, Any] = json.loads(results_json) if results_json else {}
    probs = res.get("probabilities")
    if not isinstance(probs, Mapping):
        probs = {k: v for k, v in res.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    flags = res.get("flags") if isinstance(res.get("flags"), Mapping) else {}
    thresholds = res.get("thresholds") if isinstance(res.get("thresholds"), Mapping) else {}
    # findings the installed model does not earn are never printed as flags, whatever a study stored under an earlier
    # rule says
    unassessed = set(res.get("not_assessed") or []) | {str(k) for k in probs if str(k) not in flaggable_now()}
    findings = [XrayFinding(str(k), float(v),
                            (bool(flags[k]) if k in flags else (k in thresholds and float(v) >= float(thresholds[k])))
                            and k not in unassessed,
                            float(thresholds[k]) if k in thresholds else None, k not in unassessed)
                for k, v in probs.items() if is_finding(str(k))]   # No Finding is a class, never a finding to print
    heat_png = None
    if isinstance(res.get("heatmap_png"), str):
        heat_png = base64.b64decode(res["heatmap_png"], validate=True)
    elif isinstance(res.get("heatmap"), list) and res["heatmap"]:
        heat_png = heatmap_overlay_png(image_png, res["heatmap"])
    note = ""
    if res.get("ood"):
        reasons = res.get("ood_reasons") or []
        note = "The model refused this image as unlike the chest radiographs it was trained on" + (
            f" ({'; '.join(map(str, reasons))})" if reasons else "") + ": no findings are shown."
        findings = []
    return XraySection(image_png, heat_png, findings, taken_at or "", model_version or str(res.get("model_version", "")),
                       str(res.get("heatmap_finding", "")), note)


# ------------------------------------------------------------------------------ LOS
@dataclass(frozen=True)
class LosSummary:
    expected_days: float
    low_days: int
    high_days: int
    days_so_far: int | None             # inpatients only
    expected_discharge: dt.date | None  # inpatients only
    earliest: dt.date | None
    latest: dt.date | None
    actual_days: int | None             # discharged only
    model_version: str
    beyond_model: bool = False          # already past the model's 14-day range


def los_summary(stay: Any, encounter: Encounter, model_version: str) -> LosSummary:
    """The report's view of the census's one stay estimate (services.capacity.census.stay_estimate)."""
    inpatient = encounter.is_inpatient
    return LosSummary(stay.point_days, stay.low_days, stay.high_days, stay.days_so_far if inpatient else None,
                      stay.expected_discharge, stay.earliest, stay.latest,
                      None if inpatient else encounter.length_of_stay(), model_version, stay.beyond_model)


# ------------------------------------------------------------------------------ patient report data
@dataclass
class PatientReportData:
    patient: Patient
    encounter: Encounter
    sees_names: bool
    assessment: RiskAssessment | None
    bands: list[tuple[str, float]]
    los: LosSummary | None
    interventions: list[Recommendation]
    printed_by: str
    printed_at: dt.datetime
    xray: XraySection | None = None
    notes: dict[str, str] = field(default_factory=dict)   # section -> why it is not available
    models: list[tuple[str, str]] = field(default_factory=list)
    site: str = ""            # the hospital's name (setting hospital_name), printed above WardLens
    logo: bytes = b""         # the hospital's logo (setting hospital_logo), a PNG; empty for none


def _printed_line(site: str, rest: str) -> str:
    return f"{site} · WardLens · {rest}" if site else f"WardLens · {rest}"


def _site(conn) -> tuple[str, bytes]:
    """The hospital's name and logo as every report prints them."""
    return str(stored_value(conn, "hospital_name")), bytes(stored_value(conn, "hospital_logo"))


def _title_block(title: str, printed: str, logo: bytes, st: "_Styles") -> list:
    """The report's title and printed-by line, with the hospital's logo at the top right where one is set."""
    lines = [_p(title, st.h1), _p(printed, st.small)]
    if not logo:
        return lines
    try:
        with PILImage.open(io.BytesIO(logo)) as im:
            w, h = im.size
            im.load()
    except Exception:   # a logo that does not decode never stops a report: it prints without one
        return lines
    scale = min(5 * cm / w, 1.6 * cm / h)
    table = Table([[lines, Image(io.BytesIO(logo), width=w * scale, height=h * scale)]],
                  colWidths=[None, 5.2 * cm])
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("ALIGN", (1, 0), (1, 0), "RIGHT"),
                               ("LEFTPADDING", (0, 0), (-1, -1), 0), ("RIGHTPADDING", (0, 0), (-1, -1), 0)]))
    return [table]


def collect_patient_report(src: Any, patient_id: int, encounter_nbr: int | None = None,
                           now: dt.datetime | None = None) -> PatientReportData:
    """Everything the patient report shows, as this session may see it (names hidden where it may not), from
    the domain façades in `src` (services.reports.facade.Reports: session, records, risk, capacity, imaging).

    encounter_nbr None: the current stay if the patient is in hospital, else the latest one.
    """
    session = src.session
    now = now or dt.datetime.now()
    patients = src.records.patients
    patient = patients.get_patient(patient_id)
    # the report is about a hospital stay: emergency and clinic visits (from FHIR or HL7) and cancelled admissions
    # are in the record but have no risk or length of stay of their own
    encounters = [e for e in patients.encounters(patient_id)
                  if e.encounter_class == "inpatient" and e.source_status != "cancelled"]
    if not encounters:
        raise ValidationError({"patient": "this patient has no hospital stay to report on"})
    if encounter_nbr is None:
        enc = encounters[0]  # PatientService orders the current stay first, then the latest
    else:
        enc = next((e for e in encounters if e.encounter_nbr == int(encounter_nbr)), None)
        if enc is None:
            raise ValidationError({"encounter": f"encounter {encounter_nbr} is not a hospital stay in this patient's "
                                                "record (the report is for hospital stays)"})
    notes: dict[str, str] = {}
    models: list[tuple[str, str]] = []
    frame = patients.uci_frame([patient_id])
    frame = frame[frame["encounter_id"] <= enc.encounter_nbr]
    record = frame[frame["encounter_id"] == enc.encounter_nbr].iloc[0].to_dict()
    assessment, bands = None, []
    try:
        assessment = src.risk.assessments.readmission(patient_id, enc.encounter_nbr)
        bands = list(src.risk.model.get().bands)
        models.append(("30-day readmission", assessment.model_version))
    except Exception as exc:  # a missing or damaged bundle must not stop the rest of the report
        notes["risk"] = f"Readmission model not available ({type(exc).__name__}: {exc})."
    los = None
    try:
        los = los_summary(src.capacity.census.stay(patient_id, enc, now.date()), enc, src.capacity.census.los_version)
        models.append(("Length of stay", los.model_version))
    except Exception as exc:
        notes["los"] = f"Length-of-stay estimate not available ({type(exc).__name__})."
    if session.can(CARE_PERMISSION):
        interventions = src.risk.interventions.refresh(patient_id, enc.encounter_nbr, record, assessment)
    else:  # roles that may not record them still see what the rules say
        interventions = recommend(record, assessment)
    xray = None
    row = src.imaging.latest_read_study(patient_id, enc.id)
    if row is not None:
        try:
            xray = xray_section_from_study(row[0], row[1], row[2] or "", row[3] or "")
            if xray.model_version:
                models.append(("Chest X-ray findings", xray.model_version))
        except Exception as exc:
            notes["xray"] = f"The stored X-ray study could not be shown ({type(exc).__name__}: {exc})."
    models.append(("LACE index and HOSPITAL score", "computed from the record, with proxies (see above)"))
    who = session.user.display_name or session.user.username
    printed_by = f"{who} ({session.user.username})" if who != session.user.username else who
    return PatientReportData(patient, enc, session.sees_names, assessment, bands, los, interventions, printed_by, now,
                             xray, notes, models, *_site(session.db.conn))


# ------------------------------------------------------------------------------ patient report drawing
LACE_PARTS = (("L", "Length of stay"), ("A", "Acute (emergency) admission"), ("C", "Comorbidity (Charlson index)"),
              ("E", "Emergency visits before (max 4)"))
HOSPITAL_PARTS = (("H", "Haemoglobin low at discharge*"), ("O", "Oncology service"), ("S", "Sodium low at discharge*"),
                  ("P", "Procedure during the stay"), ("I", "Index admission urgent/emergent"),
                  ("T", "Admissions in the year before"), ("A", "Length of stay 5 days or more"))


# The proxies in words for the printed page; the technical definitions (services.risk.clinical_scores.PROXIES) are in
# the readmission model card. One short paragraph keeps a typical report on one page.
SCORE_PROXY_NOTE = (
    "These scores are computed from the coded record, which lacks some of their inputs, so parts are proxies and they "
    "are not the validated LACE and HOSPITAL scores. C: Charlson index from the three coded diagnoses only (diabetes "
    "always counts), so it under-counts comorbidity. E: emergency visits in the whole year before (not 6 months), at "
    "most 4. T: inpatient stays in the year before. *H and S: no laboratory values; 1 point for a coded anaemia "
    "(ICD-9 280–285) or hyponatraemia (276.1). O: oncology or haematology/oncology specialty. P: any procedure other "
    "than lab tests. The readmission model card gives the exact definitions.")


def _band_text(a: RiskAssessment, bands: list[tuple[str, float]]) -> str:
    cuts = {name: lower for name, lower in bands}
    lo_med, lo_high = cuts.get("medium", a.threshold), cuts.get("high", a.threshold)
    n = round(100 * (a.probability or 0.0))
    meaning = {
        "high": f"High band: at or above {100 * lo_high:.1f}%, the level at which the hospital acts before discharge "
                "(follow-up within 7 days and the interventions below).",
        "medium": f"Medium band: between {100 * lo_med:.1f}% and {100 * lo_high:.1f}%. Worth a check of the "
                  "discharge plan; the interventions below say where.",
        "low": f"Low band: below {100 * lo_med:.1f}%. Usual discharge care.",
    }.get(a.band, f"Band: {a.band}.")
    # the bar shows the medium cut, so say it (what it is, the bundled card's risk_bands rule says: above-average
    # risk; a locally retrained model sets it on its own patients)
    scale = (f" On the bar: low below {100 * lo_med:.1f}%, medium (above-average risk) from there, high from "
             f"{100 * lo_high:.1f}%; the model card gives the bands." if "medium" in cuts else "")
    return (f"About {n} in 100 patients with this risk are readmitted within 30 days (a calibrated probability). "
            f"{meaning}{scale}")


def _risk_bar(a: RiskAssessment, bands: list[tuple[str, float]], fonts: tuple[str, str]) -> Drawing:
    """A 0..max scale with the bands coloured and a marker at this patient's risk."""
    width, height = 250.0, 34.0
    top = max(0.4, (a.probability or 0.0) * 1.15)
    d = Drawing(width, height)
    x0, bar_w, y = 4.0, width - 8.0, 12.0
    edges = [lo for _, lo in bands] + [top]
    for (name, lo), hi in zip(bands, edges[1:]):
        d.add(Rect(x0 + bar_w * lo / top, y, bar_w * (min(hi, top) - lo) / top, 8,
                   fillColor=BAND_COLOURS.get(name, MUTED), strokeColor=None, fillOpacity=0.8))
    for _, lo in bands[1:]:
        d.add(String(x0 + bar_w * lo / top, 2, f"{100 * lo:.1f}%", fontName=fonts[0], fontSize=6.5,
                     fillColor=MUTED, textAnchor="middle"))
    d.add(String(x0, 2, "0%", fontName=fonts[0], fontSize=6.5, fillColor=MUTED))
    d.add(String(x0 + bar_w, 2, f"{100 * top:.0f}%", fontName=fonts[0], fontSize=6.5, fillColor=MUTED,
                 textAnchor="end"))
    px = x0 + bar_w * min(a.probability or 0.0, top) / top
    d.add(Polygon([px - 4, y + 16, px + 4, y + 16, px, y + 9], fillColor=INK, strokeColor=None))
    d.add(Line(px, y, px, y + 9, strokeColor=INK, strokeWidth=1.2))
    return d


_MED_CHANGE = {"Up": "dose increased", "Down": "dose reduced", "Steady": "no change"}


def _header_block(data: PatientReportData, st: _Styles) -> Table:
    p, e = data.patient, data.encounter
    if data.sees_names:
        name, birth, number = p.display_name, _fmt_date(p.birth_date), p.mrn
    else:  # a de-identified viewer's report carries no direct identifiers
        name, birth, number = "withheld (de-identified view)", "withheld", "withheld"
    if e.is_inpatient and e.admit_time is not None:
        n = e.days_in_hospital(data.printed_at)
        stay = f"in hospital, {n} {'day' if n == 1 else 'days'} so far"
    elif e.is_inpatient:
        stay = "in hospital"
    else:
        stay = _fmt_date(e.discharge_time, with_time=True)
    place = " / ".join(x for x in (e.ward_name, e.bed_label) if x) or "—"

    def cell(label: str, value: str, bold: bool = False) -> list:
        return [_p(label, st.label), _p(value, st.cell_bold if bold else st.cell)]

    rows = [
        cell("Patient", name, True) + cell("Patient no.", number, True) + cell("Birth date", birth),
        cell("Sex", p.sex) + cell("Age band", age_band_text(e.age_band or p.age_band) or "—")
        + cell("Encounter", str(e.encounter_nbr)),
        cell("Ward / bed", place) + cell("Admitted", _fmt_date(e.admit_time, with_time=True)) + cell("Discharged", stay),
        cell("Admission", admission_type_text(e.admission_type_id)) + cell("Specialty", specialty_text(e.medical_specialty))
        + cell("Discharge to", "Not yet decided" if e.discharge_disposition_id is None else
               disposition_text(e.discharge_disposition_id) + (" (planned)" if e.is_inpatient else "")),
    ]
    # the stay's diagnoses with their titles (primary first) and its diabetes medications with their change
    dx = [escape(f"{d.code} {d.description}" if d.description else diagnosis_label(d.code, d.system)) +
          (" (primary)" if d.position == 1 else "")
          for d in e.diagnoses] or ["none recorded"]
    meds = [f"{escape(m.drug)} ({_MED_CHANGE.get(m.status, m.status)})" for m in e.medications if m.status != "No"]
    rows += [[_p("Diagnoses", st.label), Paragraph(" · ".join(dx), st.cell), "", "", "", ""],
             [_p("Diabetes medicines", st.label), Paragraph(", ".join(meds) or "none given", st.cell), "", "", "", ""]]
    widths = [w * mm for w in (19, 41, 19, 35, 21, 33)]
    t = Table(rows, colWidths=widths, hAlign="LEFT")
    t.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), SHADE), ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                           ("TOPPADDING", (0, 0), (-1, -1), 2.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
                           ("SPAN", (1, -2), (-1, -2)), ("SPAN", (1, -1), (-1, -1)),
                           ("BOX", (0, 0), (-1, -1), 0.5, RULE)]))
    return t


def _risk_block(data: PatientReportData, st: _Styles, fonts: tuple[str, str]) -> list:
    a = data.assessment
    out: list = [_p("30-day readmission risk", st.h2)]
    if a is None:
        out.append(_p(data.notes.get("risk", "Not available."), st.body))
        return out
    if not a.eligible:
        out.append(_p(f"Not eligible for a readmission risk: {a.not_eligible_reason}.", st.body))
        return out
    colour = BAND_COLOURS.get(a.band, INK)
    big = Paragraph(f'<font color="{colour.hexval()}">{escape(a.percent)}</font>', st.big)
    band = Paragraph(f'<font color="{colour.hexval()}"><b>{escape(a.band.upper())} RISK</b></font>', st.body)
    when = ("Scored at discharge." if a.at_discharge else
            "Scored with the stay so far: the patient is still in hospital, so the figure will change.")
    right = [Paragraph(escape(_band_text(a, data.bands)), st.body), Spacer(1, 3), _risk_bar(a, data.bands, fonts),
             Spacer(1, 2), _p(when, st.small)]
    t = Table([[[big, band], right]], colWidths=[34 * mm, 134 * mm], hAlign="LEFT")
    t.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (0, 0), 0),
                           ("LEFTPADDING", (1, 0), (1, 0), 8), ("LINEAFTER", (0, 0), (0, 0), 2, colour)]))
    out.append(t)
    if a.outside_population:
        out.append(_p(f"Caution: {a.outside_population}.", st.body))
    out.append(_p("Main factors raising the risk", st.h2))
    if a.factors:
        rows = [[_p(f"{i}.", st.cell), _p(f.text[:1].upper() + f.text[1:], st.cell)] for i, f in enumerate(a.factors, 1)]
        ft = Table(rows, colWidths=[7 * mm, 161 * mm], hAlign="LEFT")
        ft.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),   # the number beside a wrapped factor's first line
                                ("LEFTPADDING", (0, 0), (-1, -1), 0), ("TOPPADDING", (0, 0), (-1, -1), 1),
                                ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
        out.append(ft)
    else:
        out.append(_p("No single factor raises this patient's risk above the average.", st.body))
    out.append(_p("Factors are the model's own per-feature contributions for this patient, largest first.", st.small))
    if a.unknown_inputs:
        out.append(_p("Not known to the model: " + "; ".join(a.unknown_inputs) + ".", st.small))
    return out


def _scores_block(data: PatientReportData, st: _Styles) -> list:
    a = data.assessment
    out: list = [_p("Clinical scores", st.h2)]
    if a is None:
        out.append(_p("Not available (computed with the risk model's record).", st.body))
        return out

    def table(title: str, total: int, maximum: int, band: str, parts, comps: Mapping[str, int]) -> Table:
        rows = [[Paragraph(f"<b>{escape(title)}</b> · {escape(band)}", st.cell),
                 Paragraph(f"<b>{total}</b> of {maximum}", st.right)]]
        rows += [[_p(f"{k}   {text}", st.cell), _p(str(comps.get(k, 0)), st.right)] for k, text in parts]
        return _grid(rows, [62 * mm, 18 * mm], pad=st.pad)

    lace = table("LACE index", a.lace, 19, f"{a.lace_band} (high at {LACE_HIGH_RISK}+)", LACE_PARTS, a.lace_components)
    hosp = table("HOSPITAL score", a.hospital, 13, f"{a.hospital_band} (high at 7+)", HOSPITAL_PARTS,
                 a.hospital_components)
    both = Table([[lace, hosp]], colWidths=[84 * mm, 84 * mm], hAlign="LEFT")
    both.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    out.append(both)
    out.append(Spacer(1, 2))
    if a.measured:   # records from the hospital's systems: these parts are the patient's own values
        out.append(_p("From this patient's record: " + "; ".join(
            f"{part.split('.')[1]} {words}" for part, words in a.measured.items()) +
            ". The proxies below apply to the other parts only.", st.tiny))
    out.append(_p(SCORE_PROXY_NOTE, st.tiny))
    return out


def _los_block(data: PatientReportData, st: _Styles) -> list:
    out: list = [_p("Length of stay", st.h2)]
    los = data.los
    if los is None:
        out.append(_p(data.notes.get("los", "Length-of-stay estimate not available."), st.body))
        return out
    if los.actual_days is not None:
        text = (f"Stayed {los.actual_days} day{'s' if los.actual_days != 1 else ''}. At admission the model expected "
                f"{los.expected_days:.1f} days (80% interval {los.low_days}–{los.high_days} days).")
    elif los.beyond_model:
        text = (f"Day {los.days_so_far} in hospital: beyond the model's 14-day range, so no discharge date is predicted. "
                f"At admission it expected {los.expected_days:.1f} days.")
    else:
        text = (f"Day {los.days_so_far} in hospital. Expected stay {los.expected_days:.1f} days "
                f"(80% interval {los.low_days}–{los.high_days} days, given the patient is still here today). "
                f"<b>Expected discharge: {escape(_fmt_date(los.expected_discharge))}</b> "
                f"(between {escape(_fmt_date(los.earliest))} and {escape(_fmt_date(los.latest))}).")
        out.append(Paragraph(text, st.body))
        out.append(_p("From what was known at admission; 8 in 10 similar stays end within the interval.", st.small))
        return out
    out.append(_p(text, st.body))
    return out


def _image_flowable(png: bytes, width: float) -> Image:
    with PILImage.open(io.BytesIO(png)) as im:
        w, h = im.size
    return Image(io.BytesIO(png), width=width, height=width * h / max(w, 1))


def xray_flowables(section: XraySection, st: _Styles | None = None) -> list:
    """The X-ray section: image and heat map side by side, then the findings table."""
    st = st or _styles()
    out: list = [_p("Chest X-ray findings", st.h2)]
    when = f"Study of {section.taken_at[:16]}" if section.taken_at else "Latest study"
    img_w = 78 * mm
    left = [_image_flowable(section.image_png, img_w), _p(when, st.small)]
    if section.heatmap_png:
        what = f" for {finding_name(section.heatmap_label)}" if section.heatmap_label else ""
        label = (f"Heat map: where the model looked{what}. Red to yellow marks where the evidence is highest in this "
                 "film (the upper half of its range, yellow the highest); clear elsewhere. It is not a probability.")
        right = [_image_flowable(section.heatmap_png, img_w), _p(label, st.small)]
    else:
        right = [_p("No heat map was stored with this study.", st.small)]
    pics = Table([[left, right]], colWidths=[84 * mm, 84 * mm], hAlign="LEFT")
    pics.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
    out.append(pics)
    if section.note:
        out.append(_p(section.note, st.body))
    if section.findings:
        assessed = sorted((f for f in section.findings if f.assessed), key=lambda f: (not f.flagged, -f.probability))
        rows = [[_p("Finding", st.cell_bold), _p("Probability", st.cell_bold), _p("Flag at", st.cell_bold),
                 _p("Flagged", st.cell_bold)]]
        rows += [[_p(finding_name(f.name), st.cell_bold if f.flagged else st.cell),
                  _p(f"{100 * f.probability:.0f}%", st.right),
                  _p("" if f.threshold is None else f"{100 * f.threshold:.0f}%", st.right),
                  _p("yes" if f.flagged else "no", st.cell)] for f in assessed[:8]]
        out.append(Spacer(1, 3))
        out.append(_grid(rows, [70 * mm, 28 * mm, 22 * mm, 20 * mm], zebra=True))
        if len(assessed) > 8:
            out.append(_p(f"{len(assessed) - 8} further findings below the shown ones are left out.", st.small))
        grey = sorted(finding_name(f.name) for f in section.findings if not f.assessed)
        if grey:   # the card's rule: flagged only where validation ROC-AUC's lower 95% bound is at least 0.70
            out.append(_p("Not assessed reliably by this model (never flagged): " + ", ".join(grey) + ".", st.tiny))
    out.append(_p("Model output to support, not replace, a radiologist's reading.", st.small))
    return out


def _sign_off_block(st: _Styles) -> list:
    """Where the clinician who acts on the report signs: a printed estimate is advice until someone owns it."""
    return [Spacer(1, 8), _p("Reviewed by (name, role): " + "_" * 30 + "   Signature: " + "_" * 18 + "   Date, time: "
                             + "_" * 12, st.small)]


def _interventions_block(data: PatientReportData, st: _Styles) -> list:
    out: list = [_p("Recommended interventions", st.h2)]
    if not data.interventions:
        out.append(_p("None of the intervention rules applies to this stay.", st.body))
        return out
    rows = [[_p("Intervention", st.cell_bold), _p("Why", st.cell_bold), _p("Status", st.cell_bold)]]
    for r in data.interventions:
        if r.status == "recommended":
            status = "Recommended"
        else:
            status = f"{r.status.capitalize()} {(r.done_at or '')[:10]} by {r.done_by or '?'}"
        rows.append([_p(r.title, st.cell_bold), _p(r.why, st.cell), _p(status, st.cell)])
    out.append(_grid(rows, [56 * mm, 80 * mm, 32 * mm], zebra=True, pad=st.pad))
    out.append(_p("From fixed rules on the record and the risk band; each line says what triggered it.", st.small))
    return out


def _models_block(data: PatientReportData, st: _Styles) -> list:
    parts = " · ".join(f"<b>{escape(name)}</b>: {escape(version)}" for name, version in data.models)
    return [Spacer(1, 6), Paragraph(f"Models: {parts}. Model cards (data, metrics, limits) are in WardLens. "
                                    "These estimates support clinical judgement; they do not replace it.", st.small)]


def render_patient_report(data: PatientReportData) -> bytes:
    """Draw the patient risk report (A4 PDF) from collected data.

    A report that spills onto a second page is drawn again a little tighter, and that version is kept when it
    needs fewer pages: a typical report is one page, never one page plus a near-empty second.
    """
    pdf, pages = _render_patient_report(data, compact=False)
    if pages > 1:
        tight, tight_pages = _render_patient_report(data, compact=True)
        if tight_pages < pages:
            return tight
    return pdf


def _render_patient_report(data: PatientReportData, compact: bool) -> tuple[bytes, int]:
    st = _styles(compact)
    fonts = report_fonts()
    who = f"{data.patient.display_name} · {data.patient.mrn}" if data.sees_names else "de-identified"
    story: list = _title_block("Patient risk report", _printed_line(
        data.site, f"printed {_fmt_date(data.printed_at, with_time=True)} by {data.printed_by}"), data.logo, st)
    story += [Spacer(1, 5), _header_block(data, st)]
    story += _risk_block(data, st, fonts)
    story.append(KeepTogether(_scores_block(data, st)))
    story += _los_block(data, st)
    if data.xray is not None:
        story.append(KeepTogether(xray_flowables(data.xray, st)))
    elif "xray" in data.notes:
        story += [_p("Chest X-ray findings", st.h2), _p(data.notes["xray"], st.body)]
    story += _interventions_block(data, st)
    story.append(KeepTogether(_models_block(data, st) + _sign_off_block(st)))
    footer = f"Printed by {data.printed_by}, {_fmt_date(data.printed_at, with_time=True)}"
    running = f"Patient risk report · {who} · encounter {data.encounter.encounter_nbr}"
    title = f"Patient risk report {data.patient.mrn}" if data.sees_names else "Patient risk report"
    return _build_counted(story, title, data.printed_by, footer, running)


def patient_report_pdf(src: Any, patient_id: int, encounter_nbr: int | None = None,
                       now: dt.datetime | None = None) -> bytes:
    """The patient risk report as PDF bytes. Needs PRINT; names follow the session; audited as 'print'."""
    session = src.session
    session.require(Permission.PRINT, "print reports")
    data = collect_patient_report(src, patient_id, encounter_nbr, now)
    pdf = render_patient_report(data)
    session.log("print", "patient", patient_id, f"risk report, encounter {data.encounter.encounter_nbr}, "
                                                f"{'identified' if data.sees_names else 'de-identified'}")
    return pdf


# ------------------------------------------------------------------------------ ward report
@dataclass(frozen=True)
class CensusLine:
    ward: str
    bed: str
    patient: str
    mrn: str
    days_in: int
    los_text: str          # "4.4 d (2–6)" or "—"
    expected_discharge: str
    risk: float | None
    band: str


def _census(src: Any, today: dt.date) -> tuple[list[CensusLine], list[Any], list[str]]:
    """Current inpatients as the census states them (services.capacity.census: the same stay estimate as Beds &
    Staff and the patient page), their readmission risk, and the ward forecasts."""
    session = src.session
    notes: list[str] = []
    estimated = True
    try:
        inpatients = src.capacity.census.inpatients(today)
    except Exception as exc:  # noqa: BLE001 - without the LOS model the beds are still occupied: list who is in them
        notes.append(f"Length-of-stay estimates and the occupancy forecast are not available ({type(exc).__name__}).")
        inpatients, estimated = src.capacity.census.occupants(today), False
    if not inpatients:
        return [], [], notes
    risk: dict[int, tuple[float | None, str]] = {}
    try:
        scored = src.risk.assessments.readmission_many({p.encounter_nbr: p.patient_id for p in inpatients})
        risk = {nbr: (a.probability, a.band) for nbr, a in scored.items()}
    except Exception as exc:
        notes.append(f"Readmission risk not available ({type(exc).__name__}).")
    names = session.sees_names
    out = []
    for p in inpatients:
        stay = p.stay if estimated else None
        los_text = stay.stay_text if stay else "—"
        exp = "not available" if stay is None else (
            "beyond model range" if stay.expected_discharge is None else _fmt_date(stay.expected_discharge))
        prob, band = risk.get(p.encounter_nbr, (None, ""))
        out.append(CensusLine(p.ward or "No ward", p.bed, p.patient_label, p.mrn if names else "", p.days_in,
                              los_text, exp, prob, band))
    forecasts: list[Any] = []
    try:
        if estimated:
            forecasts = src.capacity.census.forecasts(today, inpatients=inpatients)
    except Exception as exc:  # noqa: BLE001
        notes.append(f"Occupancy forecast not available ({type(exc).__name__}).")
    return out, forecasts, notes


def _risk_cell(line: CensusLine, st: _Styles) -> Paragraph:
    if line.risk is None:
        return _p(line.band or "—", st.cell)
    colour = BAND_COLOURS.get(line.band, INK).hexval()
    return Paragraph(f'<font color="{colour}">{100 * line.risk:.0f}% {escape(line.band)}</font>', st.cell)


def forecast_drawing(f: Any, fonts: tuple[str, str], width: float = 168 * mm, height: float = 42 * mm) -> Drawing:
    """The ward's forecast as the Beds & Staff chart draws it: expected occupancy with its 80% band, the part of it
    that is today's patients still in (grey; the arrivals are the rest), the capacity, the days that may overflow
    (triangles) and the peak (ring, WardForecast.peak)."""
    d = Drawing(width, height)
    days = f.days
    if not days:
        return d
    left, right, bottom, top = 22.0, 6.0, 14.0, 6.0
    pw, ph = width - left - right, height - bottom - top
    y_max = max(f.capacity, max(x.high for x in days)) * 1.15 + 1

    def px(i: float) -> float:
        return left + pw * (i + 0.5) / len(days)

    def py(v: float) -> float:
        return bottom + ph * v / y_max

    step = max(1, int(round(y_max / 5)))
    for v in range(0, int(y_max) + 1, step):  # y grid and labels
        d.add(Line(left, py(v), left + pw, py(v), strokeColor=RULE, strokeWidth=0.3))
        d.add(String(left - 3, py(v) - 2.5, str(v), fontName=fonts[0], fontSize=6.5, fillColor=MUTED,
                     textAnchor="end"))
    # today's patients still in (grey, falling as they go home); the arrivals are the rest up to the expected line
    staying = [(px(x.day_index), py(x.staying)) for x in days] + [(px(x.day_index), py(0)) for x in reversed(days)]
    d.add(Polygon([c for xy in staying for c in xy], fillColor=colors.HexColor("#8a99a3"), fillOpacity=0.22,
                  strokeColor=None))
    band = [(px(x.day_index), py(x.high)) for x in days] + [(px(x.day_index), py(x.low)) for x in reversed(days)]
    d.add(Polygon([c for xy in band for c in xy], fillColor=colors.HexColor("#0e7a93"), fillOpacity=0.18,
                  strokeColor=None))
    d.add(Line(left, py(f.capacity), left + pw, py(f.capacity), strokeColor=BAND_COLOURS["high"], strokeWidth=1,
               strokeDashArray=[3, 2]))
    for a, b in zip(days, days[1:]):
        d.add(Line(px(a.day_index), py(a.mean), px(b.day_index), py(b.mean), strokeColor=colors.HexColor("#0b5f73"),
                   strokeWidth=1.6))
    for x in days:
        if x.at_risk:
            cx, cy = px(x.day_index), py(x.high)
            d.add(Polygon([cx - 2.5, cy + 4, cx + 2.5, cy + 4, cx, cy], fillColor=BAND_COLOURS["high"], strokeColor=None))
        if x.day_index % 2 == 0:
            d.add(String(px(x.day_index), 3, x.date.strftime("%a %d"), fontName=fonts[0], fontSize=6.5,
                         fillColor=MUTED, textAnchor="middle"))
    peak = f.peak
    d.add(Circle(px(peak.day_index), py(peak.mean), 2.6, fillColor=colors.white,
                 strokeColor=colors.HexColor("#0b5f73"), strokeWidth=1.4))
    d.add(String(left + pw, py(f.capacity) + 2.5, f"capacity {f.capacity}", fontName=fonts[0], fontSize=6.5,
                 fillColor=BAND_COLOURS["high"], textAnchor="end"))
    return d


def ward_report_pdf(src: Any, ward: str | None = None, today: dt.date | None = None,
                    now: dt.datetime | None = None) -> bytes:
    """Census per ward (bed, patient, days in, predicted stay, expected discharge, risk), the high-risk
    list and an occupancy table (with the 14-day forecast where services.capacity.census provides it).

    ward: one ward's name, or None for all. Needs PRINT; names follow the session; audited as 'print'.
    """
    session = src.session
    session.require(Permission.PRINT, "print reports")
    now = now or dt.datetime.now()
    today = today or now.date()
    wards = src.capacity.census.wards()
    if ward is not None and ward not in {w for w, _ in wards}:
        raise ValidationError({"ward": f"no ward named {ward!r}"})
    lines, forecasts, notes = _census(src, today)
    if ward is not None:
        wards = [(w, c) for w, c in wards if w == ward]
        lines = [x for x in lines if x.ward == ward]
        forecasts = [f for f in forecasts if f.ward == ward]
    st = _styles()
    who = session.user.display_name or session.user.username
    printed_by = f"{who} ({session.user.username})" if who != session.user.username else who
    names = session.sees_names
    site, logo = _site(session.db.conn)
    story: list = _title_block(f"Ward report · {ward or 'all wards'}", _printed_line(
        site, f"census on {_fmt_date(now, with_time=True)} · printed by {printed_by}"), logo, st)
    for n in notes:
        story.append(_p(n, st.small))

    # occupancy
    story.append(_p("Occupancy", st.h2))
    fc = {f.ward: f for f in forecasts}
    head = ["Ward", "Beds", "Occupied", "Free", "Occupancy"]
    if fc:
        head += ["Peak expected in 14 days (80% band)", "Days at risk (14 d)"]
    rows = [[_p(h, st.cell_bold) for h in head]]
    for w, cap in wards:
        occ = sum(1 for x in lines if x.ward == w)
        r = [_p(w, st.cell), _p(cap, st.right), _p(occ, st.right), _p(max(0, cap - occ), st.right),
             _p(f"{100 * occ / cap:.0f}%" if cap else "—", st.right)]
        if fc:
            f = fc.get(w)
            if f is not None and f.days:  # the peak the chart below (and the Beds & Staff page) marks
                r += [_p(f.peak_text, st.cell), _p(len(f.days_at_risk), st.right)]
            else:
                r += [_p("—", st.cell), _p("—", st.right)]
        rows.append(r)
    widths = [24, 12, 19, 12, 22] + ([58, 21] if fc else [])
    story.append(_grid(rows, [w * mm for w in widths]))
    if fc:
        story.append(_p("Forecast: expected occupancy with its 80% band from each inpatient's predicted stay, the "
                        "ward's recent admissions per weekday and its share of the admissions waiting for a bed; a "
                        "day is at risk when the band exceeds the beds or overflow has 10% probability or more. Each "
                        "ward's chart below shades today's patients still in (grey: discharges take it down; the "
                        "arrivals fill the rest) and marks the peak (ring) and the days at risk (triangles).", st.small))

    # high-risk list
    high = sorted((x for x in lines if x.band == "high"), key=lambda x: -(x.risk or 0.0))
    story.append(_p(f"High readmission risk ({len(high)} inpatient{'s' if len(high) != 1 else ''})", st.h2))
    if high:
        rows = [[_p(h, st.cell_bold) for h in ("Ward", "Bed", "Patient", "Number", "Days in", "Risk",
                                                "Expected discharge")]]
        rows += [[_p(x.ward, st.cell), _p(x.bed, st.cell), _p(x.patient, st.cell), _p(x.mrn, st.cell),
                  _p(x.days_in, st.right), _risk_cell(x, st), _p(x.expected_discharge, st.cell)] for x in high]
        story.append(_grid(rows, [w * mm for w in (24, 14, 38, 22, 12, 26, 32)], zebra=True))
        story.append(_p("Risk is scored with the stay so far and will change by discharge.", st.small))
    else:
        story.append(_p("No current inpatient is in the high band.", st.body))

    # census per ward
    for w, cap in wards:
        mine = [x for x in lines if x.ward == w]
        story.append(_p(f"{w} · {len(mine)} of {cap} beds occupied", st.h2))
        f = fc.get(w)
        if f is not None and f.days:
            story.append(KeepTogether([forecast_drawing(f, report_fonts()),
                                       _p(f"Next {len(f.days)} days: expected occupied beds with the 80% band; peak "
                                          f"{f.peak_text}. On day {len(f.days)}: {f.days[-1].staying:.0f} of today's "
                                          f"patients still in, {f.days[-1].arrivals:.0f} new arrivals.", st.small),
                                       Spacer(1, 4)]))
        if f is not None and f.days:
            story.append(_staffing_table(src.capacity.census.staffing(f), st))
        if not mine:
            story.append(_p("No inpatients.", st.body))
            continue
        rows = [[_p(h, st.cell_bold) for h in ("Bed", "Patient", "Number", "Days in", "Predicted stay (80%)",
                                                "Expected discharge", "Risk")]]
        rows += [[_p(x.bed, st.cell), _p(x.patient, st.cell), _p(x.mrn, st.cell), _p(x.days_in, st.right),
                  _p(x.los_text, st.cell), _p(x.expected_discharge, st.cell), _risk_cell(x, st)] for x in mine]
        story.append(_grid(rows, [w * mm for w in (16, 38, 22, 12, 30, 26, 24)], zebra=True))
    story.append(Spacer(1, 4))
    story.append(_p("Predicted stays are given the patient is still in hospital today; 8 in 10 similar stays end "
                    "within the interval.", st.small))
    if any(x.band == NOT_ELIGIBLE for x in lines):
        story.append(_p("Risk “not eligible”: 30-day readmission risk is not scored for a stay that ends in death, "
                        "hospice care or a transfer to another acute-care hospital, as the usual readmission measures "
                        "leave those stays out.", st.small))
    footer = f"Printed by {printed_by}, {_fmt_date(now, with_time=True)}"
    pdf = _build(story, f"Ward report {ward or 'all wards'}", printed_by, footer,
                 f"Ward report · {ward or 'all wards'} · {_fmt_date(now, with_time=True)}")
    session.log("print", "ward", ward or "all", f"ward report, {len(lines)} inpatients, "
                                                 f"{'identified' if names else 'de-identified'}")
    return pdf


STAFF_DAYS = 7


def _staffing_table(staffing: Sequence[Any], st: _Styles) -> KeepTogether:
    """Nurses per shift for the next days, as the Beds & Staff page shows them."""
    shifts = ("day", "evening", "night")
    rows = [[_p(h, st.cell_bold) for h in ("Nurses per shift", "Day", "Evening", "Night")]]
    rows += [[_p(f"{d:%a %d %b}", st.cell)] + [_p(cells[s].nurses_text if s in cells else "—", st.right) for s in shifts]
             for d, cells in staffing_by_date(staffing)[:STAFF_DAYS]]
    return KeepTogether([_grid(rows, [w * mm for w in (40, 24, 24, 24)], zebra=True),
                         _p("For the expected census – for the upper end of its 80% band, at the site's patients-per-nurse "
                            "ratios.", st.small), Spacer(1, 4)])


def pdf_page_images(pdf: bytes, dpi: int = 300) -> list:
    """Each page of a PDF as a PIL image, for printing the very document that was produced."""
    import pypdfium2 as pdfium  # imported here: only printing needs it

    doc = pdfium.PdfDocument(pdf)
    try:
        return [doc[i].render(scale=dpi / 72).to_pil() for i in range(len(doc))]
    finally:
        doc.close()
