"""X-ray studies of a patient: the image bytes live inside the encrypted store (never as a loose file);
each study is decoded, checked and classified off the GUI thread by the caller.

An image the model refuses as not a chest radiograph is not stored: the record keeps only films it can read
(the patient report shows the latest study; a wrongly picked photo or another body part does not belong in
the record), the refusal is audited, and the caller gets ImageRefused with the decoded image and the verdict
so that the user sees what was refused and why. Studies refused before this rule stay listed as refused."""
from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from models.domain import Patient, Permission, XrayStudy
from services.store import audit
from services.core.errors import ValidationError, WardLensError
from services.records.patients import PatientService
from services.site.session import Session
from services.imaging.xray import XrayResult, XrayService, bundled_xray, flaggable_now, is_finding, normalised_map
from services.imaging.xray_image import (MAX_FILE_BYTES, ImageTooLarge, LoadedImage, XrayImageError, load_xray_bytes,
                                         without_identity)

def xray_service() -> XrayService:
    """The X-ray model the studies use: the bundled one, loaded once per process."""
    return bundled_xray()


@dataclass
class OpenedStudy:
    study: XrayStudy | None  # None: an image that was refused and therefore not stored
    image: LoadedImage
    result: XrayResult


@dataclass(frozen=True)
class IdentityRow:
    field: str
    in_image: str
    in_record: str
    match: bool | None       # None: the image does not say


@dataclass(frozen=True)
class IdentityCheck:
    """The image's patient identity (DICOM) side by side with the record it is about to join."""

    rows: tuple[IdentityRow, ...]
    needs_confirmation: bool
    reason: str              # in words: why a person must confirm ("" when the image names this patient)

    @property
    def summary(self) -> str:
        return "; ".join(f"{r.field}: image {r.in_image or '—'} / record {r.in_record or '—'}" for r in self.rows)


class IdentityUnconfirmed(WardLensError):
    """The image's identity does not show that it belongs to the patient: nothing was stored."""

    def __init__(self, source_name: str, check: IdentityCheck) -> None:
        self.source_name, self.check = source_name, check
        super().__init__(f"{source_name or 'The image'}: {check.reason} It was not added; confirm that it belongs to "
                         "this patient to add it.")


