"""The process's one cache of bundled models: each bundle is read, hash-checked and turned into an
onnxruntime session once, however many sessions, façades or commands ask for it.

Façades own the model they use (the risk façade may hold a store's promoted version instead); they get
the bundled instance from here, so no module keeps a model singleton of its own."""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

T = TypeVar("T")

_models: dict[str, object] = {}
_lock = threading.Lock()


def shared_model(name: str, load: Callable[[], T]) -> T:
    """The bundled model called `name`, loaded by `load()` on first use (one load even under threads)."""
    with _lock:
        model = _models.get(name)
        if model is None:
            model = _models[name] = load()
        return model  # type: ignore[return-value]
