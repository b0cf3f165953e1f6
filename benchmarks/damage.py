"""Damaged stores: many mutated copies of a real encrypted store (bit flips in the file and in its WAL,
truncation, zeroed pages, a stale -wal from an earlier moment), each opened the way the application
opens it (services.site.accounts.unlock, then the patient list and every patient's record read back) in its
own forked process, so that a segfault or a hang is caught and classified rather than taking the run down.

    python -m benchmarks.damage --copies 500 [--seed 1] [--json benchmarks/results/damage.json]

Outcomes per copy:
  told       unlock raised a WardLensError (StoreDamaged, KeyFileError...) with its message
  intact     it opened and everything read back equals the state the copy was made from (the flip hit
             free space or was in a WAL frame SQLite ignores)
  older      it opened and shows exactly an earlier committed state: a damaged or cut WAL frame ends
             SQLite's WAL replay there (by design), so the commits after it are not applied; the store
             is consistent but those commits are lost, and nothing in the file can tell (see
             docs/reliability.md)
  SILENT     it opened and shows data that is neither: wrong data shown silently   -> failure
  UNHANDLED  an exception that is not a WardLensError escaped                     -> failure
  CRASH      the process died on a signal (segfault, abort)                        -> failure
  HANG       no answer within the time limit                                       -> failure
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from services.site.accounts import create_store, unlock  # noqa: E402
from services.site.backup import backup, latest_verified_backup  # noqa: E402
from services.core.errors import WardLensError  # noqa: E402
from services.records.importer import import_uci_csv  # noqa: E402
from services.store.keyfile import KdfParams, key_file_path  # noqa: E402
from services.records.patients import PatientService  # noqa: E402

USER, PASSWORD = "admin", "admin-password"
SAMPLE = ROOT / "resources" / "demo" / "uci_sample.csv.gz"
PAGE = 4096
FAILURES = ("SILENT", "UNHANDLED", "CRASH", "HANG")
KINDS = ("bitflip", "bitflip_many", "truncate", "truncate_page", "zero_page", "header", "wal_bitflip",
         "wal_truncate", "stale_wal", "empty")


def content_digest(conn) -> str:
    h = hashlib.sha256()
    for table in ("patients", "encounters", "diagnoses", "medications", "lab_results", "users", "wards"):
        for row in conn.execute(f"SELECT * FROM {table} ORDER BY rowid"):
            h.update(repr(row).encode())
    return h.hexdigest()


def _files(path: Path) -> list[Path]:
    return [Path(str(path) + s) for s in ("", "-wal", "-shm") if Path(str(path) + s).exists()] + [key_file_path(path)]


def _copy(src: Path, dst_dir: Path, with_wal: bool = True) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / src.name
    for f in _files(src):
        if not with_wal and f.name.endswith(("-wal", "-shm")):
            continue
        shutil.copyfile(f, dst_dir / f.name)
    return dst


def build_sources(work: Path) -> dict:
    """State A (with a live WAL, copied while open), state B (checkpointed, later) and a backup of B."""
    store = work / "src" / "site.db"
    store.parent.mkdir(parents=True, exist_ok=True)
    create_store(store, USER, PASSWORD, KdfParams.fast())
    s = unlock(store, USER, PASSWORD)
    lines = __import__("gzip").open(SAMPLE, "rb").read().splitlines(keepends=True)
    import_uci_csv(s, io.BytesIO(b"".join(lines[:1501])), name="part1.csv")
    s.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    digest_a0 = content_digest(s.db.conn)
    import_uci_csv(s, io.BytesIO(b"".join(lines[:1] + lines[1501:2201])), name="part2.csv")
    a = _copy(store, work / "A")            # copied with its WAL holding part2 (the state an open app leaves)
    digest_a = content_digest(s.db.conn)
    svc = PatientService(s)
    for i in range(40):
        svc.add_patient({"mrn": f"DMG{i}", "family_name": f"Later{i}", "sex": "Male", "birth_date": "1960-01-01"})
    import_uci_csv(s, io.BytesIO(b"".join(lines[:1] + lines[2201:])), name="part3.csv")
    s.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    digest_b = content_digest(s.db.conn)
    (work / "backups").mkdir(parents=True, exist_ok=True)
    backup(s, work / "backups" / "site-backup.db")
    s.lock()
    for suffix in ("-wal", "-shm"):
        Path(str(store) + suffix).unlink(missing_ok=True)
    return {"A": a, "B": store, "digest_a": digest_a, "digest_a0": digest_a0, "digest_b": digest_b,
            "backups": work / "backups"}


def mutate(kind: str, src: dict, dst_dir: Path, rng: random.Random) -> tuple[Path, str]:
    """A damaged copy; returns its path and the digest it must show if it opens ('' = state unknown)."""
    if kind in ("wal_bitflip", "wal_truncate"):
        path = _copy(src["A"], dst_dir)
        expect = src["digest_a"]
        target = Path(str(path) + "-wal")
    else:
        path = _copy(src["B"], dst_dir, with_wal=False)
        expect = src["digest_b"]
        target = path
    data = bytearray(target.read_bytes())
    n = len(data)
    if kind in ("bitflip", "wal_bitflip"):
        off = rng.randrange(n)
        data[off] ^= 1 << rng.randrange(8)
    elif kind == "bitflip_many":
        for _ in range(rng.randint(2, 64)):
            off = rng.randrange(n)
            data[off] ^= 1 << rng.randrange(8)
    elif kind in ("truncate", "wal_truncate"):
        del data[rng.randrange(n):]
    elif kind == "truncate_page":
        del data[PAGE * rng.randrange(1, n // PAGE):]
    elif kind == "zero_page":
        p = rng.randrange(n // PAGE)
        data[p * PAGE:(p + 1) * PAGE] = bytes(PAGE)
    elif kind == "header":
        off = rng.randrange(100)
        data[off] ^= 1 << rng.randrange(8)
    elif kind == "empty":
        data = bytearray()
    elif kind == "stale_wal":
        shutil.copyfile(str(src["A"]) + "-wal", str(path) + "-wal")
        return path, "stale"
    target.write_bytes(bytes(data))
    return path, expect


def probe(path: Path) -> dict:
    """What the application does at unlock and first views; runs inside the forked child."""
    try:
        session = unlock(path, USER, PASSWORD)
    except WardLensError as exc:
        return {"outcome": "told", "error": exc.__class__.__name__, "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - the finding
        return {"outcome": "UNHANDLED", "error": exc.__class__.__name__, "message": str(exc)[:300]}
    try:
        svc = PatientService(session)
        rows = svc.search("")
        for r in rows[:50]:
            svc.encounters(r.patient_id)
        return {"outcome": "opened", "digest": content_digest(session.db.conn)}
    except WardLensError as exc:
        return {"outcome": "told", "error": exc.__class__.__name__, "message": str(exc)}
    except Exception as exc:  # noqa: BLE001
        return {"outcome": "UNHANDLED", "error": exc.__class__.__name__, "message": str(exc)[:300]}


def probe_in_child(path: Path, timeout_s: float = 60.0) -> dict:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            res = probe(path)
        except BaseException as exc:  # noqa: BLE001
            res = {"outcome": "UNHANDLED", "error": exc.__class__.__name__, "message": str(exc)[:300]}
        os.write(w, json.dumps(res).encode())
        os._exit(0)
    os.close(w)
    deadline = time.monotonic() + timeout_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(r)
            return {"outcome": "HANG"}
        time.sleep(0.005)
    out = b""
    while chunk := os.read(r, 65536):
        out += chunk
    os.close(r)
    if os.WIFSIGNALED(status):
        return {"outcome": "CRASH", "error": f"signal {os.WTERMSIG(status)}"}
    try:
        return json.loads(out)
    except ValueError:
        return {"outcome": "UNHANDLED", "error": "no result", "message": out[:200].decode(errors="replace")}


def run(copies: int = 40, seed: int = 1, workdir: Path | None = None, log=print) -> dict:
    rng = random.Random(seed)
    own = workdir is None
    work = Path(tempfile.mkdtemp(prefix="wardlens-damage-")) if own else Path(workdir)
    t0 = time.perf_counter()
    try:
        src = build_sources(work)
        counts: dict[str, dict[str, int]] = {}
        failures: list[dict] = []
        messages: dict[str, int] = {}
        offered = 0
        for i in range(copies):
            kind = KINDS[i % len(KINDS)]
            d = work / f"copy{i}"
            path, expect = mutate(kind, src, d, rng)
            res = probe_in_child(path)
            outcome = res["outcome"]
            if outcome == "opened":
                if res["digest"] == expect or (expect == "stale" and res["digest"] == src["digest_b"]):
                    outcome = "intact"
                elif (expect == "stale" and res["digest"] == src["digest_a"]) or (
                        expect == src["digest_a"] and res["digest"] == src["digest_a0"]):
                    outcome = "older"
                else:
                    outcome = "SILENT"
            if outcome == "told":
                messages[f"{res['error']}: {res['message'][:90]}"] = messages.get(
                    f"{res['error']}: {res['message'][:90]}", 0) + 1
                if res["error"] == "StoreDamaged":
                    # the offer the unlock screen makes: the newest backup that verifies now
                    vb = latest_verified_backup(path, USER, PASSWORD, folders=[src["backups"]])
                    offered += vb is not None
            counts.setdefault(kind, {}).setdefault(outcome, 0)
            counts[kind][outcome] += 1
            if outcome in FAILURES:
                failures.append({"copy": i, "kind": kind, **res, "outcome": outcome})
            shutil.rmtree(d, ignore_errors=True)
            if (i + 1) % 50 == 0:
                log(f"{i + 1} copies, {len(failures)} failures, {time.perf_counter() - t0:.0f} s")
        damaged = sum(c.get("told", 0) for c in counts.values())
        return {"copies": copies, "seed": seed, "by_kind": counts, "failures": failures, "messages": messages,
                "store_damaged_with_backup_offered": offered, "told": damaged,
                "seconds": round(time.perf_counter() - t0, 1)}
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--copies", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    res = run(args.copies, args.seed)
    print(f"copies: {res['copies']}  failures: {len(res['failures'])}  told: {res['told']}  "
          f"(backup offered for {res['store_damaged_with_backup_offered']} StoreDamaged)  {res['seconds']} s")
    for kind, c in res["by_kind"].items():
        print(f"  {kind:14s} {c}")
    for m, n in sorted(res["messages"].items(), key=lambda t: -t[1])[:12]:
        print(f"  {n:4d} x {m}")
    for f in res["failures"][:20]:
        print("  FAIL", f)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1), encoding="utf-8")
    return 1 if res["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
