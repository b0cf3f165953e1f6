"""PDF reports from the demo store, read back with poppler (pdftotext / pdftoppm)."""
from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from services.reports import pdf as reports
from services.site.accounts import unlock
from services.core.errors import PermissionDenied, ValidationError
from services.capacity import census as census_module
from services.reports.pdf import (XrayFinding, XraySection, heatmap_overlay_png, render_patient_report, report_fonts,
                                  xray_section_from_study)

NOW = dt.datetime.now().replace(second=0, microsecond=0)


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    src = tmp_path / "r.pdf"
    src.write_bytes(pdf)
    out = subprocess.run(["pdftotext", str(src), "-"], capture_output=True, check=True, timeout=60)
    return out.stdout.decode("utf-8")


def pdf_images(pdf: bytes) -> list[tuple[int, int]]:
    """The pixel size of every image drawn on the PDF's pages (pdfium, as the print path reads it)."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw
    doc = pdfium.PdfDocument(pdf)
    try:
        return [tuple(obj.get_px_size()) for page in doc
                for obj in page.get_objects(filter=[raw.FPDF_PAGEOBJ_IMAGE], max_depth=3)]
    finally:
        doc.close()


def flat(text: str) -> str:
    return " ".join(text.split())


def _risky_inpatient(session) -> tuple[int, int, str]:
    """An inpatient whose report has factors to show (the first by encounter number with 3+ prior stays)."""
    row = session.db.conn.execute(
        "SELECT e.patient_id, e.encounter_nbr FROM encounters e "
        "WHERE e.status = 'inpatient' ORDER BY e.number_inpatient DESC, e.encounter_nbr LIMIT 1").fetchone()
    return int(row[0]), int(row[1]), session.patient_ref(int(row[0]))   # the number is sealed: read as the session does


def chest_png(size: int = 320) -> bytes:
    img = Image.new("L", (size, size), 30)
    d = ImageDraw.Draw(img)
    d.ellipse((40, 50, 150, 280), fill=90)
    d.ellipse((170, 50, 280, 280), fill=95)
    d.ellipse((120, 150, 230, 260), fill=200)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_patient_report_content(desks, tmp_path):
    dr = desks("dr.demo", "wardlens-clinician")
    pid, nbr, mrn = _risky_inpatient(dr.session)
    data = dr.reports.patient_data(pid, now=NOW)
    assert data.encounter.encounter_nbr == nbr and data.assessment is not None
    pdf = dr.reports.patient_pdf(pid, now=NOW)
    assert pdf.startswith(b"%PDF")
    text = flat(pdf_text(pdf, tmp_path))
    a = data.assessment
    assert a.percent in text and f"{a.band.upper()} RISK" in text
    for f in a.factors:
        assert (f.text[:1].upper() + f.text[1:]) in text
    assert mrn in text and data.patient.family_name in text
    assert "Dr Demo (dr.demo)" in text and "Confidential patient information" in text
    assert "Page 1 of" in text
    assert "LACE index" in text and "HOSPITAL score" in text and "proxies" in text
    assert "Expected discharge" in text or "beyond the model" in text
    assert a.model_version in text
    for r in data.interventions:   # a title may wrap in its table cell, so its words are looked for, in order
        at = text.find("Recommended interventions")
        for w in r.title.split():
            at = text.find(w, at)
            assert at >= 0, r.title
    ev = desks("admin").session.audit.recent(5)   # the audit log is for administrators to read
    assert any(e.action == "print" and e.entity == "patient" and e.entity_id == str(pid) for e in ev)


def test_patient_report_page_renders(desks, tmp_path):
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    dr = desks("dr.demo", "wardlens-clinician")
    pid, _, _ = _risky_inpatient(dr.session)
    (tmp_path / "r.pdf").write_bytes(dr.reports.patient_pdf(pid, now=NOW))
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(tmp_path / "r.pdf"), str(tmp_path / "pg")],
                   check=True, timeout=60)
    page = next(tmp_path.glob("pg*.png"))
    with Image.open(page) as im:
        assert im.size[1] > im.size[0] > 400  # A4 portrait at 60 dpi: about 496 x 702
        ink = np.asarray(im.convert("L")) < 200
    assert ink.mean() > 0.02  # the page carries content, not a blank sheet


def test_nurse_prints_but_analyst_cannot_and_sees_no_names(desks, tmp_path):
    nurse = desks("nurse.demo", "wardlens-nurse")
    pid, _, mrn = _risky_inpatient(nurse.session)
    assert mrn in flat(pdf_text(nurse.reports.patient_pdf(pid, now=NOW), tmp_path))
    with pytest.raises(PermissionDenied):
        nurse.records.export_table(["a"], [["b"]], tmp_path / "x.csv", "report")
    analyst = desks("analyst.demo", "wardlens-analyst")
    with pytest.raises(PermissionDenied):
        analyst.reports.patient_pdf(pid)
    with pytest.raises(PermissionDenied):  # nor collect one: a patient's record is the care team's
        analyst.reports.patient_data(pid, now=NOW)


def test_xray_section_from_a_stored_study(desks, tmp_path):
    dr = desks("dr.demo", "wardlens-clinician")
    pid, nbr, _ = _risky_inpatient(dr.session)
    eid = dr.session.db.conn.execute("SELECT id FROM encounters WHERE encounter_nbr = ?", (nbr,)).fetchone()[0]
    heat = np.zeros((8, 8))
    heat[4:7, 3:6] = 2.0
    # Effusion and Edema are what the installed model may flag; Cardiomegaly was flagged under the earlier rule
    results = {"probabilities": {"Effusion": 0.71, "Edema": 0.22, "No Finding": 0.10, "Pleural_Thickening": 0.64,
                                 "Cardiomegaly": 0.30},
               "flags": {"Effusion": True, "Edema": False, "No Finding": False, "Pleural_Thickening": False,
                         "Cardiomegaly": True},
               "thresholds": {"Effusion": 0.5, "Edema": 0.3, "Pleural_Thickening": 0.2, "Cardiomegaly": 0.25},
               "not_assessed": ["Pleural_Thickening"],
               "heatmap": heat.tolist(), "heatmap_finding": "Effusion"}
    with dr.session.db.transaction() as c:
        c.execute("INSERT INTO xray_studies (patient_id, encounter_id, taken_at, format, image, width, height, results, "
                  "model_version, created_by, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                  (pid, eid, NOW.isoformat(sep=" "), "png", chest_png(), 320, 320, json.dumps(results), "xray-test-1",
                   "dr.demo", NOW.isoformat(sep=" ")))
        # a later photo that an earlier version kept as a refused study: no finding to print, so not "the latest"
        later = (NOW + dt.timedelta(hours=1)).isoformat(sep=" ")
        c.execute("INSERT INTO xray_studies (patient_id, encounter_id, taken_at, format, image, width, height, results, "
                  "model_version, created_by, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                  (pid, eid, later, "png", chest_png(), 320, 320,
                   json.dumps({"ood": True, "ood_reasons": ["a colour picture"]}), "xray-test-0", "dr.demo", later))
    text = flat(pdf_text(dr.reports.patient_pdf(pid, now=NOW), tmp_path))
    assert "Chest X-ray findings" in text and "Effusion" in text and "71%" in text
    # each finding with its probability and the threshold it is flagged at; one the model does not assess reliably
    # is named in words, in its own line, never as a flag (even at 64% over a 20% threshold, or flagged when stored)
    assert "Flag at" in text and "Effusion 71% 50% yes" in text and "Edema 22% 30% no" in text
    assert "Not assessed reliably by this model (never flagged): Cardiomegaly, Pleural thickening." in text
    assert "Pleural_Thickening" not in text and "Cardiomegaly 30%" not in text
    assert "where the model looked for Effusion" in text and "xray-test-1" in text
    assert "refused" not in text and "xray-test-0" not in text


def test_xray_section_inputs():
    png = chest_png(200)
    flat_results = xray_section_from_study(png, json.dumps({"Nodule": 0.4, "Mass": 0.1}))
    assert {f.name for f in flat_results.findings} == {"Nodule", "Mass"} and flat_results.heatmap_png is None
    refused = xray_section_from_study(png, json.dumps({"ood": True, "ood_reasons": ["not a chest radiograph"],
                                                       "probabilities": {}}))
    assert refused.findings == [] and "not a chest radiograph" in refused.note
    over = heatmap_overlay_png(png, [[0, 1], [2, 0]])
    with Image.open(io.BytesIO(over)) as im:
        assert im.size == (200, 200) and im.mode == "RGB"
    section = XraySection(png, over, [XrayFinding("Effusion", 0.6, True)])
    flow = reports.xray_flowables(section)
    assert len(flow) >= 3


def test_report_without_los_bundle_says_not_available(desks, tmp_path, monkeypatch):
    def broken():
        raise FileNotFoundError("resources/models/los/model.onnx")
    monkeypatch.setattr(census_module, "los_service", broken)
    dr = desks("dr.demo", "wardlens-clinician")
    pid, _, _ = _risky_inpatient(dr.session)
    text = flat(pdf_text(dr.reports.patient_pdf(pid, now=NOW), tmp_path))
    assert "Length-of-stay estimate not available" in text


def test_ward_report_without_los_bundle_still_lists_every_occupied_bed(desks, tmp_path, monkeypatch):
    def broken():
        raise FileNotFoundError("resources/models/los/model.onnx")
    monkeypatch.setattr(census_module, "los_service", broken)
    nurse = desks("nurse.demo", "wardlens-nurse")
    occupants = nurse.capacity.census.occupants()
    assert occupants
    text = flat(pdf_text(nurse.reports.ward_pdf(now=NOW), tmp_path))
    assert "not available" in text and "Occupied 0" not in text
    for o in occupants[:10]:
        assert o.bed in text and o.mrn in text   # a bed the model cannot estimate is still an occupied bed


def test_discharged_encounter_and_resolver(desks, tmp_path):
    dr = desks("dr.demo", "wardlens-clinician")
    pid, nbr = dr.session.db.conn.execute(
        "SELECT e.patient_id, e.encounter_nbr FROM encounters e "
        "WHERE e.status = 'discharged' AND e.discharge_disposition_id = 1 ORDER BY e.encounter_nbr LIMIT 1").fetchone()
    mrn = dr.session.patient_ref(pid)
    assert dr.records.patient_id_for(mrn) == pid
    d = dr.session.directory()
    other = next(i for i in d.order() if i != pid and d.get(i).mrn != str(i))
    with pytest.raises(ValidationError, match="no patient with number"):
        dr.records.patient_id_for(str(other))  # an internal row id is not a patient number: never another patient
    with pytest.raises(ValidationError):
        dr.records.patient_id_for("no-such-patient")
    with pytest.raises(ValidationError):
        dr.reports.patient_pdf(pid, encounter_nbr=1)
    text = flat(pdf_text(dr.reports.patient_pdf(pid, encounter_nbr=nbr, now=NOW), tmp_path))
    assert "Stayed" in text and "Discharge to Home" in text and str(nbr) in text


def test_ward_report(desks, tmp_path):
    nurse = desks("nurse.demo", "wardlens-nurse")
    pdf = nurse.reports.ward_pdf(now=NOW)
    text = flat(pdf_text(pdf, tmp_path))
    for ward in ("Medicine A", "Medicine B", "Surgery", "Cardiology", "ICU"):
        assert ward in text
    assert "Occupancy" in text and "High readmission risk" in text and "Confidential patient information" in text
    # the nurses per shift that Beds & Staff shows, ward by ward, for the same forecast
    assert text.count("Nurses per shift") == 5
    icu = next(f for f in nurse.capacity.census.forecasts(NOW.date()) if f.ward == "ICU")
    first = sorted(nurse.capacity.census.staffing(icu), key=lambda x: (x.date, x.shift))
    assert f"{first[0].date:%a %d %b}" in text
    pid, bed = nurse.session.db.conn.execute(
        "SELECT e.patient_id, b.label FROM encounters e "
        "JOIN beds b ON b.id = e.bed_id WHERE e.status = 'inpatient' LIMIT 1").fetchone()
    family = nurse.session.identity(pid).family
    assert family in text and bed in text
    # the stated peak is the one the chart marks: the busiest day of the same 14-day forecast
    for f in nurse.capacity.census.forecasts(NOW.date()):
        assert f"peak {f.peak_text}" in text, f.ward
    assert "Peak next 7 days" not in text
    one = flat(pdf_text(nurse.reports.ward_pdf(ward="ICU", now=NOW), tmp_path))
    assert "ICU" in one and "Medicine A" not in one
    with pytest.raises(ValidationError):
        nurse.reports.ward_pdf(ward="Nowhere")
    assert any(e.action == "print" and e.entity == "ward" for e in desks("admin").session.audit.recent(5))


def test_fonts_prefer_dejavu():
    regular, bold = report_fonts()
    if Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf").exists():
        assert (regular, bold) == ("WL-Sans", "WL-Sans-Bold")
    else:
        assert (regular, bold) == ("Helvetica", "Helvetica-Bold")


def test_patient_report_in_plain_words_whole_words_and_one_page(desks, tmp_path):
    """Codes in words (no 'NULL', '[70-80)', 'Discharged/transferred to SNF'), no word broken across lines,
    and a typical report on one page (no near-empty second page)."""
    dr = desks("dr.demo", "wardlens-clinician")
    pid, nbr = dr.session.db.conn.execute(
        "SELECT patient_id, encounter_nbr FROM encounters WHERE status = 'discharged' ORDER BY encounter_nbr "
        "LIMIT 1").fetchone()
    with dr.session.db.transaction() as c:
        c.execute("UPDATE encounters SET medical_specialty = 'Orthopedics-Reconstructive', discharge_disposition_id = 22, "
                  "admission_type_id = 6, age_band = '[70-80)', payer_code = 'MC' WHERE encounter_nbr = ?", (nbr,))
    pdf = dr.reports.patient_pdf(pid, encounter_nbr=nbr, now=NOW)
    text = flat(pdf_text(pdf, tmp_path))
    # flat() joins lines with a space, so a word broken across lines would not be found whole
    for words in ("Orthopedics (reconstructive)", "Transfer to a rehabilitation facility", "Age band 70–79",
                  "Admission Not recorded"):
        assert words in text, words
    for raw in ("NULL", "[70-80)", "Orthopedics-Recons", "Discharged/transf", "Not Mapped"):
        assert raw not in text, raw
    assert "Page 1 of 1" in text
    # typical reports (no X-ray study) fit one page
    ids = [r[0] for r in dr.session.db.conn.execute(
        "SELECT DISTINCT patient_id FROM encounters WHERE status = 'inpatient' ORDER BY patient_id LIMIT 6")]
    ids += [r[0] for r in dr.session.db.conn.execute("SELECT id FROM patients ORDER BY id LIMIT 6")]
    # typical reports fit one page; one that needs two (its diagnoses, factors and interventions are long) never
    # has a second page with only the models line and the sign-off on it
    two = 0
    for p in ids:
        pdf = dr.reports.patient_pdf(p, now=NOW)
        if len(reports.pdf_page_images(pdf, dpi=10)) > 1:
            two += 1
            (tmp_path / "r.pdf").write_bytes(pdf)
            second = subprocess.run(["pdftotext", "-f", "2", "-l", "2", str(tmp_path / "r.pdf"), "-"],
                                    capture_output=True, check=True, timeout=60).stdout.decode()
            assert any(h in second for h in ("Recommended interventions", "Length of stay", "Clinical scores")), p
    assert two <= len(ids) // 4, f"{two} of {len(ids)} reports need two pages"


def _rename(desk, patient_id: int, given: str, family: str) -> None:
    p = desk.records.patients.get_patient(patient_id)
    desk.records.patients.update_patient(patient_id, {"mrn": p.mrn, "given_name": given, "family_name": family,
                                                      "birth_date": p.birth_date.isoformat(), "sex": p.sex,
                                                      "race": p.race})


def test_cjk_and_arabic_names_print_in_their_scripts_on_both_reports(desks, tmp_path):
    """A Chinese name in the CJK font (not boxes), an Arabic name joined and right to left (not reversed, unjoined
    letters), on the patient report, its running header and the ward report."""
    from services.reports import scripts
    if scripts.cjk_font() is None:
        pytest.skip("no CJK font installed (installer/system-deps.sh installs fonts-droid-fallback)")
    if shutil.which("pdffonts") is None:
        pytest.skip("pdffonts (poppler-utils) is not installed")
    dr = desks("dr.demo")
    inpatients = dr.capacity.census.inpatients()
    first, second = (next(p for p in inpatients if p.ward == inpatients[0].ward and p.mrn != other)
                     for other in ("", inpatients[0].mrn))
    cjk, arabic = dr.records.patient_id_for(first.mrn), dr.records.patient_id_for(second.mrn)
    _rename(dr, cjk, "小明", "王")
    _rename(dr, arabic, "محمد", "عبد الله")
    for pdf in (dr.reports.patient_pdf(cjk, now=NOW), dr.reports.patient_pdf(arabic, now=NOW),
                dr.reports.ward_pdf(first.ward)):
        path = tmp_path / "r.pdf"
        path.write_bytes(pdf)
        fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
        text = pdf_text(pdf, tmp_path)
        if "王" in text:
            assert "DroidSansFallback" in fonts or "NotoSansCJK" in fonts
            assert "王, 小明" in text
        shaped = {c for c in text if 0xFE70 <= ord(c) <= 0xFEFF}
        if shaped:
            assert "ﻋﺒﺪ" in text or "ﺪﺒﻋ" in text, "the Arabic letters are not joined"
            assert "عبد" not in text      # never the bare, unjoined letters
    ward_text = pdf_text(dr.reports.ward_pdf(first.ward), tmp_path)
    assert "王, 小明" in ward_text and any(0xFE70 <= ord(c) <= 0xFEFF for c in ward_text)
    assert any(0xFE70 <= ord(c) <= 0xFEFF for c in pdf_text(dr.reports.patient_pdf(arabic, now=NOW), tmp_path))


def test_a_line_in_two_scripts_is_drawn_in_runs():
    from services.reports import scripts
    if scripts.cjk_font() is None:
        pytest.skip("no CJK font installed (installer/system-deps.sh installs fonts-droid-fallback)")
    pieces = scripts.runs("Patient risk report · 王, 小明 · 64564002", "WL-Sans")
    assert [f for _, f in pieces] == ["WL-Sans", scripts.CJK_FONT, "WL-Sans", scripts.CJK_FONT, "WL-Sans"]
    assert "".join(t for t, _ in pieces) == "Patient risk report · 王, 小明 · 64564002"
    assert scripts.visual("Ward A") == "Ward A"
    assert scripts.visual("عبد الله, محمد").startswith("ﺪﻤﺤﻣ")   # visual order: the first name read is rightmost
    line = scripts.visual("Patient risk report · عبد الله, محمد · 44499690 · encounter 12")
    assert line.startswith("Patient risk report · ") and line.endswith(" · 44499690 · encounter 12")


def test_a_study_stored_under_the_old_rule_prints_only_earned_flags(tmp_path):
    """Flags stored before the rule (every finding over its threshold) are not printed as flags where the model does
    not earn them now; the report names those as not assessed reliably."""
    from services.imaging.xray import flaggable_now
    earned = flaggable_now()
    assert earned and "Nodule" not in earned
    stored = {"probabilities": {"Nodule": 0.18, "Effusion": 0.5, "No Finding": 0.1},
              "flags": {"Nodule": True, "Effusion": True}, "thresholds": {"Nodule": 0.15, "Effusion": 0.33}}
    section = xray_section_from_study(chest_png(200), json.dumps(stored))
    by_name = {f.name: f for f in section.findings}
    assert by_name["Nodule"].flagged is False and by_name["Nodule"].assessed is False
    assert by_name["Effusion"].flagged is ("Effusion" in earned)
