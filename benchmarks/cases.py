"""Benchmark cases. Each returns rows: dict(case, metric, value, unit, target, ok, note)."""
from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.store import PASSWORD, ROOT, UCI, USER, big_store, timed, uci_bytes


def row(case, metric, value, unit, target=None, higher_is_better=False, note=""):
    ok = None
    if target is not None and value is not None:
        ok = value >= target if higher_is_better else value <= target
    return {"case": case, "metric": metric, "value": None if value is None else round(float(value), 4), "unit": unit,
            "target": target, "ok": ok, "note": note}


def _pct(xs, q):
    return float(np.percentile(np.asarray(xs) * 1000.0, q))


# --- import: encrypted against plain SQLite ----------------------------------------------------------------

def import_encrypted_vs_plain(quick: bool = False, repeats: int = 2) -> list[dict]:
    from models.domain import Role, User
    from services.store.database import Database
    from services.records.importer import import_uci_csv
    from services.store.keyfile import new_data_key
    from services.store.migrations import migrate
    from services.site.session import Session
    if not UCI.exists():
        return [row("import", "UCI table", None, "s", note=f"skipped: {UCI} absent")]
    data = uci_bytes(20_000 if quick else None)
    times: dict[str, list[float]] = {"encrypted": [], "plain": []}
    n = 0
    for _ in range(repeats):
        for mode in ("encrypted", "plain"):  # alternate, so load on the shared machine hits both alike
            with tempfile.TemporaryDirectory() as d:
                path = Path(d) / "s.db"
                db = Database.plain_for_benchmark(path) if mode == "plain" else Database(path, new_data_key())
                migrate(db.conn)
                s = Session(User(USER, Role.ADMIN, "bench"), db, path)
                t, rep = timed(import_uci_csv, s, io.BytesIO(data), name="diabetic_data.csv")
                n = rep.imported
                times[mode].append(t)
                db.close()
    enc, plain = min(times["encrypted"]), min(times["plain"])
    return [row("import", f"{n:,} rows, encrypted", enc, "s", note=f"best of {repeats}; {n / enc:,.0f} rows/s"),
            row("import", f"{n:,} rows, plain SQLite (same code)", plain, "s", note=f"best of {repeats}"),
            row("import", "encrypted / plain", enc / plain, "x", 1.25)]


# --- search at 100,000 encounters ---------------------------------------------------------------------

def _session():
    """The big store opened as every command opens it (services.desk): the session and its façades."""
    from services.desk import open_desk
    return open_desk(big_store(), USER, PASSWORD)


def search(n_queries: int = 300) -> list[dict]:
    """Typed queries of 3+ characters: 60 % patient-number prefixes, 25 % diagnosis-code prefixes drawn
    from stored diagnoses (so common codes such as 250 come up as often as clinicians would type them), 15 % words
    of those diagnoses' titles typed part-way ("heart fai")."""
    s = _session()
    try:
        svc = s.records.patients
        c = s.session.db.conn
        n_enc = c.execute("SELECT count(*) FROM encounters").fetchone()[0]
        d = s.session.directory()   # numbers are sealed in the store: drawn from the session's directory
        order = d.order()
        mrns = [d.get(pid).mrn for pid in random.Random(2).sample(order, min(200, len(order)))]
        codes = [m for (m,) in c.execute("SELECT code FROM diagnoses ORDER BY random() LIMIT 100")]
        from services.records.codes import diagnosis_title
        titles = [t for t in (diagnosis_title(code) for code in codes) if len(t) >= 6]
        rng = random.Random(1)
        queries = []
        for _ in range(n_queries):
            r = rng.random()
            kind = "mrn" if r < 0.6 else "dx" if r < 0.85 else "title"
            src = rng.choice(mrns if kind == "mrn" else codes if kind == "dx" else titles)
            if kind == "title":   # the first one or two words, the last typed part-way
                words = src.lower().replace(",", " ").split()[:rng.randint(1, 2)]
                last = words[-1]
                src = " ".join(words[:-1] + [last[:rng.randint(min(4, len(last)), len(last))]])
                queries.append((kind, src))
                continue
            queries.append((kind, src[:rng.randint(3, len(src))] if len(src) > 3 else src))
        from viewmodels.patients_vm import PatientListViewModel
        page = PatientListViewModel.PAGE  # what the patient list asks for while the user types
        svc.search(queries[0][1], page)  # warm the page cache as a running application has it
        times: dict[str, list[float]] = {"page": [], "mrn": [], "dx": [], "title": [], "unpaged": []}
        sizes = []
        for kind, q in queries:
            t, rows = timed(svc.search, q, page)
            times["page"].append(t)
            times[kind].append(t)
            t, rows = timed(svc.search, q)
            times["unpaged"].append(t)
            sizes.append(len(rows))
        t_all, all_rows = timed(svc.search, "")
        return [row("search", f"typed query p50, {n_enc:,} encounters (a page of {page})", _pct(times["page"], 50), "ms"),
                row("search", f"typed query p95 (a page of {page}, as the list asks)", _pct(times["page"], 95), "ms",
                    20.0, note=f"{n_queries} queries; median {int(np.median(sizes))} matches, max {max(sizes):,}"),
                row("search", "  patient-number prefixes p95", _pct(times["mrn"], 95), "ms", 20.0),
                row("search", "  diagnosis-code prefixes p95", _pct(times["dx"], 95), "ms", 20.0,
                    note="a code like 250 matches ~29,000 patients"),
                row("search", "  diagnosis-title words p95", _pct(times["title"], 95), "ms", 20.0,
                    note="'heart fai': the codes whose titles have those words, then their patients"),
                row("search", "typed query p95, every match returned", _pct(times["unpaged"], 95), "ms",
                    note="not what the list does; the cost of returning tens of thousands of rows"),
                row("search", f"whole list ({len(all_rows):,} patients)", t_all * 1000, "ms",
                    note="empty query: the list the main window shows")]
    finally:
        s.lock()


