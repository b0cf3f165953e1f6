"""30-day readmission risk at discharge: ONNX inference, risk bands and exact per-feature contributions.

The bundle resources/models/readmission/ holds model.onnx (gradient-boosted trees + Platt calibration,
output "probability" and the raw tree "margin"), card.json/card.md, and two hash-checked sidecars:
meta.json (feature order, calibration, risk bands, operating threshold) and trees.npz (the exported
tree structure with cover-weighted node means). Contributions are Saabas path attributions computed
here in numpy from trees.npz: per tree, walking from the root to the leaf, each split adds
mean(child) - mean(node) to its feature, so bias + sum(contributions) equals the tree margin exactly.
Platt calibration is linear on that margin (logit = a * margin + b), so a * contributions plus
(a * bias + b) sum to the calibrated logit. No native xgboost, no pickle at inference.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from services.core.files import InputTooLarge, read_input
from services.core.outputs import csv_output
from services.risk.clinical_scores import hospital_band, hospital_score, lace_index
from services.records.uci_table import eligible_mask, normalise_uci_frame
from services.records.validation import uci_row_problem
from services.risk.concepts import concept_sums, reasons
from services.risk.features import FEATURE_NAMES, build_features
from services.inference.shared import shared_model
from services.inference.onnx_runtime import MODELS_DIR, ModelBundle, ModelIntegrityError, create_session, load_bundle
from services.records.uci_schema import ENCOUNTER_COLUMNS, INT_COLUMNS

BUNDLE_DIR = MODELS_DIR / "readmission"
NOT_ELIGIBLE = "not eligible"


def bundled_readmission_version() -> str:
    """The bundled model's version, read from its sidecar without loading (or trusting) the model: opening a
    session must not depend on the model file, so that backup and verify work when it is damaged."""
    for name in ("meta.json", "card.json"):
        try:
            version = json.loads((BUNDLE_DIR / name).read_text(encoding="utf-8")).get("version")
        except (OSError, ValueError, AttributeError):
            continue
        if version:
            return str(version)
    return "unknown"


def bundled_readmission() -> "ReadmissionService":
    """The bundled readmission model (loaded once per process, services.inference.shared)."""
    return shared_model("readmission", ReadmissionService)


class ReadmissionInputError(ValueError):
    """A file-level problem with a CSV handed to score_readmission_csv (encoding, header, columns)."""


@dataclass(frozen=True)
class TreeArrays:
    """Flattened tree ensemble: node i of tree t is global row tree_start[t] + i."""

    feature: np.ndarray      # int32, split feature (-1 for leaves)
    threshold: np.ndarray    # float32, go left when x < threshold (XGBoost and ONNX BRANCH_LT)
    left: np.ndarray         # int32 global index of the left child (-1 for leaves)
    right: np.ndarray        # int32 global index of the right child
    default_left: np.ndarray  # bool, where a missing value goes
    mean: np.ndarray         # float64 cover-weighted mean of the leaf values below (leaf value at leaves)
    roots: np.ndarray        # int32 global index of each tree's root
    base_margin: float

    @classmethod
    def from_bytes(cls, data: bytes) -> "TreeArrays":
        """From the bytes of a trees.npz (the caller has checked their sha256)."""
        return cls._read(io.BytesIO(data))

    @classmethod
    def _read(cls, f) -> "TreeArrays":
        with np.load(f, allow_pickle=False) as z:
            return cls(z["feature"], z["threshold"], z["left"], z["right"], z["default_left"].astype(bool),
                       z["mean"], z["roots"], float(z["base_margin"]))

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:  # file handle: np.savez would otherwise append ".npz" to odd names
            f.write(self.to_bytes())

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, feature=self.feature, threshold=self.threshold, left=self.left, right=self.right,
                            default_left=self.default_left, mean=self.mean, roots=self.roots,
                            base_margin=np.float64(self.base_margin))
        return buf.getvalue()

    def contributions(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Saabas contributions (n, n_features) and bias (n,), with bias + row sum = tree margin."""
        x = np.asarray(x, dtype=np.float32)
        n, n_feat = x.shape
        n_trees = len(self.roots)
        node = np.broadcast_to(self.roots, (n, n_trees)).copy()
        rows = np.broadcast_to(np.arange(n)[:, None], (n, n_trees))
        contrib = np.zeros(n * n_feat, dtype=np.float64)
        while True:
            inner = self.left[node] >= 0
            if not inner.any():
                break
            nd, r = node[inner], rows[inner]
            feat = self.feature[nd]
            v = x[r, feat]
            go_left = np.where(np.isnan(v), self.default_left[nd], v < self.threshold[nd])
            child = np.where(go_left, self.left[nd], self.right[nd])
            contrib += np.bincount(r * n_feat + feat, weights=self.mean[child] - self.mean[nd], minlength=n * n_feat)
            node[inner] = child
        bias = np.full(n, self.base_margin + float(self.mean[self.roots].sum()))
        return contrib.reshape(n, n_feat), bias


