"""The site façade: settings, accounts, backups, the audit log and the store check, for one session."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from models.domain import AuditEvent, Permission
from services.site import anchors
from services.site.accounts import AccountService
from services.site.backup import backup
from services.site.daily_backup import BackupEntry, DailyResult, list_backups, run_daily
from services.site.session import Session
from services.site.settings import SettingsService
from services.store import integrity
from services.store.identity import identity_problems
from services.store.keyfile import key_file_path
from services.store.migrations import LATEST, current_version
from services.store.verify import VerifyReport, verify_connection


@dataclass(frozen=True)
class StoreInfo:
    path: str
    store_bytes: int        # the encrypted file
    journal_bytes: int      # its write-ahead log, folded in at the next checkpoint
    key_file_bytes: int
    schema_version: int
    latest_schema: int      # what this WardLens writes
    pages: int
    free_pages: int         # space a copy (backup) would not carry


def _size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


class Site:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.settings = SettingsService(session)
        # On the server a person's account is their own PostgreSQL login (services.site.server_accounts)
        if session.on_server:
            from services.site.server_accounts import ServerAccounts
            self.accounts = ServerAccounts(session)
        else:
            self.accounts = AccountService(session)

    def verify(self) -> VerifyReport:
        """Encryption, structure, foreign keys and the audit chain of the whole store. Administrators only
        (it reads the audit log); audited with its verdict, from the GUI and the command line alike."""
        self.session.require(Permission.READ_AUDIT, "verify the store")
        conn = self.session.db.conn
        report = verify_connection(conn)
        trust = self.session.db.trust
        if trust is not None and not self.session.on_server:   # the desk store's keys and anchors
            keys, pending = integrity.user_keys(conn, trust)
            found = anchors.check_workstation(conn, trust.store_id, {**pending, **keys}) + \
                anchors.check_backup_heads(conn, self.session.store_path, trust.store_id, {**pending, **keys})
            report.problems += [p for p in found if p not in report.problems]
        report.problems += identity_problems(conn, self.session.codec)
        report.problems += [f"found at this login: {w}" for w in self.session.warnings
                            if "not the one seen before" in w or "altered outside" in w]
        self.session.log("verify", "store", "", "ok" if report.ok else f"{len(report.problems)} problems")
        return report

    def store_info(self) -> StoreInfo:
        """Where the store is, how large, at which schema version (the Store page; administrators)."""
        self.session.require(Permission.READ_AUDIT, "see the store's details")
        if self.session.on_server:
            from services.store.server_schema import SERVER_VERSION
            conn = self.session.db.conn
            size = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])
            version = int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
            return StoreInfo(self.session.db.path, size, 0, 0, version, SERVER_VERSION, 0, 0)
        conn, path = self.session.db.conn, Path(self.session.store_path)
        return StoreInfo(str(path), _size(path), _size(Path(f"{path}-wal")), _size(key_file_path(path)),
                         current_version(conn), LATEST, int(conn.execute("PRAGMA page_count").fetchone()[0]),
                         int(conn.execute("PRAGMA freelist_count").fetchone()[0]))

    def audit_log(self, limit: int = 5000) -> list[AuditEvent]:
        self.session.require(Permission.READ_AUDIT, "read the audit log")
        events = self.session.audit.recent(limit)
        self.session.log("read", "audit_log", "", f"{len(events)} events")
        return events

    def backup(self, dest: Path | str) -> VerifyReport:
        return backup(self.session, dest)

    def daily_backup(self) -> DailyResult:
        return run_daily(self.session)

    def backups(self) -> list[BackupEntry]:
        if self.session.on_server:
            return []   # a server store's backups are the DBA's, on the server
        return list_backups(self.session)
