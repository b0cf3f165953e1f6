"""What WardLens is, its version, and the data sets and libraries it carries with their licences
(`--version`, Help → About). resources/about.json holds the licences; versions are read from what is loaded."""
from __future__ import annotations

import importlib
import json
import sys
from dataclasses import dataclass

from services.core.paths import RESOURCES

VERSION = "0.2.0"   # the release; pyproject.toml's version is the same (tests/test_install.py checks)


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    licence: str
    use: str = ""
    source: str = ""


def _version_of(module: str, distribution: str) -> str:
    if module == "sys":
        return sys.version.split()[0]
    try:
        from importlib import metadata
        if distribution:
            return metadata.version(distribution)
    except Exception:  # noqa: BLE001 - a frozen bundle may carry no package metadata
        pass
    try:
        mod = importlib.import_module(module)
    except Exception:  # noqa: BLE001
        return "not installed"
    for attr in ("__version__", "Version", "VERSION", "version"):
        v = getattr(mod, attr, None)
        if isinstance(v, str):
            return v
    return "bundled"


def about() -> dict:
    info = json.loads((RESOURCES / "about.json").read_text(encoding="utf-8"))
    libraries = [Component(x["name"], _version_of(x["module"], x.get("distribution", "")), x["licence"])
                 for x in info["libraries"]]
    data = [Component(x["name"], "", x["licence"], x.get("use", ""), x.get("source", "")) for x in info["data"]]
    return {"product": info["product"], "version": VERSION, "summary": info["summary"], "data": data,
            "libraries": libraries}


def version_line() -> str:
    return f"WardLens {VERSION} (Python {sys.version.split()[0]})"
