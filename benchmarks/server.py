"""Both stores in one run: `python -m benchmarks --only stores [--quick]`.

The desk store (SQLCipher file) and the server store (a throwaway PostgreSQL 15 cluster with TLS on this machine,
tests/pgcluster.py, reached over verified TLS on loopback) get the same work through the same façades:
- the UCI table imported into an empty store;
- typed search p95 and one encounter's risk p99 at that size (≥ 100,000 encounters in the full run);
- 8 desks at once for a minute: each a session of its own on its own thread doing what a ward desk does (search,
  open a patient, the census, save a patient with the version it read, add a stay); throughput, p95 latency,
  errors, and lost updates (saves that succeeded minus the versions the rows moved by: must be 0).
"""
from __future__ import annotations

import io
import random
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.store import PASSWORD, UCI, USER, timed, topup_bytes, uci_bytes

DESKS = 8
HOT = 20   # patients every desk edits: where two desks saving the same record would lose an update


def _pct(xs: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(xs) * 1000.0, q)) if xs else None


def _stores(tmp: Path, quick: bool):
    """(name, url-or-path) of an empty desk store and an empty server store; the cluster to stop afterwards."""
    import psycopg
    from services.site.accounts import create_store
    from services.site.server_setup import init_server
    from services.store.server import ServerAddress
    from tests import pgcluster
    desk = tmp / "desk.db"
    create_store(desk, USER, PASSWORD)
    cluster = pgcluster.start_cluster()
    with psycopg.connect(cluster.superuser_conninfo(), autocommit=True) as c:
        c.execute("CREATE ROLE bench_dba LOGIN CREATEROLE PASSWORD 'bench-dba-password'")
        c.execute("CREATE DATABASE wl_bench OWNER bench_dba")
    init_server(ServerAddress.parse(cluster.url("wl_bench", "bench_dba")), "bench-dba-password", USER, PASSWORD)
    return [("desk", desk), ("server", cluster.url("wl_bench"))], cluster


def _import(target, quick: bool) -> tuple[float, int]:
    from services.desk import open_desk
    from services.records.importer import import_uci_csv
    d = open_desk(target, USER, PASSWORD)
    try:
        t, rep = timed(import_uci_csv, d.session, io.BytesIO(uci_bytes(20_000 if quick else None)),
                       name="diabetic_data.csv")
        n = rep.imported
        if not quick:   # up to 100,000 encounters, as the desk store's search benchmark
            extra = 100_000 - n
            if extra > 0:
                t2, rep2 = timed(import_uci_csv, d.session, io.BytesIO(topup_bytes(extra)), name="topup.csv")
                n += rep2.imported
        for ward, beds in (("Medicine A", 30), ("Surgery", 30)):
            d.capacity.wards.add_ward(ward, "medical" if ward.startswith("Med") else "surgical", beds)
        return t, n
    finally:
        d.lock()


def _search_and_risk(target) -> dict[str, float | None]:
    from services.desk import open_desk
    d = open_desk(target, USER, PASSWORD)
    try:
        c = d.session.db.conn
        rng = random.Random(3)
        ids = [pid for (pid,) in c.execute("SELECT id FROM patients ORDER BY id")]
        directory = d.session.directory()
        mrns = [directory.get(pid).mrn for pid in rng.sample(ids, min(150, len(ids)))]
        codes = [code for (code,) in c.execute("SELECT DISTINCT code FROM diagnoses ORDER BY code LIMIT 400")]
        queries = [m[:rng.randint(3, len(m))] for m in mrns] + [rng.choice(codes)[:3] for _ in range(100)]
        svc = d.records.patients
        svc.search(queries[0], 200)
        search_t = [timed(svc.search, q, 200)[0] for q in queries]
        picks = c.execute("SELECT patient_id, encounter_nbr FROM encounters ORDER BY id LIMIT 2000").fetchall()
        picks = rng.sample(picks, min(150, len(picks)))
        a = d.risk.assessments
        a.readmission(*picks[0])
        risk_t = [timed(a.readmission, pid, nbr)[0] for pid, nbr in picks]
        return {"search_p95": _pct(search_t, 95), "risk_p99": _pct(risk_t, 99)}
    finally:
        d.lock()