# --- readmission risk -----------------------------------------------------------------------------------

def risk(n: int = 200) -> list[dict]:
    s = _session()
    try:
        c = s.session.db.conn
        picks = c.execute("SELECT patient_id, encounter_nbr FROM encounters ORDER BY random() LIMIT ?", (n,)).fetchall()
        a = s.risk.assessments
        a.readmission(*picks[0])
        frames = {}
        times = []
        for pid, nbr in picks:
            t, _ = timed(a.readmission, pid, nbr)
            times.append(t)
        # the scoring step alone: features, ONNX, factors for one encounter with its history
        svc = s.risk.model.get()
        pure = []
        for pid, nbr in picks[:100]:
            f = frames.get(pid)
            if f is None:
                f = frames[pid] = a.patients.uci_frame([pid]).drop(columns=["status", "admit_time", "discharge_time",
                                                                            "_pid", "_eid"])
            t, _ = timed(svc.score_frame, f, [nbr])
            pure.append(t)
        return [row("risk", "one encounter from the store p50", _pct(times, 50), "ms"),
                row("risk", "one encounter from the store p99", _pct(times, 99), "ms", 5.0,
                    note="read history + features + ONNX + factors + LACE/HOSPITAL + audited (fsync) log row"),
                row("risk", "scoring step alone p99", _pct(pure, 99), "ms", 5.0, note="features + ONNX + factors")]
    finally:
        s.lock()


