"""Per-site settings kept inside the encrypted store: the one way the product reads and changes them.

Every setting the product reads is declared here with its default, a parser that validates the text an
administrator types (GUI or `config --set KEY=VALUE`) and a description. Only an administrator changes
them, and every change is audited in the same transaction."""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import io
import json
from pathlib import Path
import math
from dataclasses import dataclass
from typing import Any, Callable

from models.domain import Permission
from services.store import integrity
from services.core.errors import ValidationError
from services.store import audit
from services.site.session import Session

SHIFTS = ("day", "evening", "night")
DEFAULT_STAFFING = {"day": 4.0, "evening": 5.0, "night": 7.0}


def _number(text: str, low: float, high: float, unit: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number ({unit})") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"between {low:g} and {high:g} {unit}".rstrip())
    return value


def _idle_minutes(text: str) -> float:
    return _number(text, 0, 240, "minutes")


def _risk_threshold(text: str) -> float | None:
    """Empty: the model's own high-risk threshold. Else a probability (0.25) or a percentage (25%)."""
    text = text.strip()
    if not text:
        return None
    if text.endswith("%"):
        return _number(text[:-1], 1, 99, "percent") / 100
    return _number(text, 0.01, 0.99, "(a probability, e.g. 0.25, or a percentage, e.g. 25%)")


def _ratios(obj: Any, where: str) -> dict[str, float]:
    if not isinstance(obj, dict) or set(obj) != set(SHIFTS):
        raise ValueError(f"{where}: give patients per nurse for exactly {', '.join(SHIFTS)}")
    out = {}
    for shift in SHIFTS:
        v = obj[shift]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.5 <= float(v) <= 30:
            raise ValueError(f"{where}: {shift} must be between 0.5 and 30 patients per nurse")
        out[shift] = float(v)
    return out


def _staffing(text: str) -> dict[str, Any]:
    """JSON: {"default": {"day": 4, "evening": 5, "night": 7}, "per_ward": {"ICU": {...}}}."""
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError('expected JSON such as {"default": {"day": 4, "evening": 5, "night": 7}}') from None
    if not isinstance(data, dict) or not set(data) <= {"default", "per_ward"}:
        raise ValueError('expected an object with "default" and optionally "per_ward"')
    per_ward = data.get("per_ward", {})
    if not isinstance(per_ward, dict):
        raise ValueError('"per_ward" must map ward names to ratios')
    return {"default": _ratios(data.get("default", DEFAULT_STAFFING), "default"),
            "per_ward": {str(w): _ratios(r, f"ward {w}") for w, r in per_ward.items()}}


@dataclass(frozen=True)
class Setting:
    key: str
    default: str
    parse: Callable[[str], Any]   # text -> typed value; ValueError with the reason a person can act on
    description: str


def _count(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise ValueError(f"a whole number from {low} to {high}") from None
        if not low <= n <= high:
            raise ValueError(f"a whole number from {low} to {high}")
        return n
    return parse


def _folder(text: str) -> str:
    text = text.strip()
    if text and not Path(text).expanduser().is_absolute():
        raise ValueError("a full folder path (for example /media/usb/wardlens), or empty for a folder beside the store")
    return text


def _hospital(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > 80:
        raise ValueError("at most 80 characters")
    return text


LOGO_BOX = (600, 200)        # pixels: printed at most 5 cm wide, 1.6 cm high
LOGO_MAX_FILE = 5_000_000    # a logo file larger than this is not a logo


def _logo(text: str) -> bytes:
    """Stored as base64 of a PNG that WardLens wrote itself (logo_text_from_file): small, metadata-free."""
    text = text.strip()
    if not text:
        return b""
    from PIL import Image
    try:
        data = base64.b64decode(text, validate=True)
        with Image.open(io.BytesIO(data)) as im:
            ok = im.format == "PNG" and im.width <= LOGO_BOX[0] and im.height <= LOGO_BOX[1]
            im.load()   # every pixel decodes: a truncated file would break every report later
    except (binascii.Error, ValueError, OSError, Image.DecompressionBombError):
        ok = False
    if not ok:
        raise ValueError(f"a PNG of at most {LOGO_BOX[0]}×{LOGO_BOX[1]} pixels, as WardLens stores it: choose the logo "
                         "file in the Settings page or with config --set hospital_logo=@/path/to/logo.png")
    return data


def _clean_logo(data: bytes) -> str:
    """The logo re-encoded by WardLens: RGBA PNG, no metadata (however the text reached `config --set`)."""
    from PIL import Image
    with Image.open(io.BytesIO(data)) as im:
        clean = Image.new("RGBA", im.size)
        clean.paste(im.convert("RGBA"))
    out = io.BytesIO()
    clean.save(out, "PNG", optimize=True)
    return base64.b64encode(out.getvalue()).decode("ascii")


def logo_text_from_file(path: Path | str) -> str:
    """A PNG or JPEG logo made ready to store: scaled into LOGO_BOX, re-encoded as PNG without any metadata (a
    logo file may carry an author, a location or a thumbnail nobody meant to print)."""
    from PIL import Image, UnidentifiedImageError
    path = Path(path)
    try:
        if path.stat().st_size > LOGO_MAX_FILE:
            raise ValidationError({"hospital_logo": f"{path.name} is larger than {LOGO_MAX_FILE // 1_000_000} MB"})
        with Image.open(path) as im:
            if im.format not in ("PNG", "JPEG"):
                raise ValidationError({"hospital_logo": f"{path.name} is {im.format}, not a PNG or JPEG image"})
            im.thumbnail(LOGO_BOX)
            clean = Image.new("RGBA", im.size)
            clean.paste(im.convert("RGBA"))
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise ValidationError({"hospital_logo": f"{path.name} is not an image WardLens can read"}) from None
    except OSError as exc:
        raise ValidationError({"hospital_logo": f"{path.name} could not be read ({exc.strerror or exc})"}) from None
    out = io.BytesIO()
    clean.save(out, "PNG", optimize=True)
    return base64.b64encode(out.getvalue()).decode("ascii")


def logo_summary(text: str) -> str:
    """What a person reads instead of the base64 text (config, the audit log)."""
    data = _logo(text)
    if not data:
        return "none"
    from PIL import Image
    with Image.open(io.BytesIO(data)) as im:
        return f"PNG {im.width}×{im.height}, {len(data) // 1000 + 1} kB, sha256 {hashlib.sha256(data).hexdigest()[:12]}"


KNOWN: dict[str, Setting] = {s.key: s for s in (
    Setting("idle_lock_minutes", "10", _idle_minutes,
            "minutes without keyboard or mouse before the session locks (0 = never)"),
    Setting("alert_risk_threshold", "", _risk_threshold,
            "readmission risk at which an inpatient raises an alert (empty = the model's high-risk threshold)"),
    Setting("staffing_ratios", json.dumps({"default": DEFAULT_STAFFING, "per_ward": {}}), _staffing,
            "patients per nurse per shift, as JSON: default and per ward"),
    Setting("hospital_name", "", _hospital,
            "the hospital's name, printed at the top of every report (empty = none)"),
    Setting("hospital_logo", "", _logo,
            "the hospital's logo, printed at the top right of every report (empty = none)"),
    Setting("backup_folder", "", _folder,
            "folder for the daily automatic backup (a USB drive or network share; empty = '<store>-backups' beside "
            "the store)"),
    Setting("import_folder", "", _folder,
            "folder the hospital's systems drop FHIR, HL7 v2 or UCI CSV files into: imported in arrival order by an "
            "administrator's desk (or `main.py watch`), then moved to done/ or failed/ (empty = off)"),
    Setting("backup_keep_daily", "7", _count(1, 366), "daily backups kept"),
    Setting("backup_keep_monthly", "12", _count(0, 120), "monthly backups kept (the newest of each month)"),
)}


def stored_text(conn, key: str) -> str:
    """The stored text of a setting (its default when unset, or when its administrator signature fails: a
    setting written outside WardLens is never used; `verify` names it)."""
    row = conn.execute("SELECT value, updated_at, updated_by, sig FROM settings WHERE key = ?", (key,)).fetchone()
    if row is None or not integrity.setting_is_signed(getattr(conn, "trust", None), key, *row, conn=conn):
        return KNOWN[key].default
    return row[0]


def stored_value(conn, key: str) -> Any:
    """The typed value; a stored text that no longer parses falls back to the default (never a crash)."""
    try:
        return KNOWN[key].parse(stored_text(conn, key))
    except ValueError:
        return KNOWN[key].parse(KNOWN[key].default)


class SettingsService:
    def __init__(self, session: Session) -> None:
        self.s = session

    @staticmethod
    def _known(key: str) -> Setting:
        if key not in KNOWN:
            raise ValidationError({key: f"unknown setting; known: {', '.join(KNOWN)}"})
        return KNOWN[key]

    def get(self, key: str) -> str:
        """The setting as text (what `config` shows and the settings form edits)."""
        self.s.ensure_open()
        self._known(key)
        return stored_text(self.s.db.conn, key)

    def value(self, key: str) -> Any:
        """The setting as the product uses it (float, None for "the model's own", a dict for ratios)."""
        self.s.ensure_open()
        self._known(key)
        return stored_value(self.s.db.conn, key)

    def all(self) -> dict[str, str]:
        return {k: self.get(k) for k in KNOWN}

    def shown(self, key: str) -> str:
        """The setting as a person reads it (the logo as its size and fingerprint, not its base64 text)."""
        text = self.get(key)
        return logo_summary(text) if key == "hospital_logo" else text

    @staticmethod
    def describe(key: str) -> str:
        return SettingsService._known(key).description

    def set_many(self, values: dict[str, str]) -> list[str]:
        """Several settings from the settings form: every value is checked first and nothing is saved unless all are
        valid (ValidationError naming each bad one); then each changed one is saved, signed and audited. Returns the
        keys that changed."""
        self.s.require(Permission.MANAGE_USERS, "change site settings")
        problems: dict[str, str] = {}
        for key, value in values.items():
            try:
                self._known(key).parse(str(value).strip())
            except ValidationError as exc:   # an unknown key
                problems.update(exc.fields)
            except ValueError as exc:
                problems[key] = str(exc)
        if problems:
            raise ValidationError(problems)
        changed = [k for k, v in values.items() if str(v).strip() != self.get(k)]
        for key in changed:
            self.set(key, values[key])
        return changed

    def set(self, key: str, value: str) -> None:
        self.s.require(Permission.MANAGE_USERS, "change site settings")
        setting = self._known(key)
        value = str(value).strip()
        try:
            parsed = setting.parse(value)
        except ValueError as exc:
            raise ValidationError({key: str(exc)}) from None
        if key == "staffing_ratios":
            value = json.dumps(parsed, sort_keys=True)  # stored normalised, so the audit shows what is used
        if key == "hospital_logo" and value:
            value = _clean_logo(parsed)   # stored as WardLens writes it, whatever was typed
        shown = logo_summary(value) if key == "hospital_logo" else value
        now = dt.datetime.now().isoformat(sep=" ", timespec="seconds")
        trust = self.s.db.trust
        sig = integrity.setting_sig(trust, key, value, now, self.s.user.username) if trust is not None and \
            trust.admin_pub is not None else None
        with self.s.db.transaction() as c:
            c.execute("INSERT INTO settings (key, value, updated_at, updated_by, sig) VALUES (?,?,?,?,?) ON CONFLICT(key) "
                      "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, "
                      "updated_by = excluded.updated_by, sig = excluded.sig",
                      (key, value, now, self.s.user.username, sig))
            audit.append(c, self.s.user.username, "setting_changed", "setting", key, shown)
        if key == "idle_lock_minutes":
            self.s.idle_seconds = parsed * 60.0
