"""The daily automatic backup: at the first unlock of each day, a verified backup into the site's backup folder (a USB
drive or a network share the hospital names in the settings; by default a folder beside the store), then retention:
the newest `backup_keep_daily` daily backups and the newest of each of the last `backup_keep_monthly` months stay,
older daily ones go. Only files this module named (`<store>-YYYY-MM-DD.db` and their `.keys`) are ever removed.

Any role's session makes it: the copy holds exactly what the store and its key file hold, under the same keys, so
making it reveals nothing to the person logged in; it is audited under their name as an automatic backup."""
from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from models.domain import Permission
from services.site.backup import _read_index, backup
from services.site.session import Session
from services.site.settings import stored_value
from services.store.keyfile import key_file_path


@dataclass
class DailyResult:
    folder: Path
    made: Path | None = None                              # None when today's backup already existed
    removed: list[Path] = field(default_factory=list)     # pruned by retention


@dataclass(frozen=True)
class BackupEntry:
    path: Path
    day: dt.date
    size: int
    verified: bool | None     # True: verified when made (the index says so); None: not recorded by this store
    audit_rows: int | None
    kept_for: str             # "daily", "monthly" or "" (would go at the next prune)


def folder_of(session: Session) -> Path:
    text = str(stored_value(session.db.conn, "backup_folder") or "").strip()
    return Path(text).expanduser() if text else session.store_path.parent / f"{session.store_path.stem}-backups"


def _pattern(store: Path) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(store.stem)}-(\d{{4}}-\d{{2}}-\d{{2}})\.db$")


def _dated(folder: Path, store: Path) -> list[tuple[dt.date, Path]]:
    pat, out = _pattern(store), []
    if folder.is_dir():
        for p in folder.iterdir():
            m = pat.match(p.name)
            if m and p.is_file() and not p.is_symlink():
                try:
                    out.append((dt.date.fromisoformat(m.group(1)), p))
                except ValueError:
                    continue
    return sorted(out)


def retention(days: list[dt.date], keep_daily: int, keep_monthly: int) -> dict[dt.date, str]:
    """What each day's backup is kept for: the newest `keep_daily` days, and the newest backup of each of the newest
    `keep_monthly` months. Days not in the answer go."""
    kept: dict[dt.date, str] = {d: "daily" for d in sorted(days)[-keep_daily:]} if keep_daily > 0 else {}
    newest_of_month: dict[tuple[int, int], dt.date] = {}
    for d in sorted(days):
        newest_of_month[(d.year, d.month)] = d
    for month in sorted(newest_of_month)[-keep_monthly:] if keep_monthly > 0 else []:
        kept.setdefault(newest_of_month[month], "monthly")
    return kept


def run_daily(session: Session, today: dt.date | None = None) -> DailyResult:
    """Today's backup if there is none yet, then retention. Raises what backup() raises (a full disk, a folder that is
    not there: the caller shows it; nothing half-written is left)."""
    session.require(Permission.READ_DEIDENTIFIED, "make the daily backup")
    today = today or dt.date.today()
    folder = folder_of(session)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    result = DailyResult(folder)
    dest = folder / f"{session.store_path.stem}-{today.isoformat()}.db"
    if not dest.exists():
        backup(session, dest, automatic=True)
        result.made = dest
    dated = _dated(folder, session.store_path)
    kept = retention([d for d, _ in dated], int(stored_value(session.db.conn, "backup_keep_daily")),
                     int(stored_value(session.db.conn, "backup_keep_monthly")))
    for day, path in dated:
        if day not in kept and day != today:
            for p in (path, key_file_path(path)):
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
            result.removed.append(path)
    if result.removed:
        session.log("backup_pruned", "store", "", f"{len(result.removed)} old daily backups removed from {folder.name}")
    return result


def list_backups(session: Session) -> list[BackupEntry]:
    """The backups in the site's backup folder, newest first, with what the backup index recorded when each was made."""
    session.require(Permission.READ_DEIDENTIFIED, "see backups")
    folder = folder_of(session)
    index = {str(Path(e.get("path", "")).resolve()): e for e in _read_index(session.store_path)
             if isinstance(e, dict)}
    dated = _dated(folder, session.store_path)
    kept = retention([d for d, _ in dated], int(stored_value(session.db.conn, "backup_keep_daily")),
                     int(stored_value(session.db.conn, "backup_keep_monthly")))
    out = []
    for day, path in reversed(dated):
        e = index.get(str(path.resolve()))
        rows = e.get("audit_rows") if e else None
        out.append(BackupEntry(path, day, path.stat().st_size, True if e else None,
                               int(rows) if isinstance(rows, int) else None, kept.get(day, "")))
    return out

