"""The encrypted SQLCipher 4 store: raw-key connections, one per thread, WAL with synchronous=FULL."""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sqlcipher3.dbapi2 as sqlcipher

from services.core.errors import NotEncrypted, SessionLocked, StoreDamaged, StoreNotFound, WardLensError

SQLITE_HEADER = b"SQLite format 3\x00"
DatabaseError = sqlcipher.DatabaseError
IntegrityError = sqlcipher.IntegrityError
SQLITE_FULL = 13
# SQLCipher's "enhanced memory security" zeroes and mlocks EVERY SQLite heap allocation, process-wide and
# irreversibly once set. Measured here it made a 20,000-row import 16x slower (33 s against 2 s) and the
# whole UCI table 270 s. SQLCipher sanitises its own key material regardless (the enhancement has been off
# by default since 4.5.0), and Database.close wipes our copy of the key. Sites that want freed page
# buffers zeroed too can set WARDLENS_CIPHER_MEMORY_SECURITY=ON. See docs/performance.md.
CACHE_KIB = -32768
MEMORY_SECURITY = os.environ.get("WARDLENS_CIPHER_MEMORY_SECURITY", "OFF").strip().upper() == "ON"


class DiskFull(WardLensError):
    """The disk (or the file-size limit) ran out while writing; the transaction was rolled back."""

    def __init__(self, path: object = "") -> None:
        where = f" while writing {Path(str(path)).name}" if path else ""
        super().__init__(f"The disk is full{where}. Nothing from this operation was saved; the store is "
                         "unchanged. Free some space and try again.")


