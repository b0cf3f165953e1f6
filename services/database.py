"""The encrypted SQLCipher 4 store: raw-key connections, one per thread, WAL with synchronous=FULL."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlcipher3.dbapi2 as sqlcipher

from services.errors import NotEncrypted, SessionLocked, StoreDamaged, StoreNotFound

SQLITE_HEADER = b"SQLite format 3\x00"
DatabaseError = sqlcipher.DatabaseError
IntegrityError = sqlcipher.IntegrityError


def is_plain_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(16) == SQLITE_HEADER
    except OSError:
        return False


class Database:
    """Holds the data key while unlocked; hands each thread its own connection.

    Connections run in autocommit mode (isolation_level=None) so that transactions are explicit:
    `with db.transaction():` takes the write lock up front (BEGIN IMMEDIATE) and either commits all or
    nothing.
    """

    def __init__(self, path: Path | str, key: bytes | bytearray) -> None:
        self.path = Path(path)
        self._key = bytearray(key)
        self._local = threading.local()
        self._all: list[sqlcipher.Connection] = []
        self._lock = threading.Lock()

    @classmethod
    def open_existing(cls, path: Path | str, key: bytes | bytearray) -> "Database":
        path = Path(path)
        if not path.exists():
            raise StoreNotFound(f"No store at {path}.")
        if is_plain_sqlite(path):
            raise NotEncrypted(path)
        db = cls(path, key)
        try:
            db.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except DatabaseError as exc:
            db.close()
            raise StoreDamaged(f"The store {path.name} is damaged or unreadable ({exc}). "
                               "Restore the last verified backup.") from exc
        return db

    @property
    def is_open(self) -> bool:
        return any(self._key)

    def _connect(self) -> sqlcipher.Connection:
        if not self.is_open:
            raise SessionLocked()
        conn = sqlcipher.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10.0)
        conn.execute("PRAGMA cipher_log_level = NONE")
        # PRAGMA key cannot take a bound parameter; the value is hex only, so formatting is safe.
        conn.execute(f"PRAGMA key = \"x'{self._key.hex()}'\"")
        conn.execute("PRAGMA cipher_memory_security = ON")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 10000")
        try:
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
            conn.execute("PRAGMA synchronous = FULL")
        except DatabaseError:
            conn.close()
            raise
        return conn

    @property
    def conn(self) -> sqlcipher.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._connect()
            self._local.conn = c
            with self._lock:
                self._all.append(c)
        return c

    @contextmanager
    def transaction(self) -> Iterator[sqlcipher.Connection]:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        else:
            c.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection and wipe the key from memory."""
        with self._lock:
            for c in self._all:
                try:
                    c.close()
                except Exception:
                    pass
            self._all.clear()
        self._local = threading.local()
        for i in range(len(self._key)):
            self._key[i] = 0

    def key_copy(self) -> bytearray:
        """For operations that must open a second file with the same key (backup, restore)."""
        if not self.is_open:
            raise SessionLocked()
        return bytearray(self._key)


def connect_raw(path: Path | str, key: bytes | bytearray) -> sqlcipher.Connection:
    """A one-off connection (backup targets, verification of copies)."""
    conn = sqlcipher.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA cipher_log_level = NONE")
    conn.execute(f"PRAGMA key = \"x'{bytes(key).hex()}'\"")
    return conn