@dataclass(frozen=True)
class Factor:
    feature: str        # the clinical concept (services.risk.concepts.NAMES)
    value: float
    text: str           # plain words for clinicians
    contribution: float  # on the calibrated log-odds scale; positive raises risk


@dataclass(frozen=True)
class ReadmissionPrediction:
    encounter_id: int
    eligible: bool
    probability: float | None
    band: str
    logit: float | None = None
    factors: tuple[Factor, ...] = field(default_factory=tuple)


class ReadmissionService:
    """Loads the readmission bundle once and scores encounters in the UCI schema."""

    def __init__(self, bundle_dir: Path | str = BUNDLE_DIR) -> None:
        bundle = load_bundle(bundle_dir)   # every file checked against the signed manifest, kept as bytes
        try:
            meta, trees = json.loads(bundle.files["meta.json"]), TreeArrays.from_bytes(bundle.files["trees.npz"])
        except KeyError as exc:
            raise ModelIntegrityError(f"The readmission bundle lacks {exc.args[0]}; reinstall WardLens.") from None
        self._setup(bundle, meta, trees)

    @classmethod
    def from_bytes(cls, onnx_bytes: bytes, meta_json: bytes, trees_npz: bytes, sha256: Mapping[str, str],
                   card: Mapping[str, Any] | None = None, name: str = "readmission",
                   source: str = "store") -> "ReadmissionService":
        """The same model from in-memory bytes (a version kept inside the encrypted store).

        sha256 maps "model.onnx", "meta.json" and "trees.npz" to the digests recorded when the version was
        stored; every part is checked before anything is used, exactly as for the bundled folder, and
        meta.json must name this model.onnx (model_sha256), so parts of two versions cannot be mixed.
        """
        parts = {"model.onnx": onnx_bytes, "meta.json": meta_json, "trees.npz": trees_npz}
        for part, data in parts.items():
            expected = str(sha256.get(part, "")).strip().lower()
            if not expected or hashlib.sha256(data).hexdigest() != expected:
                raise ModelIntegrityError(f"{source}: {part} does not match its recorded sha256; refusing to load it")
        meta = json.loads(meta_json.decode("utf-8"))
        digest = hashlib.sha256(onnx_bytes).hexdigest()
        if meta.get("model_sha256") not in (None, digest):
            raise ModelIntegrityError(f"{source}: meta.json belongs to another model.onnx; refusing to load it")
        bundle = ModelBundle(name, Path(source), dict(card or {}), digest, create_session(onnx_bytes))
        self = cls.__new__(cls)
        self._setup(bundle, meta, TreeArrays.from_bytes(trees_npz))
        self._onnx_bytes = onnx_bytes
        return self

    def _setup(self, bundle: ModelBundle, meta: dict[str, Any], trees: TreeArrays) -> None:
        self.bundle = bundle
        self._onnx_bytes: bytes | None = None
        self.meta: dict[str, Any] = meta
        if tuple(self.meta["feature_names"]) != FEATURE_NAMES:
            raise ModelIntegrityError("the readmission bundle was built for a different feature layout")
        self.trees = trees
        self.cal_a = float(self.meta["calibration"]["a"])
        self.cal_b = float(self.meta["calibration"]["b"])
        # bands: [{"name": "low", "min": 0.0}, {"name": "medium", "min": ...}, {"name": "high", "min": ...}]
        self.bands: list[tuple[str, float]] = sorted(((b["name"], float(b["min"])) for b in self.meta["bands"]),
                                                     key=lambda t: t[1])
        self.threshold = float(self.meta["operating_threshold"])
        session = self.bundle.session
        self._input = session.get_inputs()[0].name

    @property
    def version(self) -> str:
        return str(self.meta.get("version", self.bundle.version))

    def model_bytes(self) -> bytes:
        """The model.onnx bytes this service scores with."""
        if self._onnx_bytes is not None:
            return self._onnx_bytes
        return self.bundle.files["model.onnx"]   # the bytes checked at load, not the file as it is now

    def band(self, probability: float) -> str:
        name = self.bands[0][0]
        for band_name, lower in self.bands:
            if probability >= lower:
                name = band_name
        return name

    def predict_matrix(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probability and raw tree margin for a feature matrix (columns FEATURE_NAMES)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if len(x) == 0:
            return np.zeros(0), np.zeros(0)
        prob, margin = self.bundle.session.run(["probability", "margin"], {self._input: x})
        return prob.reshape(-1).astype(np.float64), margin.reshape(-1).astype(np.float64)

    def explain_matrix(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature contributions and intercept on the calibrated logit scale (they sum to it)."""
        # chunks keep the (rows x features) scratch arrays small for whole-hospital batches
        parts = [self.trees.contributions(x[i:i + 2048]) for i in range(0, len(x), 2048)] or \
            [(np.zeros((0, len(FEATURE_NAMES))), np.zeros(0))]
        contrib = np.concatenate([c for c, _ in parts])
        bias = np.concatenate([b for _, b in parts])
        return contrib * self.cal_a, bias * self.cal_a + self.cal_b

    def score_frame(self, encounters: pd.DataFrame, encounter_ids: Iterable[int] | None = None,
                    top_k: int = 3) -> list[ReadmissionPrediction]:
        """Score rows of a UCI-schema frame that may also hold history rows.

        encounter_ids: which encounters to score (default: all rows). Every row, scored or not, serves
        as history for the patient's later encounters.
        """
        df = normalise_uci_frame(encounters)
        feats = build_features(df)
        if encounter_ids is None:
            pick = np.arange(len(df))
        else:
            pos = pd.Series(np.arange(len(df)), index=df["encounter_id"].to_numpy())
            wanted = list(encounter_ids)
            missing = [e for e in wanted if e not in pos.index]
            if missing:
                raise KeyError(f"encounter_id not in the frame: {missing[:5]}")
            pick = pos.loc[wanted].to_numpy()
        eligible = eligible_mask(df).to_numpy()[pick]
        x = feats.to_numpy(dtype=np.float32)[pick]
        ids = df["encounter_id"].to_numpy()[pick]
        out: list[ReadmissionPrediction | None] = [None] * len(pick)
        ok = np.flatnonzero(eligible)
        prob, margin = self.predict_matrix(x[ok])
        contrib, _ = self.explain_matrix(x[ok])
        sums = concept_sums(contrib)   # one line per clinical concept, its features' contributions summed
        for j, i in enumerate(ok):
            factors = tuple(Factor(name, float("nan"), text, value) for name, text, value in reasons(x[i], sums[j], top_k))
            p = float(prob[j])
            out[i] = ReadmissionPrediction(int(ids[i]), True, p, self.band(p), self.cal_a * float(margin[j]) + self.cal_b,
                                           factors)
        for i in np.flatnonzero(~eligible):
            out[i] = ReadmissionPrediction(int(ids[i]), False, None, NOT_ELIGIBLE)
        return [o for o in out if o is not None]

    def score_encounter(self, encounter: Mapping[str, Any], history: pd.DataFrame | None = None,
                        top_k: int = 3) -> ReadmissionPrediction:
        """Score one encounter record (UCI field names); history = the patient's other encounters, if any."""
        row = pd.DataFrame([{c: encounter.get(c, "") for c in ENCOUNTER_COLUMNS}])
        frame = row if history is None or history.empty else pd.concat(
            [history.astype({c: str for c in INT_COLUMNS}), row.astype({c: str for c in INT_COLUMNS})],
            ignore_index=True)
        frame = frame.drop_duplicates("encounter_id", keep="last") if history is not None else frame
        return self.score_frame(frame, [int(encounter["encounter_id"])], top_k=top_k)[0]


# ----- batch command ------------------------------------------------------------------------------

OUTPUT_COLUMNS: tuple[str, ...] = ("line", "encounter_id", "patient_nbr", "status", "risk", "band", "factor_1",
                                   "factor_2", "factor_3", "lace", "hospital", "hospital_band", "error")


def _open_text(path: Path) -> io.TextIOBase:
    try:
        raw = read_input(path)   # bounded: a small .gz can expand a thousandfold
    except InputTooLarge as exc:
        raise ReadmissionInputError(str(exc)) from exc
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ReadmissionInputError(f"{path}: damaged gzip file ({exc})") from exc
    except OSError as exc:   # missing, a folder, no permission: said as a sentence, not an errno
        raise ReadmissionInputError(f"{path} cannot be read: {exc.strerror or exc}.") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReadmissionInputError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    if "\x00" in text:
        raise ReadmissionInputError(f"{path}: binary data, not a CSV file")
    return io.StringIO(text, newline="")


def _row_problems(rec: dict[str, str]) -> list[str]:
    """The importer's own row check (services.records.validation): a row scored here would import, and back."""
    problem = uci_row_problem(rec)
    return [problem] if problem else []


def score_readmission_csv(input_path: str | os.PathLike, output_path: str | os.PathLike,
                          service: ReadmissionService | None = None) -> dict[str, Any]:
    """Score every row of a UCI-schema CSV (gzip allowed; `readmitted` optional) into an output CSV.

    Every input row gets one output row (column `line` = its line in the input file). Bad rows are
    reported with their line and reason, scored as nothing, and not used as history. Ineligible
    encounters (death, hospice) get an empty risk. Raises ReadmissionInputError for file-level problems.
    Returns {"rows", "scored", "not_eligible", "errors": [{"line", "encounter_id", "reason"}], "messages", "output"}.
    """
    src = Path(input_path)
    if not src.is_file():
        raise ReadmissionInputError(f"{src}: no such file")
    reader = csv.reader(_open_text(src))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ReadmissionInputError(f"{src}: empty file (no header line)") from None
    except csv.Error as exc:
        raise ReadmissionInputError(f"{src}: unreadable CSV header ({exc})") from exc
    missing = [c for c in ENCOUNTER_COLUMNS if c != "readmitted" and c not in header]
    if missing:
        raise ReadmissionInputError(f"{src}: missing columns: {', '.join(missing)}")
    good: list[dict[str, str]] = []
    good_lines: list[int] = []
    results: dict[int, dict[str, Any]] = {}  # line -> output row
    errors: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    order: list[int] = []
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            line = reader.line_num
            order.append(line)
            errors.append({"line": line, "encounter_id": "", "reason": f"unreadable CSV row ({exc})"})
            results[line] = {"line": line, "status": "error", "error": errors[-1]["reason"]}
            continue
        line = reader.line_num
        if not fields or all(not f.strip() for f in fields):
            continue  # blank lines carry no encounter
        order.append(line)
        if len(fields) != len(header):
            reason = f"expected {len(header)} fields, found {len(fields)}"
            rec = {}
        else:
            rec = {h: v.strip() for h, v in zip(header, fields)}
            rec.setdefault("readmitted", "")
            problems = _row_problems(rec)
            eid = rec["encounter_id"]
            if not problems and eid in seen:
                problems.append(f"duplicate encounter_id {eid} (first on line {seen[eid]})")
            reason = "; ".join(problems)
        if reason:
            errors.append({"line": line, "encounter_id": rec.get("encounter_id", ""), "reason": reason})
            results[line] = {"line": line, "encounter_id": rec.get("encounter_id", ""),
                             "patient_nbr": rec.get("patient_nbr", ""), "status": "error", "error": reason}
            continue
        seen[rec["encounter_id"]] = line
        good.append(rec)
        good_lines.append(line)
    if good:
        service = service or bundled_readmission()
        frame = pd.DataFrame(good, columns=list(ENCOUNTER_COLUMNS))
        preds = service.score_frame(frame)
        norm = normalise_uci_frame(frame)
        for line, pred, rec in zip(good_lines, preds, norm.to_dict("records")):
            hosp = hospital_score(rec)
            factors = [f.text for f in pred.factors] + ["", "", ""]
            results[line] = {
                "line": line, "encounter_id": pred.encounter_id, "patient_nbr": int(rec["patient_nbr"]),
                "status": "ok" if pred.eligible else NOT_ELIGIBLE,
                "risk": "" if pred.probability is None else f"{pred.probability:.4f}",
                "band": pred.band, "factor_1": factors[0], "factor_2": factors[1], "factor_3": factors[2],
                "lace": lace_index(rec), "hospital": hosp, "hospital_band": hospital_band(hosp), "error": "",
            }
    dst = Path(output_path)
    with csv_output(dst, OUTPUT_COLUMNS, inputs=(input_path,)) as w:  # cells neutralised, 0600, whole or nothing
        w.writeheader()
        for line in order:
            w.writerow(results[line])
    scored = sum(1 for r in results.values() if r.get("status") == "ok")
    return {
        "rows": len(order), "scored": scored,
        "not_eligible": sum(1 for r in results.values() if r.get("status") == NOT_ELIGIBLE),
        "errors": errors,
        "messages": [f"line {e['line']}: {e['reason']}" for e in errors],
        "output": str(dst),
    }


def risk_bands(service: ReadmissionService) -> Sequence[tuple[str, float]]:
    """The (band, lower probability bound) pairs from the bundle, for legends and reports."""
    return tuple(service.bands)