def is_disk_full(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == SQLITE_FULL:
        return True
    if isinstance(exc, OSError) and exc.errno in (28, 27):  # ENOSPC, EFBIG
        return True
    return "database or disk is full" in str(exc)


class Connection(sqlcipher.Connection):
    """A connection that carries its session's Trust (services.store.signing), so that code holding only a
    connection inside a transaction (audit.append, settings, the model registry) can sign and check signatures."""
    trust = None


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
        self._plain = False
        self._local = threading.local()
        self._all: list[sqlcipher.Connection] = []
        self._lock = threading.Lock()
        self.trust = None  # set at unlock (services.site.accounts); connections made later inherit it

    def set_trust(self, trust) -> None:
        with self._lock:
            self.trust = trust
            for c in self._all:
                c.trust = trust

    @classmethod
    def open_existing(cls, path: Path | str, key: bytes | bytearray) -> "Database":
        path = Path(path)
        if not path.exists():
            raise StoreNotFound(f"No store at {path}.")
        if is_plain_sqlite(path):
            raise NotEncrypted(path)
        for side in (path, Path(str(path) + "-wal"), Path(str(path) + "-shm"), Path(str(path) + "-journal")):
            if side.is_symlink():   # SQLite would follow it and write pages wherever it points
                raise StoreDamaged(f"{side.name} is a link; WardLens does not open a store through links. Put the "
                                   "real files in place.")
        if path.stat().st_size == 0:
            # Opening would write a fresh header (journal_mode = WAL) and make a blank store of it.
            raise StoreDamaged(f"The store {path.name} is empty: its content was lost. Restore the last verified backup.")
        db = cls(path, key)
        try:
            db.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except DatabaseError as exc:
            db.close()
            raise StoreDamaged(f"The store {path.name} is damaged or unreadable ({exc}). "
                               "Restore the last verified backup.") from exc
        return db

    @classmethod
    def plain_for_benchmark(cls, path: Path | str) -> "Database":
        """An UNENCRYPTED database with the same pragmas, for the encryption-overhead baseline in
        benchmarks/ only. The application never calls this: open_existing and unlock refuse plain files."""
        db = cls(path, b"\x01" * 32)
        db._plain = True
        return db

    @property
    def is_open(self) -> bool:
        return any(self._key)

    def _connect(self) -> sqlcipher.Connection:
        if not self.is_open:
            raise SessionLocked()
        conn = sqlcipher.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10.0,
                                 factory=Connection)
        conn.trust = self.trust
        if not self._plain:
            conn.execute("PRAGMA cipher_log_level = NONE")
            apply_key(conn, self._key)
            if MEMORY_SECURITY:
                conn.execute("PRAGMA cipher_memory_security = ON")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 10000")
        # 32 MiB of decrypted pages per connection (SQLite's default is 2 MiB): at 100,000 encounters the
        # store is ~50 MB, and every page missed is read again AND decrypted and HMAC-checked again. It
        # halved broad patient searches (docs/performance.md). An upper bound, allocated only as used.
        conn.execute(f"PRAGMA cache_size = {CACHE_KIB}")
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
        except BaseException as exc:
            self._rollback(c)
            if isinstance(exc, DatabaseError) and is_disk_full(exc):
                raise DiskFull(self.path) from exc
            raise
        try:
            c.execute("COMMIT")
        except DatabaseError as exc:
            # A failed COMMIT (disk full, I/O error) may leave the transaction open: end it, never half-commit.
            self._rollback(c)
            if is_disk_full(exc):
                raise DiskFull(self.path) from exc
            raise

    @staticmethod
    def _rollback(c: sqlcipher.Connection) -> None:
        # SQLite rolls the whole transaction back by itself after some errors (SQLITE_FULL, SQLITE_IOERR);
        # a second ROLLBACK would then raise "no transaction is active" and hide the real error.
        if c.in_transaction:
            try:
                c.execute("ROLLBACK")
            except DatabaseError:
                pass

    def interrupt(self) -> None:
        """Abort statements running on other threads (sqlite3_interrupt is safe to call across threads),
        so that a lock does not wait for a long query."""
        with self._lock:
            for c in self._all:
                try:
                    c.interrupt()
                except Exception:
                    pass

    def close(self) -> None:
        """Close every thread's connection and wipe the key from memory.

        Callers with worker threads stop them first (interrupt, then wait): closing a connection while
        another thread is inside sqlite3_step would crash the process."""
        self._close_connections()
        self.trust = None  # its private keys go with it (docs/security.md: what the library still holds)
        for i in range(len(self._key)):
            self._key[i] = 0

    def _close_connections(self) -> None:
        with self._lock:
            for c in self._all:
                try:
                    c.close()
                except Exception:
                    pass
            self._all.clear()
        self._local = threading.local()

    def rekey(self, new_key: bytes | bytearray) -> None:
        """Re-encrypt the whole store under `new_key` (SQLCipher rekey) on a connection of its own: every other
        connection of this process is closed first (callers stop their workers), and later ones use the new key."""
        self.interrupt()
        self._close_connections()
        conn = self.conn
        literal = _key_literal(new_key)
        try:
            conn.reset_key(literal)   # sqlite3_rekey: re-encrypts every page
        finally:
            _wipe(literal)
        self._key[:] = new_key   # no bytes() copy: the buffer is wiped at lock
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()   # the connection reads with the new key

    def key_copy(self) -> bytearray:
        """For operations that must open a second file with the same key (backup, restore)."""
        if not self.is_open:
            raise SessionLocked()
        return bytearray(self._key)


def connect_raw(path: Path | str, key: bytes | bytearray, uri: bool = False) -> sqlcipher.Connection:
    """A one-off connection (backup targets, verification of copies; uri=True for 'file:...?mode=ro')."""
    conn = sqlcipher.connect(str(path), isolation_level=None, uri=uri, factory=Connection)
    conn.execute("PRAGMA cipher_log_level = NONE")
    apply_key(conn, key)
    return conn


def _wipe(buf: bytearray) -> None:
    for i in range(len(buf)):
        buf[i] = 0


def _key_literal(key: bytes | bytearray) -> bytearray:
    """SQLCipher's raw-key literal x'<hex>' in a mutable buffer that is wiped after use: no immutable Python string
    holding the key in hex is ever made (PRAGMA key = "..." would leave one to the garbage collector)."""
    digits = b"0123456789abcdef"
    out = bytearray(b"x'") + bytearray(2 * len(key)) + bytearray(b"'")
    for i, b in enumerate(bytes(key) if not isinstance(key, bytearray) else key):
        out[2 + 2 * i], out[3 + 2 * i] = digits[b >> 4], digits[b & 15]
    return out


def apply_key(conn, key: bytes | bytearray) -> None:
    literal = _key_literal(key)
    try:
        conn.set_key(literal)   # sqlite3_key with the raw-key literal: no KDF, no text copy
    finally:
        _wipe(literal)
