"""The X-ray page of a patient: studies kept in the store, the selected image with its heat map, and
the findings against their thresholds. Decoding and inference run off the GUI thread."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QImage

from models.domain import Permission, XrayStudy
from services.desk import Desk
from services.imaging.studies import IdentityUnconfirmed, ImageRefused, OpenedStudy, overlay_rgba
from services.imaging.xray import finding_name
from services.imaging.dicomdir import is_dicomdir, read_dicomdir
from services.imaging.xray_image import film_description, windowed
from viewmodels.background import BackgroundRunner
from viewmodels.base import StatusViewModel
from viewmodels.session_vm import user_message


def to_qimage(rgba: np.ndarray) -> QImage:
    h, w = rgba.shape[:2]
    data = np.ascontiguousarray(rgba)
    # copy(): the QImage must own its pixels, the numpy buffer goes away with this frame
    return QImage(data.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()


NO_PATIENT = "No patient open: choose a patient on the Patients page (Ctrl+1) first."


def default_finding(result) -> str | None:
    """The map shown first (XrayResult.default_finding: the report stores and prints the same one)."""
    return result.default_finding()


def study_verdict(study: XrayStudy) -> str:
    """What the study list says about a study, in a clinician's words."""
    if study.refused:
        return "Refused: not a chest X-ray"
    return ", ".join(finding_name(f) for f, _p, flag in study.findings if flag) \
        or "No finding flagged"