def _load(target, seconds: float) -> dict[str, float]:
    """DESKS sessions on threads, each its own login to the store, for `seconds`."""
    from services.core.errors import EditConflict
    from services.desk import open_desk
    desks = [open_desk(target, USER, PASSWORD) for _ in range(DESKS)]
    conn = desks[0].session.db.conn
    hot = [pid for (pid,) in conn.execute("SELECT id FROM patients ORDER BY id LIMIT ?", (HOT,))]
    start_versions = dict(conn.execute(f"SELECT id, version FROM patients WHERE id IN ({','.join('?' * len(hot))})",
                                       hot).fetchall())
    saved = {pid: 0 for pid in hot}
    lock = threading.Lock()
    lat: list[float] = []
    errors: list[str] = []
    conflicts = [0]
    ops = [0]
    stop = time.monotonic() + seconds

    def work(k: int, d) -> None:
        rng = random.Random(k)
        svc = d.records.patients
        while time.monotonic() < stop:
            r = rng.random()
            t0 = time.perf_counter()
            try:
                if r < 0.45:
                    svc.search(str(rng.randint(10, 99)), 200)
                elif r < 0.75:
                    pid = rng.choice(hot)
                    svc.get_patient(pid)
                    svc.encounters(pid)
                elif r < 0.85:
                    d.census_rows()
                else:
                    pid = rng.choice(hot)
                    p = svc.get_patient(pid)
                    values = {"mrn": p.mrn, "given_name": f"D{k}-{rng.randint(0, 999)}", "family_name":
                              p.family_name or "Bench", "birth_date": p.birth_date or "1950-01-01", "sex": p.sex,
                              "race": p.race, "version": p.version}
                    try:
                        svc.update_patient(pid, values)
                        with lock:
                            saved[pid] += 1
                    except EditConflict:
                        with lock:
                            conflicts[0] += 1
            except Exception as exc:   # noqa: BLE001 - counted: the run must end with none
                with lock:
                    errors.append(f"{exc.__class__.__name__}: {exc}"[:200])
            with lock:
                lat.append(time.perf_counter() - t0)
                ops[0] += 1

    threads = [threading.Thread(target=work, args=(k, d)) for k, d in enumerate(desks)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    end_versions = dict(conn.execute(f"SELECT id, version FROM patients WHERE id IN ({','.join('?' * len(hot))})",
                                     hot).fetchall())
    lost = sum(saved[pid] - (end_versions[pid] - start_versions[pid]) for pid in hot)
    for d in desks:
        d.lock()
    return {"ops_s": ops[0] / wall, "p95": _pct(lat, 95), "errors": len(errors), "lost": lost,
            "conflicts": conflicts[0], "saves": sum(saved.values()), "first_error": errors[0] if errors else ""}


def stores(quick: bool = False) -> list[dict]:
    from benchmarks.cases import row
    from tests import pgcluster
    if not UCI.exists():
        return [row("stores", "both stores", None, "", note=f"skipped: {UCI} absent")]
    if pgcluster.pg_bin() is None:
        return [row("stores", "both stores", None, "", note="skipped: no PostgreSQL server installed")]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as d:
        targets, cluster = _stores(Path(d), quick)
        try:
            for name, target in targets:
                t, n = _import(target, quick)
                rows.append(row("stores", f"{name}: UCI import, {n:,} encounters", t, "s", note=f"{n / t:,.0f} rows/s"))
                sr = _search_and_risk(target)
                rows.append(row("stores", f"{name}: typed search p95 ({n:,} encounters)", sr["search_p95"], "ms", 20.0))
                rows.append(row("stores", f"{name}: one encounter's risk p99", sr["risk_p99"], "ms"))
                load = _load(target, 15.0 if quick else 60.0)
                note = (f"{load['saves']} saves, {load['conflicts']} refused as conflicts"
                        + (f"; first error: {load['first_error']}" if load["first_error"] else ""))
                rows += [row("stores", f"{name}: {DESKS} desks, throughput", load["ops_s"], "ops/s", note=note),
                         row("stores", f"{name}: {DESKS} desks, p95 latency", load["p95"], "ms"),
                         row("stores", f"{name}: {DESKS} desks, errors", load["errors"], "", 0),
                         row("stores", f"{name}: {DESKS} desks, lost updates", load["lost"], "", 0)]
        finally:
            cluster.stop()
    return rows