def _norm(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def identity_check(patient: Patient, image: LoadedImage) -> IdentityCheck:
    """Compare a DICOM's PatientID, PatientName, PatientBirthDate and PatientSex with the record. A PNG or JPEG
    carries no identity, so a person must always confirm it; so must a DICOM that contradicts the record in any
    field, or that names nobody (anonymised)."""
    if image.source_format != "dicom":
        return IdentityCheck((), True, "this image file carries no patient identity (PNG or JPEG).")
    m = image.meta
    name = m.get("PatientName", "")
    family, _, rest = name.partition("^")
    given = rest.split("^")[0]   # DICOM PN: family^given^middle^prefix^suffix
    born = m.get("PatientBirthDate", "").strip()
    born_text = f"{born[:4]}-{born[4:6]}-{born[6:8]}" if len(born) == 8 and born.isdigit() else born
    sex = {"F": "Female", "M": "Male", "O": "Other"}.get(m.get("PatientSex", "").strip().upper(), m.get("PatientSex", ""))
    record_name = f"{patient.family_name or ''}, {patient.given_name or ''}".strip(", ")
    record_born = patient.birth_date.isoformat() if patient.birth_date else ""

    def row(field: str, image_value: str, record_value: str, same: bool) -> IdentityRow:
        return IdentityRow(field, image_value.strip(), record_value,
                           None if not image_value.strip() else (same if record_value else False))

    rows = (
        row("Patient number", m.get("PatientID", ""), patient.mrn,
            _norm(m.get("PatientID", "")) == _norm(patient.mrn)),
        row("Name", name.replace("^", ", ", 1).replace("^", " "), record_name,
            _norm(family) == _norm(patient.family_name or "")
            and (not given or _norm(given) == _norm(patient.given_name or ""))),
        row("Birth date", born_text, record_born, born_text == record_born),
        row("Sex", sex, patient.sex or "", sex == (patient.sex or "")),
    )
    wrong = [r.field.lower() for r in rows if r.match is False]
    if wrong:
        listed = wrong[0] if len(wrong) == 1 else f"{', '.join(wrong[:-1])} and {wrong[-1]}"
        return IdentityCheck(rows, True, f"the image's {listed} {'differs' if len(wrong) == 1 else 'differ'} from this "
                                         "patient's record.")
    if not any(r.match for r in rows):
        return IdentityCheck(rows, True, "the image names no patient (it is anonymised).")
    if rows[0].match is not True:
        return IdentityCheck(rows, True, "the image does not carry this patient's number.")
    return IdentityCheck(rows, False, "")


class ImageRefused(WardLensError):
    """The image decoded but is not a chest radiograph the model can read; nothing was stored."""

    def __init__(self, source_name: str, image: LoadedImage, result: XrayResult) -> None:
        self.source_name, self.image, self.result = source_name, image, result
        super().__init__(f"{result.refusal_message} {source_name or 'The image'} was not added to the patient's record.")

    @property
    def opened(self) -> OpenedStudy:
        return OpenedStudy(None, self.image, self.result)


def _to_study(row) -> XrayStudy:
    sid, pid, name, fmt, w, h, created, by, version, results = row
    r = json.loads(results or "{}")
    probs: dict[str, float] = r.get("probabilities", {})
    flags: dict[str, bool] = r.get("flags", {})
    earned = flaggable_now()   # a study stored under an earlier rule keeps only the flags the model still earns
    findings = tuple(sorted(((k, float(v), bool(flags.get(k)) and k in earned) for k, v in probs.items()
                             if is_finding(k)), key=lambda t: -t[1]))   # No Finding is a class, not a finding
    return XrayStudy(sid, pid, name, fmt, w, h, created, by, version or "", bool(r.get("ood")), findings,
                     tuple(r.get("ood_reasons", [])))


def overlay_rgba(gray: np.ndarray, heat: np.ndarray | None, alpha: float = 0.55) -> np.ndarray:
    """The radiograph as RGBA with the heat map (0..1, normalised within the film) blended in: the upper half of the
    film's range in red rising to yellow where the evidence is highest, the rest clear. The one overlay of the X-ray
    page and the printed report."""
    g = np.clip(gray, 0, 255).astype(np.float32)
    rgb = np.repeat(g[..., None], 3, axis=2)
    if heat is not None:
        h = np.clip(heat, 0.0, 1.0)[..., None]
        colour = np.concatenate([np.full_like(h, 255.0), 255.0 * h, np.zeros_like(h)], axis=2)
        a = alpha * np.clip((h - 0.5) / 0.5, 0.0, 1.0)
        rgb = rgb * (1 - a) + colour * a
    out = np.empty(g.shape + (4,), np.uint8)
    out[..., :3] = np.clip(rgb, 0, 255).astype(np.uint8)
    out[..., 3] = 255
    return out


def png_bytes(rgba_or_gray: np.ndarray, max_side: int = 1024) -> bytes:
    im = Image.fromarray(rgba_or_gray)
    im.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


class XrayStudyService:
    def __init__(self, session: Session, patients: PatientService) -> None:
        self.s = session
        self.patients = patients

    def add_study(self, patient_id: int, data: bytes | Path, source_name: str = "",
                  identity_confirmed: bool = False) -> XrayStudy:
        """Decode (with its guards), check whose image it is, classify and store it for a patient. Nothing is
        stored when the file is unreadable (XrayImageError), when its identity does not show it is this patient's
        and no one confirmed it (IdentityUnconfirmed; a confirmation is audited with what differed), or when the
        model refuses it as not a chest radiograph (ImageRefused, audited with its measured reasons)."""
        self.s.require(Permission.EDIT_PATIENT, "add X-ray images")
        if isinstance(data, Path):
            source_name = source_name or data.name
            if data.stat().st_size > MAX_FILE_BYTES:
                raise ImageTooLarge(f"{data.name} is larger than {MAX_FILE_BYTES // 2**20} MB and is refused.")
            data = data.read_bytes()
        image = load_xray_bytes(data, source_name or "image")
        result = xray_service().classify_image(image)
        if result.ood:
            with self.s.db.transaction() as c:
                if not c.execute("SELECT 1 FROM patients WHERE id = ?", (patient_id,)).fetchone():
                    raise ValidationError({"patient": f"no patient with id {patient_id}"})
                audit.append(c, self.s.user.username, "xray_refused", "patient", patient_id,   # no file name: it may
                             f"image not stored: not a chest radiograph ({'; '.join(result.ood_details)})"[:200])  # name someone
            raise ImageRefused(source_name, image, result)
        # a chest film: before it joins a record, whose is it? (a refused picture is never stored, so not asked)
        check = identity_check(self.patients.get_patient(patient_id), image)   # the record's reader and its checks
        if check.needs_confirmation and not identity_confirmed:
            raise IdentityUnconfirmed(source_name, check)
        h, w = image.pixels.shape[:2]
        results = {"probabilities": result.probabilities, "flags": result.flags, "thresholds": result.thresholds,
                   "ood": False, "ood_reasons": [], "ood_distance": result.ood_distance,
                   "not_assessed": result.not_assessed}
        top = result.default_finding()
        if top:  # the coarse map of the finding the page opens on travels with the study (for reports)
            results["heatmap"] = np.round(normalised_map(result.cam[result.classes.index(top)]), 3).tolist()
            results["heatmap_finding"] = top
        now = dt.datetime.now().isoformat(sep=" ", timespec="seconds")
        data = without_identity(data, image.source_format, source_name or "image")   # the header names the patient
        with self.s.db.transaction() as c:
            if not c.execute("SELECT 1 FROM patients WHERE id = ?", (patient_id,)).fetchone():
                raise ValidationError({"patient": f"no patient with id {patient_id}"})
            enc = c.execute("SELECT id FROM encounters WHERE patient_id = ? AND status = 'inpatient'", (patient_id,)).fetchone()
            cur = c.execute("INSERT INTO xray_studies (patient_id, encounter_id, taken_at, source_name, format, image, width, "
                            "height, results, model_version, created_by, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                            (patient_id, enc[0] if enc else None, now,
                             self.s.codec.text_in("xray_studies", "source_name", patient_id, source_name[:200]),
                             image.source_format, data, w, h,
                             json.dumps(results), xray_service().version, self.s.user.username, now))
            sid = int(cur.lastrowid)
            if check.needs_confirmation:   # a person vouched for whose image it is: say who, and what they saw
                # which fields differed, never their values: the audit log is readable by every role
                differed = ", ".join(r.field.lower() for r in check.rows if r.match is not True) or "none shown"
                audit.append(c, self.s.user.username, "xray_identity_confirmed", "xray_study", sid,
                             f"patient {patient_id}: confirmed although these did not match: {differed}"[:200])
            verdict = ", ".join(result.flagged) or "no finding flagged"
            audit.append(c, self.s.user.username, "create", "xray_study", sid, f"patient {patient_id}: {verdict}"[:200])
        return self.study(sid, log=False)

    def _rows(self, where: str, args: tuple):
        text = self.s.codec.text_out   # file names are sealed: they may name the patient
        return [(sid, pid, text("xray_studies", "source_name", pid, name), *rest) for sid, pid, name, *rest in
                self.s.db.conn.execute(
                    "SELECT id, patient_id, source_name, format, width, height, created_at, created_by, model_version, "
                    f"results FROM xray_studies WHERE {where} ORDER BY id DESC", args).fetchall()]

    def latest_read_study(self, patient_id: int, encounter_id: int | None) -> tuple | None:
        """(image, results json, taken, model version) of the latest study of this stay (else of the patient)
        that the model read: refused images are no longer stored, but earlier versions kept some, and a refusal
        is no finding to print."""
        self.s.require(Permission.READ_DEIDENTIFIED, "see X-ray studies")
        conn = self.s.db.conn
        for sid, results in conn.execute(
                "SELECT id, results FROM xray_studies WHERE patient_id = ? "
                "ORDER BY encounter_id IS NOT DISTINCT FROM ? DESC, coalesce(taken_at, created_at) DESC, id DESC", (patient_id, encounter_id)):
            try:
                refused = bool(json.loads(results).get("ood"))
            except (TypeError, ValueError, AttributeError):
                refused = False  # unreadable results: let the report say the study could not be shown
            if not refused:
                return conn.execute("SELECT image, results, coalesce(taken_at, created_at), coalesce(model_version, '') "
                                    "FROM xray_studies WHERE id = ?", (sid,)).fetchone()
        return None

    def studies(self, patient_id: int) -> list[XrayStudy]:
        self.s.require(Permission.READ_DEIDENTIFIED, "see X-ray studies")
        out = [_to_study(r) for r in self._rows("patient_id = ?", (patient_id,))]
        self.s.log("read", "xray_studies", patient_id, f"{len(out)} studies")
        return out

    def study(self, study_id: int, log: bool = True) -> XrayStudy:
        self.s.require(Permission.READ_DEIDENTIFIED, "see X-ray studies")
        rows = self._rows("id = ?", (study_id,))
        if not rows:
            raise ValidationError({"study": f"no X-ray study {study_id}"})
        if log:
            self.s.log("read", "xray_study", study_id)
        return _to_study(rows[0])

    def open(self, study_id: int) -> OpenedStudy:
        """Decode the stored image and run the model again for its heat map (maps are not stored)."""
        self.s.require(Permission.READ_DEIDENTIFIED, "see X-ray studies")
        row = self.s.db.conn.execute("SELECT image FROM xray_studies WHERE id = ?", (study_id,)).fetchone()
        if row is None:
            raise ValidationError({"study": f"no X-ray study {study_id}"})
        try:
            image = load_xray_bytes(bytes(row[0]), "stored image")
        except XrayImageError as exc:  # should not happen: it decoded when stored
            raise ValidationError({"study": f"the stored image cannot be decoded: {exc}"}) from exc
        # a film in the record was accepted when it was added: its header is not judged again under a later rule
        return OpenedStudy(self.study(study_id), image, xray_service().classify_image(image, check_header=False))

    def report_images(self, study_id: int) -> tuple[bytes, bytes | None, list[tuple[str, float, bool]]]:
        """PNG of the image, PNG with the heat map the page opens on (None if refused), and the findings."""
        opened = self.open(study_id)
        plain = png_bytes(overlay_rgba(opened.image.pixels, None))
        heat = None if opened.result.ood else png_bytes(overlay_rgba(
            opened.image.pixels, opened.result.heatmap(opened.result.default_finding())))
        return plain, heat, list(opened.study.findings)
