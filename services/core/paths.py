"""Where the application keeps its store by default (per user, per platform), without Qt."""
from __future__ import annotations

import configparser
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


SITE_CONFIG = Path("/etc/wardlens/wardlens.conf")   # installed by the Debian package (installer/wardlens.conf)


def site_config() -> configparser.ConfigParser:
    """The site configuration (WARDLENS_CONFIG, else /etc/wardlens/wardlens.conf); empty when there is none.
    A file that cannot be parsed is an error a person must see, not a silent default."""
    cfg = configparser.ConfigParser()
    path = Path(os.environ.get("WARDLENS_CONFIG", SITE_CONFIG))
    if path.is_file():
        try:
            cfg.read(path, encoding="utf-8")
        except configparser.Error as exc:
            raise ValueError(f"the site configuration {path} cannot be read: {exc}") from None
    return cfg


def default_store_path() -> Path:
    """The store the GUI opens without --db: the site's shared store when the site configuration names one,
    else this user's own."""
    configured = site_config().get("store", "path", fallback="").strip()
    return Path(configured).expanduser() if configured else user_data_dir() / "wardlens.db"


def ensure_user_data_dir() -> Path:
    """The application's own data folder, created (private) when missing: the one folder WardLens makes
    itself; a store path given by a person must name a folder that exists."""
    folder = user_data_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


# The bundled resources (models, demo sample, report fonts); a frozen bundle keeps the same layout.
RESOURCES = Path(__file__).resolve().parents[2] / "resources"
