"""Where the application keeps its store by default (per user, per platform), without Qt."""
from __future__ import annotations

import os
import sys
from pathlib import Path

APP = "WardLens"


def user_data_dir() -> Path:
    override = os.environ.get("WARDLENS_HOME")
    if override:
        return Path(override)
    if sys.platform.startswith("win"):
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / APP
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / APP


def default_store_path() -> Path:
    return user_data_dir() / "wardlens.db"


# The bundled resources (models, demo sample, report fonts); a frozen bundle keeps the same layout.
RESOURCES = Path(__file__).resolve().parents[2] / "resources"
