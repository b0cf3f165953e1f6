"""Per-site settings kept inside the encrypted store (admin changes them; every change is audited)."""
from __future__ import annotations

import datetime as dt

from models.domain import Permission
from services.store import audit
from services.core.errors import ValidationError
from services.site.session import Session

# name: (default, parser/validator, description)
KNOWN: dict[str, tuple[str, type, str]] = {
    "idle_lock_minutes": ("10", float, "minutes without keyboard or mouse before the session locks (0 = never)"),
}


class SettingsService:
    def __init__(self, session: Session) -> None:
        self.s = session

    def get(self, key: str) -> str:
        self.s.ensure_open()
        if key not in KNOWN:
            raise ValidationError({key: "unknown setting"})
        row = self.s.db.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else KNOWN[key][0]

    def all(self) -> dict[str, str]:
        return {k: self.get(k) for k in KNOWN}

    def set(self, key: str, value: str) -> None:
        self.s.require(Permission.MANAGE_USERS, "change site settings")
        if key not in KNOWN:
            raise ValidationError({key: "unknown setting"})
        try:
            parsed = KNOWN[key][1](value)
        except ValueError:
            raise ValidationError({key: f"expected a {KNOWN[key][1].__name__}"}) from None
        if key == "idle_lock_minutes" and not 0 <= parsed <= 240:
            raise ValidationError({key: "between 0 and 240 minutes"})
        now = dt.datetime.now().isoformat(sep=" ", timespec="seconds")
        with self.s.db.transaction() as c:
            c.execute("INSERT INTO settings (key, value, updated_at, updated_by) VALUES (?,?,?,?) ON CONFLICT(key) "
                      "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                      (key, str(value), now, self.s.user.username))
            audit.append(c, self.s.user.username, "setting_changed", "setting", key, str(value))
        if key == "idle_lock_minutes":
            self.s.idle_seconds = parsed * 60.0