class XrayViewModel(StatusViewModel):
    studiesChanged = Signal(list)
    openedChanged = Signal(object)     # OpenedStudy (its study is None for a refused image, not stored) or None
    imageChanged = Signal(QImage)
    detailChanged = Signal(str)        # technical detail behind the status line (tooltip), '' if none
    patientChanged = Signal(str)       # the label of the patient in view ('' for none)
    identityCheckNeeded = Signal(object)  # IdentityCheck of an image not yet stored: the view asks the user
    windowChanged = Signal(object)     # (centre, width) of the film in view, or None: not a film one can window
    comparisonChanged = Signal(object)  # (QImage, label) of the patient's film before the one in view, or None
    dicomdirOpened = Signal(list)      # DicomdirEntry list of a CD's index: the view lets the user pick the films

    def __init__(self, session: Desk, runner: BackgroundRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.runner = session, runner
        self.service = session.imaging.studies
        self.patient_id: int | None = None
        self.patient_label = ""
        self.studies: list[XrayStudy] = []
        self.opened: OpenedStudy | None = None
        self._heat = True
        self._finding: str | None = None
        self._detail = ""
        self._summary = ""  # the status of the image in view, before any note about its heat map
        self._pending: tuple[int | None, str] | None = None   # (patient, file) waiting for an identity decision
        self._window: tuple[float, float] | None = None   # None: the file's own window (what the model saw)
        self._queue: list[str] = []   # files chosen from a DICOMDIR, added one after another
        self._adding = False          # a file of the queue is being added (or waits for an identity decision)
        self._generation = 0          # of the renderings asked for (_render)
        self._compare = False
        self._set_status(NO_PATIENT)

    @property
    def can_add(self) -> bool:
        return self.session.can(Permission.EDIT_PATIENT)

    @property
    def heat_map_on(self) -> bool:
        return self._heat

    @property
    def detail(self) -> str:
        return self._detail

    def _set_status(self, text: str, detail: str = "") -> None:
        """Every status replaces the detail behind it (the measured values of a refusal, say)."""
        if detail != self._detail:
            self._detail = detail
            self.detailChanged.emit(detail)
        super()._set_status(text)

    def set_patient(self, patient_id: int | None, label: str = "") -> None:
        """The page follows the patient in view; nothing of the previous one stays shown or in reach."""
        if patient_id == self.patient_id:
            return
        self.patient_id, self.patient_label = patient_id, (label if patient_id is not None else "")
        self.opened = None
        self.studies = []
        self._pending = None   # an identity question about another patient's image is void
        self._queue = []       # so are films picked for that patient from a CD
        self._adding = False
        self._window = None
        self.openedChanged.emit(None)
        self.windowChanged.emit(None)
        self.comparisonChanged.emit(None)
        self.studiesChanged.emit([])
        self.patientChanged.emit(self.patient_label)
        if patient_id is None:
            self._set_status(NO_PATIENT)
            return
        self.refresh()

    @Slot()
    def refresh(self) -> None:
        pid = self.patient_id
        if pid is None:
            return
        self.runner.run("Loading X-ray studies", lambda p, c: self.service.studies(pid),
                        on_success=lambda s: self._for(pid, self._studies, s),
                        on_failure=lambda e: self._for(pid, self._set_status, user_message(e)), owner=self)

    def _for(self, pid: int | None, handler, *args) -> None:
        """Deliver a background result only while its patient is still the one in view."""
        if pid is not None and pid == self.patient_id:
            handler(*args)

    def _studies(self, studies: list[XrayStudy]) -> None:
        self.studies = studies
        self.studiesChanged.emit(studies)
        self._set_status(f"{len(studies)} studies for {self.patient_label}" if studies
                         else f"No X-ray studies for {self.patient_label} yet.")
        if studies and (self.opened is None or self.opened.study is None
                        or self.opened.study.id not in {s.id for s in studies}):
            self.open_study(studies[0].id)

    def add_file(self, path: str, identity_confirmed: bool = False) -> None:
        pid = self.patient_id
        if pid is None:
            return
        if not identity_confirmed and is_dicomdir(Path(path)):   # a CD's index: its list of images, to pick from
            self._set_status(f"Reading the index {Path(path).name}…")
            self.runner.run("Reading DICOMDIR", lambda p, c: read_dicomdir(Path(path)),
                            on_success=lambda e: self._for(pid, self._dicomdir, e),
                            on_failure=lambda e: self._for(pid, self._set_status, user_message(e)), owner=self)
            return
        self._pending = None
        self._set_status(f"Reading {Path(path).name}…")
        self.runner.run("Reading X-ray", lambda p, c: self.service.add_study(pid, Path(path),
                                                                           identity_confirmed=identity_confirmed),
                        on_success=lambda s: self._for(pid, self._added, s),
                        on_failure=lambda e: self._for(pid, self._add_failed, e, path), owner=self)

    def _dicomdir(self, entries: list) -> None:
        films = sum(e.radiograph for e in entries)
        self._set_status(f"{len(entries)} images on this medium, {films} of them radiographs (CR or DX): choose the "
                         "chest films to add to this patient's record." if entries else
                         "The DICOMDIR lists no image that is on this medium.")
        if entries:
            self.dicomdirOpened.emit(entries)

    def add_files(self, paths: list[str]) -> None:
        """Files picked from a DICOMDIR, one after another, each checked like any image (identity, header, model);
        more picked while some are still being added join the end of the line."""
        self._queue.extend(p for p in paths if not is_dicomdir(Path(p)))
        if not self._adding:
            self._next()

    def _next(self) -> None:
        self._adding = bool(self._queue) and self.patient_id is not None
        if self._adding:
            self.add_file(self._queue.pop(0))

    @Slot()
    def confirm_identity(self) -> None:
        """The user confirmed that the image waiting for it belongs to the patient in view: add it (audited)."""
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == self.patient_id:
            self.add_file(pending[1], identity_confirmed=True)

    @Slot()
    def decline_identity(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self._set_status(f"{Path(pending[1]).name} was not added to {self.patient_label}'s record.")
        self._next()

    def _drop_unstored(self) -> None:
        """A refused film that was never stored leaves the page when the next file is answered: its banner must not
        stand beside another file's message or identity question as if about that file."""
        if self.opened is not None and self.opened.study is None:
            self.opened = None
            self.windowChanged.emit(None)
            self.comparisonChanged.emit(None)
            self.openedChanged.emit(None)

    def _add_failed(self, exc: BaseException, path: str = "") -> None:
        if isinstance(exc, IdentityUnconfirmed):   # whose image is it? the user decides, seeing both side by side
            self._drop_unstored()
            self._pending = (self.patient_id, path)
            self._set_status(str(exc))
            self.identityCheckNeeded.emit(exc.check)
        elif isinstance(exc, ImageRefused):  # show what was refused (the view says why), though it was not stored
            self._show(exc.opened, f"{exc.source_name} was not added to the patient's record.")
            self._next()
        else:
            self._drop_unstored()
            self._set_status(user_message(exc))
            self._next()

    def _added(self, study: XrayStudy) -> None:
        self.opened = None
        self.refresh()
        self._next()

    @Slot(int)
    def open_study(self, study_id: int) -> None:
        pid = self.patient_id
        self._set_status("Reading the image…")
        self.runner.run("Opening X-ray", lambda p, c: self.service.open(study_id),
                        on_success=lambda o: self._for(pid, self._opened, o),
                        on_failure=lambda e: self._for(pid, self._set_status, user_message(e)), owner=self)

    def _opened(self, opened: OpenedStudy) -> None:
        r = opened.result
        if r.ood:  # a study stored before refused images were no longer kept
            text = f"{opened.study.source_name}: refused when it was added; it has no findings."
        else:
            flagged = [finding_name(f) for f in r.flagged]
            film = film_description(opened.image.meta) if opened.image is not None else ""
            text = f"{opened.study.source_name}{' (' + film + ')' if film else ''}: " + (
                ", ".join(flagged) + " flagged." if flagged else "no finding flagged.")
        self._show(opened, text)

    def _show(self, opened: OpenedStudy, text: str) -> None:
        self.opened = opened
        self._window = None   # each film opens in its own window
        image = opened.image
        self.windowChanged.emit(image.default_window() if image is not None and image.can_window else None)
        self._finding = default_finding(opened.result)
        details = opened.result.ood_details
        self._summary = text
        self._set_status(text, "Why it was refused (measured against the model's limits): " + "; ".join(details)
                         if details else "")
        self.openedChanged.emit(opened)
        self._render()
        self._load_comparison()

    # --- window/level (DICOM) and the comparison with the previous film ---------------------------------------
    @property
    def window_range(self) -> tuple[float, float] | None:
        o = self.opened
        return o.image.value_range() if o is not None and o.image is not None and o.image.can_window else None

    @Slot(float, float)
    def set_window(self, centre: float, width: float) -> None:
        """The film in view under another window; the findings stay those of the file's own window."""
        o = self.opened
        if o is None or o.image is None or not o.image.can_window:
            return
        new = (float(centre), max(float(width), 1.0))
        if new != self._window:
            self._window = new
            self._render()

    @Slot()
    def reset_window(self) -> None:
        o = self.opened
        if self._window is not None and o is not None and o.image is not None:
            self._window = None
            self.windowChanged.emit(o.image.default_window())
            self._render()

    @Slot(bool)
    def set_compare(self, on: bool) -> None:
        if on != self._compare:
            self._compare = on
            self._load_comparison()

    def previous_study(self) -> XrayStudy | None:
        """The patient's stored film taken before the one in view (studies are newest first), refused ones aside."""
        o = self.opened
        if o is None or o.study is None:
            return None
        ids = [s.id for s in self.studies]
        if o.study.id not in ids:
            return None
        return next((s for s in self.studies[ids.index(o.study.id) + 1:] if not s.refused), None)

    def _load_comparison(self) -> None:
        prev = self.previous_study() if self._compare else None
        if prev is None:
            self.comparisonChanged.emit(None if not self._compare else (None, "No earlier film of this patient."))
            return
        pid, current = self.patient_id, self.opened

        def job(progress, cancel):
            other = self.service.open(prev.id)
            return to_qimage(overlay_rgba(other.image.pixels, None)), other

        def shown(result) -> None:
            image, other = result
            if self.opened is not current:
                return
            film = film_description(other.image.meta)
            self.comparisonChanged.emit((image, f"Earlier film: {other.study.source_name}, added "
                                                f"{other.study.created_at[:10]}{' (' + film + ')' if film else ''}"))
        self.runner.run("Opening the earlier film", job, on_success=lambda r: self._for(pid, shown, r),
                        on_failure=lambda e: self._for(pid, self._set_status, user_message(e)), owner=self)

    @Slot(bool)
    def set_heat_map(self, on: bool) -> None:
        if on != self._heat:
            self._heat = on
            self._render()

    @Slot(str)
    def set_finding(self, finding: str) -> None:
        if finding and finding != self._finding:
            self._finding = finding
            self._render()

    def _render(self) -> None:
        """Blending a large radiograph with its map takes long enough to stay off the GUI thread."""
        o = self.opened
        if o is None:
            return
        finding, heat_on, window = self._finding, self._heat, self._window
        self._generation += 1
        generation = self._generation   # only the newest rendering is shown: an older window's must not land last

        def job(progress, cancel):
            heat = o.result.heatmap(finding) if heat_on and not o.result.ood else None
            pixels = windowed(o.image, *window) if window is not None else o.image.pixels
            return overlay_rgba(pixels, heat), heat is not None and not heat.any()

        def shown(result) -> None:
            if self.opened is not o or generation != self._generation:   # another image, patient or window since
                return
            rgba, empty = result
            self.imageChanged.emit(to_qimage(rgba))
            note = (f" The heat map of {finding_name(finding)} is empty: the model's evidence for it is the same "
                    "across the film." if empty else "")  # say so rather than show nothing silently
            self._set_status(self._summary + note, self._detail)

        self.runner.run("Drawing heat map", job, on_success=shown, owner=self)
