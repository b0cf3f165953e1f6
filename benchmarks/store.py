"""Stores the benchmarks run on, built once and cached (default /tmp/wardlens-bench, or $WARDLENS_BENCH_CACHE)."""
from __future__ import annotations

import gzip
import io
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATA = Path(os.environ.get("WARDLENS_DATA", ROOT.parent / "shared" / "data"))  # ../shared/data unless overridden
UCI = DATA / "diabetes130" / "diabetic_data.csv.gz"
CACHE = Path(os.environ.get("WARDLENS_BENCH_CACHE", "/tmp/wardlens-bench"))
USER, PASSWORD = "admin", "bench-admin-password"
TARGET_ENCOUNTERS = 100_000


def uci_bytes(rows: int | None = None) -> bytes:
    data = gzip.open(UCI, "rb").read()
    if rows is None:
        return data
    lines = data.splitlines(keepends=True)
    return b"".join(lines[:rows + 1])


def topup_bytes(n: int) -> bytes:
    """n more encounters: real UCI rows with new encounter numbers (and 1 in 3 with a new patient)."""
    lines = gzip.open(UCI, "rb").read().splitlines(keepends=True)
    out = [lines[0]]
    for i, line in enumerate(lines[1:n + 1]):
        enc, pat, rest = line.split(b",", 2)
        pat = str(int(pat) + 10**9).encode() if i % 3 == 0 else pat
        out.append(str(int(enc) + 10**10).encode() + b"," + pat + b"," + rest)
    return b"".join(out)


def big_store(log=print) -> Path:
    """An encrypted store with 100,000 encounters (the whole UCI table plus 8,378 renumbered rows),
    created with the calibrated (production) key derivation."""
    from services.site.accounts import create_store, unlock
    from services.records.importer import import_uci_csv
    path = CACHE / "big" / "wardlens.db"
    if path.exists() and (path.parent / "ready").exists():
        return path
    shutil.rmtree(path.parent, ignore_errors=True)
    path.parent.mkdir(parents=True)
    if not UCI.exists():
        raise FileNotFoundError(f"needs {UCI}")
    log(f"building the 100,000-encounter store in {path.parent} (once)…")
    create_store(path, USER, PASSWORD)
    s = unlock(path, USER, PASSWORD)
    r = import_uci_csv(s, io.BytesIO(uci_bytes()), name="diabetic_data.csv")
    import_uci_csv(s, io.BytesIO(topup_bytes(TARGET_ENCOUNTERS - r.imported)), name="topup.csv")
    n = s.db.conn.execute("SELECT count(*) FROM encounters").fetchone()[0]
    s.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    s.lock()
    (path.parent / "ready").write_text(str(n))
    return path


def timed(fn, *args, **kw) -> tuple[float, object]:
    t = time.perf_counter()
    r = fn(*args, **kw)
    return time.perf_counter() - t, r