def batch_onnx_vs_xgboost(rows_n: int = 50_000) -> list[dict]:
    """Throughput through onnxruntime against native XGBoost on the same rows and the same trees.

    The bundle keeps ONNX + tree arrays, not an XGBoost model, so a model of the bundle's size is trained
    here on the bundle's features, converted with onnxmltools, and both are timed on the same matrix."""
    if not UCI.exists():
        return [row("batch", "ONNX vs XGBoost", None, "x", note=f"skipped: {UCI} absent")]
    import pandas as pd
    import xgboost as xgb
    from services.risk.assessment import bundled_readmission
    from services.risk.features import build_features
    from services.risk.readmission import normalise_uci_frame
    df = normalise_uci_frame(pd.read_csv(UCI, dtype=str, keep_default_na=False, nrows=rows_n))
    x = build_features(df).to_numpy(dtype=np.float32)
    y = (df["readmitted"] == "<30").to_numpy().astype(np.float32)
    out = []
    svc = bundled_readmission()
    t_app, _ = min((timed(svc.predict_matrix, x) for _ in range(3)), key=lambda t: t[0])
    out.append(row("batch", f"bundled model via ONNX, {len(x):,} rows", len(x) / t_app, "rows/s", higher_is_better=True))
    try:
        import onnxruntime as ort
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError as exc:
        out.append(row("batch", "ONNX / native XGBoost", None, "x", note=f"skipped: {exc}"))
        return out
    booster = xgb.train({"max_depth": 4, "eta": 0.05, "objective": "binary:logistic", "nthread": 1},
                        xgb.DMatrix(x, label=y), num_boost_round=300)
    from onnx import helper

    from services.modelops.readmission_build import _margin_booster
    # The form the bundle ships (services/modelops/readmission_build.py): the trees as a TreeEnsembleRegressor on
    # the margin, then Sigmoid. 15-20 % faster in onnxruntime than onnxmltools' TreeEnsembleClassifier.
    onx = convert_xgboost(_margin_booster(booster), initial_types=[("input", FloatTensorType([None, x.shape[1]]))],
                          target_opset=15)
    (node,), (output,) = onx.graph.node, onx.graph.output
    node.output[0] = "margin"
    onx.graph.node.append(helper.make_node("Sigmoid", ["margin"], ["probability"]))
    if not any(o.domain in ("", "ai.onnx") for o in onx.opset_import):
        onx.opset_import.append(helper.make_opsetid("", 15))
    output.name = "probability"
    res = {}
    for threads in (1, os.cpu_count() or 1):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(onx.SerializeToString(), so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        booster.set_param({"nthread": threads})
        t_onnx, _ = min((timed(sess.run, None, {name: x}) for _ in range(5)), key=lambda t: t[0])
        t_xgb, _ = min((timed(booster.inplace_predict, x) for _ in range(5)), key=lambda t: t[0])
        t_dm, _ = min((timed(lambda: booster.predict(xgb.DMatrix(x))) for _ in range(5)), key=lambda t: t[0])
        res[threads] = (t_onnx, t_xgb, t_dm)
        if threads == 1:
            diff = float(np.abs(sess.run(None, {name: x})[0].reshape(-1) - booster.inplace_predict(x)).max())
    t_onnx, t_xgb, t_dm = res[1]
    out += [row("batch", "same 300 trees via ONNX, 1 thread", len(x) / t_onnx, "rows/s", higher_is_better=True,
                note="TreeEnsembleRegressor on the margin + Sigmoid, as the bundle ships"),
            row("batch", "same 300 trees via native XGBoost inplace_predict, 1 thread", len(x) / t_xgb, "rows/s",
                higher_is_better=True, note="XGBoost's fastest path"),
            row("batch", "same 300 trees via XGBoost DMatrix + predict, 1 thread", len(x) / t_dm, "rows/s",
                higher_is_better=True),
            row("batch", "ONNX / native throughput (inplace_predict), 1 thread", t_xgb / t_onnx, "x", 1.0,
                higher_is_better=True, note=f"max |p diff| {diff:.1e}"),
            row("batch", "ONNX / XGBoost DMatrix + predict, 1 thread", t_dm / t_onnx, "x",
                higher_is_better=True, note="context only: not the fastest native path")]
    if len(res) > 1:
        n = max(res)
        t_onnx, t_xgb, _ = res[n]
        out.append(row("batch", f"ONNX / native throughput, {n} threads", t_xgb / t_onnx, "x", 1.0, higher_is_better=True,
                       note="threads compete with other users of this shared machine"))
    return out


# --- X-ray ------------------------------------------------------------------------------------------------

def xray() -> list[dict]:
    bundle = ROOT / "resources" / "models" / "xray" / "model.onnx"
    if not bundle.exists():
        return [row("xray", "classify one image (decode included)", None, "ms", 100.0,
                    note="skipped: resources/models/xray is not committed yet"),
                row("xray", "heat map", None, "ms", 1000.0, note="skipped: no X-ray bundle")]
    from PIL import Image
    from services.imaging.xray import XrayService
    svc = XrayService()
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "cxr.png"
        g = (np.random.default_rng(0).random((1024, 1024)) * 255).astype(np.uint8)
        Image.fromarray(g).save(p)
        svc.classify_file(p)
        ts = [timed(svc.classify_file, p)[0] for _ in range(10)]
        res = svc.classify_file(p)
        top = res.top_finding() if callable(res.top_finding) else res.top_finding
        th = [timed(res.heatmap, top, (1024, 1024))[0] for _ in range(5)]
    return [row("xray", "classify one 1024x1024 PNG, decode included, p50", _pct(ts, 50), "ms", 100.0),
            row("xray", "heat map", _pct(th, 50), "ms", 1000.0)]


# --- memory and start-up in fresh processes ----------------------------------------------------------------

HWM = """
def hwm_mb():
    # VmHWM of this process image. Not ru_maxrss: on Linux that survives exec and starts at the parent's peak.
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            return int(line.split()[1]) / 1024
"""


def _child(code: str, timeout: int = 300, env: dict | None = None) -> dict:
    e = dict(os.environ, QT_QPA_PLATFORM="offscreen", **(env or {}))
    r = subprocess.run([sys.executable, "-c", HWM + code], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=e)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark child failed ({r.returncode}): {r.stderr[-1500:]}")
    return json.loads(lines[-1])


def memory() -> list[dict]:
    store = big_store()
    code = f"""
import json, resource, sys
sys.path.insert(0, '.')
from services.desk import open_desk
s = open_desk({str(store)!r}, {USER!r}, {PASSWORD!r})
rows = s.records.patients.search('')
a = s.risk.assessments
picks = s.session.db.conn.execute("SELECT encounter_nbr, patient_id FROM encounters ORDER BY random() LIMIT 2000").fetchall()
a.readmission_many(dict(picks))
print(json.dumps({{"rss_mb": hwm_mb(), "rows": len(rows)}}))
"""
    r = _child(code)
    return [row("memory", f"peak RSS: unlock, list {r['rows']:,} patients, score 2,000 (services)", r["rss_mb"], "MB", 500.0)]


def import_peak_rss(rows: int = 300_000) -> list[dict]:
    """A generated file far larger than the store's cache, streamed: peak RSS should not follow file size.
    The file is written by this process; the child only imports it, so its peak is the import's."""
    if not UCI.exists():
        return [row("import-rss", "streamed import", None, "MB", note="skipped: UCI table absent")]
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "big.csv"
        lines = uci_bytes().splitlines(keepends=True)
        n, k = 0, 0
        with open(src, "wb") as f:
            f.write(lines[0])
            while n < rows:
                for ln in lines[1:]:
                    enc, rest = ln.split(b",", 1)
                    f.write(str(int(enc) + k * 10**9).encode() + b"," + rest)
                    n += 1
                    if n >= rows:
                        break
                k += 1
        del lines
        code = f"""
import json, resource, sys, tempfile, time
sys.path.insert(0, '.')
from pathlib import Path
from services.site.accounts import create_store, unlock
from services.records.importer import import_uci_csv
from services.store.keyfile import KdfParams
d = Path(tempfile.mkdtemp())
create_store(d / 's.db', 'admin', 'admin-password', KdfParams.fast())
s = unlock(d / 's.db', 'admin', 'admin-password')
base = hwm_mb()
t = time.perf_counter(); r = import_uci_csv(s, Path({str(src)!r})); t = time.perf_counter() - t
print(json.dumps({{"rows": r.imported, "s": t, "peak_mb": hwm_mb(), "base_mb": base}}))
"""
        size_mb = src.stat().st_size / 2**20
        r = _child(code, timeout=900)
    return [row("import-rss", f"streamed import of a {size_mb:.0f} MB file ({r['rows']:,} rows): peak RSS", r["peak_mb"],
                "MB", note=f"{r['s']:.0f} s; {r['base_mb']:.0f} MB before the import; growth "
                           f"{r['peak_mb'] - r['base_mb']:.0f} MB = id sets + page cache, not the file")]


def gui() -> list[dict]:
    from benchmarks import gui as g
    return g.run_all(big_store())


def interop(quick: bool = False) -> list[dict]:
    from benchmarks import interop as i
    return i.run(quick)


def stores(quick: bool = False) -> list[dict]:
    from benchmarks import server
    return server.stores(quick)


CASES = {"import": import_encrypted_vs_plain, "search": search, "risk": risk, "batch": batch_onnx_vs_xgboost,
         "xray": xray, "memory": memory, "import-rss": import_peak_rss, "gui": gui, "interop": interop,
         "stores": stores}
