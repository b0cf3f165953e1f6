"""One place that creates onnxruntime sessions: signed bundles, chosen providers, no telemetry.

A model bundle is a folder resources/models/<name>/ holding model.onnx, card.json, card.md, its sidecars and a
signed manifest.json (services.inference.manifest). Every file is read once into memory and checked against the
manifest; the session, the card and the sidecars are made from those bytes, never reopened by path.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Must be set before onnxruntime is imported: it stops the device-id file and the telemetry database
# that onnxruntime otherwise writes under ~/.cache/Microsoft/DeveloperTools on first use.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import onnxruntime as ort  # noqa: E402

from services.inference.manifest import ModelIntegrityError, read_bundle  # noqa: F401 - re-exported
from services.core.paths import RESOURCES
from services.core.files import sha256_file  # noqa: E402,F401 - re-exported for the model services

MODELS_DIR = RESOURCES / "models"
PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "DmlExecutionProvider", "CoreMLExecutionProvider", "CPUExecutionProvider")



def write_sha256(model_path: Path) -> str:
    digest = sha256_file(model_path)
    model_path.with_name(model_path.name + ".sha256").write_text(f"{digest}  {model_path.name}\n", encoding="utf-8")
    return digest


def chosen_providers() -> list[str]:
    available = set(ort.get_available_providers())
    return [p for p in PREFERRED_PROVIDERS if p in available] or ["CPUExecutionProvider"]


def create_session(model: Path | bytes, threads: int | None = None) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    src = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(src, sess_options=opts, providers=chosen_providers())


@dataclass
class ModelBundle:
    """A hash-checked ONNX model with its card; the session is created once and reused."""

    name: str
    directory: Path
    card: dict[str, Any]
    sha256: str
    session: ort.InferenceSession = field(repr=False)
    files: dict[str, bytes] = field(default_factory=dict, repr=False)   # every file, as checked against the manifest

    @property
    def version(self) -> str:
        return str(self.card.get("version", "unknown"))


_cache: dict[Path, ModelBundle] = {}
_lock = threading.Lock()


def load_bundle(directory: Path | str, use_cache: bool = True) -> ModelBundle:
    directory = Path(directory).resolve()
    with _lock:
        if use_cache and directory in _cache:
            return _cache[directory]
        files, digests = read_bundle(directory)
        if "model.onnx" not in files:
            raise ModelIntegrityError(f"The model bundle {directory.name} has no model.onnx; reinstall WardLens.")
        card = json.loads(files["card.json"].decode("utf-8")) if "card.json" in files else {}
        bundle = ModelBundle(directory.name, directory, card, digests["model.onnx"],
                             create_session(files["model.onnx"]), files)
        if use_cache:
            _cache[directory] = bundle
        return bundle


def clear_cache() -> None:
    with _lock:
        _cache.clear()
