"""Imports point down only: ui -> viewmodels -> services -> models; no widgets below ui."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RULES = {
    "models": ({"ui", "viewmodels", "services", "training"}, ("PySide6", "pyqtgraph", "onnxruntime")),
    "services": ({"ui", "viewmodels", "training"}, ("PySide6", "pyqtgraph", "torch")),
    "viewmodels": ({"ui", "training"}, ("PySide6.QtWidgets", "pyqtgraph", "torch")),
    "ui": ({"services", "training"}, ("torch",)),
}


def test_imports_point_down_only():
    bad = []
    for layer, (layers, mods) in RULES.items():
        for f in (ROOT / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for n in names:
                    if n.split(".")[0] in layers or any(n == m or n.startswith(m + ".") for m in mods):
                        bad.append(f"{f.relative_to(ROOT)}:{node.lineno} imports {n}")
    assert not bad, "\n".join(bad)


def test_no_pickle_or_joblib_in_the_application():
    for layer in ("models", "services", "viewmodels", "ui"):
        for f in (ROOT / layer).rglob("*.py"):
            text = f.read_text(encoding="utf-8")
            assert "import pickle" not in text and "joblib" not in text, f
