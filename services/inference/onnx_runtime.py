"""One place that creates onnxruntime sessions: hash-checked bundles, chosen providers, no telemetry.

A model bundle is a folder resources/models/<name>/ holding model.onnx, card.json, card.md and
model.onnx.sha256. The hash is checked before the session is created, so a swapped or damaged model
file is refused rather than silently used.
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

from services.core.errors import WardLensError
from services.core.paths import RESOURCES
from services.core.files import sha256_file  # noqa: E402,F401 - re-exported for the model services

MODELS_DIR = RESOURCES / "models"
PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "DmlExecutionProvider", "CoreMLExecutionProvider", "CPUExecutionProvider")


class ModelIntegrityError(WardLensError, RuntimeError):
    """The model file does not match its recorded sha256."""


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
        model_path = directory / "model.onnx"
        sha_path = directory / "model.onnx.sha256"
        if not model_path.exists() or not sha_path.exists():
            raise FileNotFoundError(f"model bundle incomplete in {directory} (needs model.onnx and model.onnx.sha256)")
        expected = sha_path.read_text(encoding="utf-8").split()[0].strip().lower()
        actual = sha256_file(model_path)
        if actual != expected:
            raise ModelIntegrityError(f"{model_path} does not match its recorded sha256; refusing to load it")
        card_path = directory / "card.json"
        card = json.loads(card_path.read_text(encoding="utf-8")) if card_path.exists() else {}
        bundle = ModelBundle(directory.name, directory, card, actual, create_session(model_path))
        if use_cache:
            _cache[directory] = bundle
        return bundle


def clear_cache() -> None:
    with _lock:
        _cache.clear()
