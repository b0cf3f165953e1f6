"""An unlocked session: who is logged in, what they may do, the open store, and the idle lock."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

from models.domain import ROLE_PERMISSIONS, Permission, User
from services.store.audit import AuditLog
from services.store.database import Database
from services.core.errors import PermissionDenied, SessionLocked
from services.site.pseudonyms import Pseudonymiser
from services.store.identity import Directory, Ident, IdentityCodec

DEFAULT_IDLE_MINUTES = 10.0


class Session:
    def __init__(self, user: User, db: Database, store_path: Path, idle_minutes: float = DEFAULT_IDLE_MINUTES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.user = user
        self.db = db
        self.store_path = Path(store_path)
        self.audit = AuditLog(db)
        self.idle_seconds = idle_minutes * 60.0
        self._clock = clock
        self._last_activity = clock()
        self._lock = threading.Lock()
        self._locked = False
        self._pseudonyms = Pseudonymiser()  # a fresh key per session, never stored
        self.warnings: list[str] = []        # integrity findings at unlock, shown to the user (services.site.accounts)
        self.on_lock = None                  # re-seals the user's keyring with the newest audit anchor at lock
        self.codec = IdentityCodec(None, False)   # how identifying fields are kept, and this session's identity key
        self._directory: Directory | None = None
        self._dir_lock = threading.Lock()

    @property
    def on_server(self) -> bool:
        """A server store (services.store.server): backups, key rotation and the recovery key are the DBA's there."""
        return getattr(self.db, "kind", "") == "server"

    def set_identity(self, codec: IdentityCodec) -> None:
        """The identity codec for this session (at unlock, and after a rotation gave a new identity key)."""
        old, self.codec, self._directory = self.codec, codec, None
        if old.key is not None and old.key is not codec.key:
            old.key.wipe()

    # --- permissions ----------------------------------------------------------------------------
    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.user.role]

    def require(self, permission: Permission, what: str = "") -> None:
        """Enforced in services: the UI hiding a button is a courtesy, this is the rule."""
        self.ensure_open()
        if not self.can(permission):
            self.audit.record(self.user.username, "denied", "permission", permission.value, what)
            raise PermissionDenied(f"Your role ({self.user.role.value}) may not {what or permission.value.replace('_', ' ')}.")

    @property
    def sees_names(self) -> bool:
        """A care role holding the store's identity key (or on a store not sealed yet)."""
        return self.can(Permission.READ_PATIENT) and self.codec.readable

    def directory(self) -> Directory | None:
        """Who every patient is (services.store.identity.Directory), current with the store; None for a session
        that may not see names."""
        if not self.sees_names:
            return None
        self.ensure_open()
        with self._dir_lock:
            if self._directory is None:
                self._directory = Directory(self.codec)
            d = self._directory
        d.refresh(self.db.conn)
        return d

    def loaded_directory(self) -> Directory | None:
        """The directory as loaded, without checking the store (for patching it with this session's own change)."""
        return self._directory if self.sees_names else None

    def identity_exact(self, patient_id: int) -> Ident | None:
        """One patient's identity read from their own sealed record (not the directory): for the record page and
        reports, where it must be exactly this patient's."""
        if not self.sees_names:
            return None
        row = self.db.conn.execute("SELECT id, mrn, given_name, family_name, birth_date, ident FROM patients "
                                   "WHERE id = ?", (int(patient_id),)).fetchone()
        return self.codec.read_patient(*row) if row else None

    def identity(self, patient_id: int) -> Ident | None:
        d = self.directory()
        return d.get(int(patient_id)) if d is not None else None

    def patient_ref(self, patient_id: int) -> str:
        """The patient's number for the care team; for a de-identified role a pseudonym (a hospital
        number is an identifier too), stable within this session only."""
        who = self.identity(patient_id)
        return who.mrn if who is not None else self._pseudonyms("P", int(patient_id))

    def patient_label(self, patient_id: int) -> str:
        """"Family, Given" for the care team; "Patient <number or pseudonym>" otherwise or without a name."""
        who = self.identity(patient_id)
        return (who.label if who is not None else "") or f"Patient {self.patient_ref(patient_id)}"

    def encounter_ref(self, encounter_id: int, number: int | str) -> str:
        return str(number) if self.sees_names else self._pseudonyms("E", int(encounter_id))

    # --- locking --------------------------------------------------------------------------------
    @property
    def locked(self) -> bool:
        return self._locked

    def ensure_open(self) -> None:
        if self._locked:
            raise SessionLocked()

    def touch(self) -> None:
        self._last_activity = self._clock()

    def idle_for(self) -> float:
        return self._clock() - self._last_activity

    def check_idle(self) -> bool:
        """Lock if idle for longer than the configured time; True if the session is (now) locked."""
        if not self._locked and self.idle_seconds > 0 and self.idle_for() >= self.idle_seconds:
            self.lock(reason="idle")
        return self._locked

    def lock(self, reason: str = "user") -> None:
        with self._lock:
            if self._locked:
                return
            try:
                self.audit.record(self.user.username, "lock", "session", "", reason)
                if self.on_lock is not None:
                    try:
                        self.on_lock.seal(self.db.conn)
                    except OSError:
                        pass  # a full disk must not stop a lock; the anchor from the login stays, still true
            finally:
                self._locked = True
                if self.on_lock is not None:
                    self.on_lock.wipe()
                    self.on_lock = None
                self.db.close()  # closes connections and wipes the key
                if self.codec.key is not None:
                    self.codec.key.wipe()
                self._directory = None

    def log(self, action: str, entity: str = "", entity_id: str | int = "", detail: str = "") -> None:
        self.ensure_open()
        self.audit.record(self.user.username, action, entity, entity_id, detail)
