"""Chest X-ray classification with the bundled ONNX model: 15 probabilities, flags, heat map, OOD guard.

The bundle resources/models/xray/ holds model.onnx, card.json/card.md, a signed manifest.json and the sidecar
xray_meta.json (class order, per-class thresholds chosen on validation, OOD limits). Both
are checked against the manifest before anything is used. The ONNX graph returns, for a batch of preprocessed images:
probs (N,15), cam (N,15,h,w) class activation maps (their spatial mean is the logit, so the heat map
explains exactly the score shown) and ood (N,) the squared Mahalanobis distance of the network's pooled
features to those of the training radiographs.

An image is refused (ood=True, no probabilities) when it fails simple intensity checks (blank, noise,
colour photo, mostly saturated) or when its features are farther from chest radiographs than the limit.
A refusal is told in plain words (`ood_reasons`, `refusal_message`); the measured values against their
limits (`ood_details`) are for a details pane, the log and the CSV, not for the sentence a clinician reads.
No torch, no Qt here: usable from the command line, tests and view-models alike.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from PIL import Image

from services.core.outputs import csv_output
from services.inference.shared import shared_model
from services.inference.onnx_runtime import MODELS_DIR, ModelIntegrityError, load_bundle, read_bundle
from services.imaging.xray_image import (MODEL_SIZE, LoadedImage, XrayImageError, load_xray, normalize, preprocess,
                                 to_model_size)

NO_FINDING = "No Finding"

SIDECAR = "xray_meta.json"
DEFAULT_BUNDLE = MODELS_DIR / "xray"
NOT_A_CHEST_FILM = "This does not look like a frontal chest radiograph"
UNLIKE_TRAINING = "it does not resemble the chest radiographs the model learned from"
_log = logging.getLogger(__name__)


def intensity_stats(u8: np.ndarray) -> dict[str, float]:
    """Cheap statistics of a MODEL_SIZE uint8 image; the same code set the limits at training time.

    std: contrast (blank images have ~0); hf_ratio: mean |x - 3x3 box blur| / std, large for noise since
    radiographs are smooth at 128 px; saturated: fraction of pixels at the ends of the range.
    """
    x = np.asarray(u8, dtype=np.float32)
    std = float(x.std())
    pad = np.pad(x, 1, mode="edge")
    blur = sum(pad[i:i + x.shape[0], j:j + x.shape[1]] for i in range(3) for j in range(3)) / 9.0
    hf = float(np.abs(x - blur).mean() / max(std, 1e-3))
    sat = float(((x <= 2) | (x >= 253)).mean())
    return {"std": std, "hf_ratio": hf, "saturated": sat}


def is_finding(name: str) -> bool:
    """The one rule: "No Finding" is a class of the model, not a finding to flag, map or list."""
    return name != NO_FINDING


# Modalities that are never a chest film (CT, MR, ultrasound, nuclear, dental panoramic, angiography …). CR, DX, DR,
# RG and the secondary captures (OT, SC) in which scanned films arrive go on to the image check.
NOT_RADIOGRAPHS = {"CT", "MR", "US", "NM", "PT", "MG", "XA", "RF", "PX", "IO", "OP", "OPT", "ES", "SM", "XC", "IVUS",
                   "OCT", "SR", "SEG", "ECG", "KO", "PR", "DOC", "HD", "REG", "RTIMAGE", "RTSTRUCT", "RTPLAN", "RTDOSE",
                   "RTRECORD", "BMD", "TG", "AU", "EPS"}
CHEST_WORDS = ("CHEST", "THORA", "TORA", "TORSO", "LUNG", "CXR", "PECHO", "BRUST")   # CHEST AP, THORAX, TORACE …
NO_INFORMATION = {"", "UNKNOWN", "OTHER", "NONE", "N/A", "NA"}


def dicom_header_refusal(meta: dict[str, str]) -> tuple[str, str] | None:
    """(plain reason, header detail) when a DICOM's own header says it is no frontal chest radiograph: a modality
    that is never a film, a body part with no chest word in it, or a lateral view (the model reads PA/AP films).
    Empty and "unknown" fields say nothing; BodyPartExamined is often loosely filled, so any chest word will do."""
    modality = (meta.get("Modality") or "").strip().upper()
    part = " ".join((meta.get("BodyPartExamined") or "").upper().replace("_", " ").split())
    view = (meta.get("ViewPosition") or "").strip().upper()
    if modality in NOT_RADIOGRAPHS:
        return f"the file says it is a {modality} image, not a radiograph", f"Modality {modality}"
    if part not in NO_INFORMATION and not any(w in part for w in CHEST_WORDS):
        return f"the file says it shows the {part.lower()}, not the chest", f"BodyPartExamined {part}"
    if "LAT" in view or view in ("LL", "RL", "LLD", "RLD") or "OBL" in view or view in ("LAO", "RAO", "LPO", "RPO"):
        return "it is a lateral or oblique view; the model reads frontal (PA or AP) chest films", f"ViewPosition {view}"
    return None


FLAT_MAP = 1e-3   # logit units: a class map varying less than this across the film shows nothing, not a stretched hotspot


def normalised_map(cam: np.ndarray) -> np.ndarray:
    """A class map scaled within the film: 1 where the evidence is highest, 0 where lowest; all 0 when it is flat.
    The one scaling of the page's map, the grid stored with a study and the report's overlay."""
    cam = np.asarray(cam, dtype=np.float32)
    if not cam.size:
        return cam
    lo, hi = float(cam.min()), float(cam.max())
    return (cam - lo) / (hi - lo) if hi - lo > FLAT_MAP else np.zeros_like(cam)


def flaggable_now(bundle_dir: Path | str | None = None) -> set[str]:
    """The findings the installed model may flag, read from its signed sidecar without loading the model: a study
    stored under an earlier rule keeps only the flags the model still earns, in the list and in the report."""
    return set(_flaggable(str(bundle_dir or DEFAULT_BUNDLE)))


@lru_cache(maxsize=4)
def _flaggable(bundle_dir: str) -> tuple[str, ...]:
    try:
        files, _ = read_bundle(Path(bundle_dir))
        return tuple(json.loads(files[SIDECAR]).get("flaggable", []))
    except (ModelIntegrityError, KeyError, ValueError, OSError):
        return ()


def finding_name(name: str) -> str:
    """A finding as people write it ("Pleural thickening", not the data set's "Pleural_Thickening")."""
    words = name.replace("_", " ")
    return words[:1].upper() + words[1:].lower()


@dataclass
class XrayResult:
    """Outcome for one image. When `ood` is True the image was refused: probabilities and flags are empty."""

    probabilities: dict[str, float]
    flags: dict[str, bool]
    thresholds: dict[str, float]
    ood: bool
    ood_reasons: list[str]
    ood_distance: float
    cam: np.ndarray = field(repr=False)          # (15, h, w) raw class activation maps (logit units)
    image: np.ndarray = field(repr=False)        # display pixels, float32 0..255, original size
    classes: list[str] = field(default_factory=list)
    source_format: str = ""
    ood_details: list[str] = field(default_factory=list)  # measured values against their limits (technical)
    assessed: dict[str, bool] = field(default_factory=dict)   # False: not assessed reliably (never flagged)

    @property
    def not_assessed(self) -> list[str]:
        """Findings this model does not assess reliably (validation ROC-AUC's lower bound under 0.70): shown in grey,
        never flagged."""
        return [c for c in self.classes if is_finding(c) and not self.assessed.get(c, True)]

    @property
    def refusal_message(self) -> str:
        """One plain sentence for a refused image ('' if it was not refused)."""
        if not self.ood:
            return ""
        because = [r for r in self.ood_reasons if r != UNLIKE_TRAINING]  # the generic reason adds nothing to it
        return NOT_A_CHEST_FILM + (f" ({'; '.join(because)})" if because else "") + ", so no findings are shown."

    @property
    def flagged(self) -> list[str]:
        """Findings above their thresholds (never No Finding)."""
        return [c for c, f in self.flags.items() if f and is_finding(c)]

    def flag_of(self, name: str) -> bool:
        """Whether `name` is flagged (No Finding never is: it is not a finding)."""
        return bool(self.flags.get(name)) and is_finding(name)

    @property
    def findings(self) -> list[str]:
        """The findings the model reads (its classes less No Finding), most likely first."""
        return sorted((c for c in self.probabilities if is_finding(c)), key=lambda c: -self.probabilities[c])

    def top_finding(self) -> str | None:
        """The finding (not No Finding) with the highest probability, or None for a refused image."""
        return next(iter(self.findings), None)

    def heatmap(self, finding: str | None = None, shape: tuple[int, int] | None = None) -> np.ndarray:
        """CAM of `finding` (default: top finding) bilinearly upsampled to `shape` (default: the image), normalised
        within the image: 1 where the evidence for the finding is highest in this film, 0 where it is lowest. Relative,
        not a probability: a finding under its threshold still has a place where the model leaned most (keeping only
        positive evidence left the map of every sub-50% finding empty)."""
        name = finding or self.top_finding() or self.classes[1]
        c = self.classes.index(name)
        h, w = shape or self.image.shape[:2]
        up = np.asarray(Image.fromarray(self.cam[c].astype(np.float32), mode="F").resize((w, h), Image.BILINEAR),
                        dtype=np.float32)
        return normalised_map(up)

    def default_finding(self) -> str | None:
        """The map shown first (on the page and in the report): the flagged finding furthest above its threshold,
        else the most likely finding the model assesses reliably, else the most likely one."""
        flagged = self.flagged
        if flagged:
            return max(flagged, key=lambda f: self.probabilities[f] / max(self.thresholds.get(f, 1e-6), 1e-6))
        grey = set(self.not_assessed)
        assessed = [f for f in self.findings if f not in grey]
        return assessed[0] if assessed else self.top_finding()


class XrayService:
    """Loads the bundle once (hash-checked) and classifies chest radiographs."""

    def __init__(self, bundle_dir: Path | str = DEFAULT_BUNDLE) -> None:
        self.bundle = load_bundle(bundle_dir)   # every file checked against the signed manifest, kept as bytes
        if SIDECAR not in self.bundle.files:
            raise ModelIntegrityError(f"The X-ray bundle lacks {SIDECAR}; reinstall WardLens.")
        self.meta: dict[str, Any] = json.loads(self.bundle.files[SIDECAR])
        if self.meta.get("model_sha256") not in (None, self.bundle.sha256):
            raise ModelIntegrityError(f"{SIDECAR} belongs to another model.onnx; retrain or restore the bundle")
        self.classes: list[str] = list(self.meta["classes"])
        self.thresholds: dict[str, float] = {c: float(self.meta["thresholds"][c]) for c in self.classes}
        # findings the model earned the right to flag (card: validation ROC-AUC lower bound >= 0.70 over >= 20
        # validation positives); a bundle that does not say flags nothing
        self.flaggable: set[str] = set(self.meta.get("flaggable", []))
        self.ood_limits: dict[str, float] = {k: float(v) for k, v in self.meta["ood"].items() if not isinstance(v, str)}
        assert int(self.meta.get("input_size", MODEL_SIZE)) == MODEL_SIZE

    @property
    def version(self) -> str:
        return self.bundle.version

    @property
    def card(self) -> dict[str, Any]:
        return self.bundle.card

    def run_batch(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw model outputs (probs, cam, ood distance) for preprocessed images (N,1,S,S) float32."""
        probs, cam, ood = self.bundle.session.run(None, {"image": np.ascontiguousarray(batch, dtype=np.float32)})
        return probs, cam, ood

    def intensity_checks(self, u8: np.ndarray, colourfulness: float = 0.0) -> list[tuple[str, str]]:
        """(plain reason, technical detail) for each intensity check the image fails."""
        s, lim = intensity_stats(u8), self.ood_limits
        failed = []
        if colourfulness > lim["max_colourfulness"]:
            failed.append(("it is a colour picture, like a photograph",
                           f"colourfulness {colourfulness:.1f} > limit {lim['max_colourfulness']:.1f}"))
        if s["std"] < lim["min_std"]:
            failed.append(("it is blank or almost uniform",
                           f"grey-level standard deviation {s['std']:.1f} < limit {lim['min_std']:.1f}"))
        if s["hf_ratio"] > lim["max_hf_ratio"]:
            failed.append(("it looks like noise, not an X-ray picture",
                           f"high-frequency ratio {s['hf_ratio']:.3f} > limit {lim['max_hf_ratio']:.3f}"))
        if s["saturated"] > lim["max_saturated"]:
            failed.append(("most of it is pure black or pure white",
                           f"saturated pixels {100 * s['saturated']:.0f}% > limit {100 * lim['max_saturated']:.0f}%"))
        return failed

    def classify_image(self, image: LoadedImage, check_header: bool = True) -> XrayResult:
        """`check_header` False for a film already in the record (it was accepted when it was added)."""
        header = dicom_header_refusal(image.meta) if check_header else None
        if header is not None:   # the DICOM says what it is: refused before the model runs
            _log.info("DICOM refused by its header: %s", header[1])
            return XrayResult({}, {}, dict(self.thresholds), True, [header[0]], 0.0,
                              np.zeros((len(self.classes), 1, 1), np.float32), image.pixels, self.classes,
                              image.source_format, [header[1]])
        u8 = to_model_size(image.pixels)
        failed = self.intensity_checks(u8, image.colourfulness)
        probs, cam, dist = self.run_batch(normalize(u8)[None, None])
        d = float(dist[0])
        limit = self.ood_limits["mahalanobis_limit"]
        if d > limit:
            failed.append((UNLIKE_TRAINING, f"Mahalanobis distance of the image features {d:.0f} > limit {limit:.0f}"))
        if failed:
            reasons, details = [r for r, _ in failed], [t for _, t in failed]
            _log.info("image refused as not a chest radiograph: %s", "; ".join(details))
            return XrayResult({}, {}, dict(self.thresholds), True, reasons, d, cam[0], image.pixels,
                              self.classes, image.source_format, details)
        p = {c: float(v) for c, v in zip(self.classes, probs[0])}
        assessed = {c: c in self.flaggable for c in self.classes}
        flags = {c: assessed[c] and p[c] >= self.thresholds[c] for c in self.classes}
        return XrayResult(p, flags, dict(self.thresholds), False, [], d, cam[0], image.pixels,
                          self.classes, image.source_format, assessed=assessed)

    def classify_file(self, path: str | Path) -> XrayResult:
        """Load and classify one file; raises XrayImageError (with a user-facing message) if unreadable."""
        return self.classify_image(load_xray(path))

    def classify_array(self, gray: np.ndarray) -> XrayResult:
        """Classify a grayscale 0..255 array of any size (for callers that decoded the image themselves)."""
        return self.classify_image(LoadedImage(np.asarray(gray, dtype=np.float32), "array"))


def _expand(paths: Iterable[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith("."))
        else:
            out.append(p)  # missing files become error rows, not silent drops
    return out


def bundled_xray() -> XrayService:
    """The bundled X-ray model (loaded once per process, services.inference.shared)."""
    return shared_model("xray", XrayService)


def classify_paths(paths: list[str], output_csv: str, service: XrayService | None = None) -> dict[str, Any]:
    """Classify files and folders (recursively) into a CSV: one row per file, errors reported in-row.

    Columns: image, one probability per class, ood (0/1), ood_reason (plain words), ood_detail (the
    measured values against their limits), flagged (';'-joined findings at their operating thresholds, never No Finding; empty: none reached its threshold), error. Refused and unreadable files have empty probabilities.
    Returns counts: images, classified, ood, errors, and the CSV path.
    """
    svc = service or bundled_xray()
    files = _expand(paths)
    counts = {"images": len(files), "classified": 0, "ood": 0, "errors": 0}
    out = Path(output_csv)
    with csv_output(out, inputs=tuple(files)) as w:  # file names and reasons neutralised; 0600; whole or nothing
        w.writerow(["image", *svc.classes, "ood", "ood_reason", "ood_detail", "flagged", "error"])
        for f in files:
            try:
                r = svc.classify_file(f)
            except XrayImageError as exc:
                counts["errors"] += 1
                w.writerow([str(f), *[""] * len(svc.classes), "", "", "", "", str(exc)])
                continue
            if r.ood:
                counts["ood"] += 1
                w.writerow([str(f), *[""] * len(svc.classes), 1, "; ".join(r.ood_reasons), "; ".join(r.ood_details),
                            "", ""])
            else:
                counts["classified"] += 1
                w.writerow([str(f), *[f"{r.probabilities[c]:.6f}" for c in svc.classes], 0, "", "",
                            ";".join(r.flagged), ""])
    return {**counts, "output_csv": str(out)}


__all__ = ["XrayService", "XrayResult", "classify_paths", "intensity_stats", "preprocess", "SIDECAR", "DEFAULT_BUNDLE"]
