"""GUI timings in a fresh offscreen process: cold start to the unlock screen, unlock to a populated main
window, and the longest GUI-thread stall while long jobs run on the BackgroundRunner, measured by an
event-loop heartbeat (a 10 ms QTimer; lateness = interval beyond 10 ms)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, os, sys, time
T0 = float(os.environ["BENCH_T0"])
sys.path.insert(0, ".")
from PySide6.QtCore import QCoreApplication, QElapsedTimer, QTimer
from PySide6.QtWidgets import QApplication
from ui.app import create_window
app = QApplication([])
store = os.environ["BENCH_STORE"]
out = {}
window = create_window(__import__("pathlib").Path(store), app, build_demo=False)
window.show()
vm = window.vm

def wait(pred, timeout=600):
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise TimeoutError("gave up waiting")
        app.processEvents()
        time.sleep(0.001)

ready = []
vm.storeReady.connect(lambda: ready.append(time.time()))
wait(lambda: ready and window.isVisible())
app.processEvents()
out["cold_start_s"] = time.time() - T0

t = time.time()
vm.unlock(os.environ["BENCH_USER"], os.environ["BENCH_PASSWORD"])
wait(lambda: window.workspace is not None and window.workspace.list_vm.model.rowCount() > 0
     and not window.workspace.list_vm.busy)
app.processEvents()
out["unlock_to_list_s"] = time.time() - t
out["list_rows"] = window.workspace.list_vm.model.rowCount()
desk = vm.session   # the Desk: the session and its façades
session = desk.session

# key derivation alone, with the parameters stored for this user
from services.store.keyfile import KeyFile, derive, key_file_path, KdfParams, _unb64
e = KeyFile.load(key_file_path(store)).data["entries"]["user:" + os.environ["BENCH_USER"]]
p = KdfParams(int(e["kdf_n"]), int(e["kdf_r"]), int(e["kdf_p"]))
t = time.perf_counter(); derive(b"x", _unb64(e["salt"]), p); out["kdf_s"] = time.perf_counter() - t

# heartbeat
late = [0.0]
clock = QElapsedTimer(); clock.start()
last = [clock.elapsed()]
def beat():
    now = clock.elapsed()
    late[0] = max(late[0], now - last[0] - 10)
    last[0] = now
hb = QTimer(); hb.setInterval(10); hb.timeout.connect(beat); hb.start()

def measure(label, job):
    done = []
    late[0] = 0.0
    last[0] = clock.elapsed()
    t = time.perf_counter()
    window.runner.run(label, job, on_success=lambda r: done.append(("ok", r)), on_failure=lambda e: done.append(("err", repr(e))))
    wait(lambda: bool(done), timeout=900)
    out.setdefault("stalls", {})[label] = {"max_stall_ms": late[0], "job_s": time.perf_counter() - t,
                                           "result": done[0][0] if done[0][0] == "ok" else done[0][1][:200]}

import io
from benchmarks.store import topup_bytes
data = topup_bytes(int(os.environ.get("BENCH_IMPORT_ROWS", "20000")))
data = data.replace(b"\n", b"\n", 1)
lines = data.splitlines(keepends=True)
data = lines[0] + b"".join(l.replace(b",", b"5,", 1) for l in lines[1:])  # fresh encounter numbers
measure("import", lambda p, c: desk.records.import_csv(io.BytesIO(data), progress=p, cancel=c).imported)

picks = session.db.conn.execute("SELECT encounter_nbr, patient_id FROM encounters ORDER BY random() LIMIT 5000").fetchall()
measure("scoring 5,000 encounters", lambda p, c: len(desk.risk.assessments.readmission_many(dict(picks))))

# patient reports need encounters with dates (imported UCI rows have none; see the report), so the
# ward report over the whole store is timed, plus patient reports where dated encounters exist
measure("ward report (PDF)", lambda p, c: len(desk.reports.ward_pdf()))
pids = [r[0] for r in session.db.conn.execute(
    "SELECT patient_id FROM encounters WHERE admit_time IS NOT NULL ORDER BY random() LIMIT 5")]
if pids:
    measure("5 patient reports (PDF)", lambda p, c: sum(len(desk.reports.patient_pdf(pid)) for pid in pids))

if os.environ.get("BENCH_RETRAIN", "1") == "1":
    measure("retraining", lambda p, c: str(desk.models.retrain(progress=p, cancel=c))[:80])
hb.stop()
print(json.dumps(out))
sys.stdout.flush()
os._exit(0)
"""


def run_child(store: Path, env_extra: dict | None = None, timeout: int = 1500) -> dict:
    with tempfile.TemporaryDirectory() as d:
        copy = Path(d) / store.name
        for suffix in ("", "-wal", "-shm", ".keys"):
            if Path(str(store) + suffix).exists():
                shutil.copyfile(str(store) + suffix, str(copy) + suffix)
        from benchmarks.store import PASSWORD, USER
        env = dict(os.environ, QT_QPA_PLATFORM="offscreen", BENCH_STORE=str(copy), BENCH_USER=USER,
                   BENCH_PASSWORD=PASSWORD, XDG_CONFIG_HOME=str(Path(d) / "config"),
                   # the copy's audit anchors stay with the copy: a desk anchor in the real data folder would be ahead
                   # of the cached store and raise a (true, for this folder) "log rewritten" alarm at the next run
                   WARDLENS_HOME=str(Path(d) / "home"), **(env_extra or {}))
        env["BENCH_T0"] = repr(time.time())
        r = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=timeout)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"GUI benchmark failed ({r.returncode}): {r.stderr[-2000:]}")
    return json.loads(lines[-1])


def run_all(store: Path) -> list[dict]:
    from benchmarks.cases import row
    r = run_child(store)
    out = [row("gui", "cold start to the unlock screen", r["cold_start_s"], "s", 1.0,
               note="fresh interpreter, offscreen; includes imports"),
           row("gui", f"unlock to a populated main window ({r['list_rows']:,} patients)", r["unlock_to_list_s"], "s", 1.5,
               note=f"includes key derivation {r['kdf_s']:.2f} s and the integrity quick_check"),
           row("gui", "key derivation alone (scrypt, calibrated)", r["kdf_s"], "s")]
    for label, s in r.get("stalls", {}).items():
        out.append(row("gui-stall", f"longest GUI stall during {label}", s["max_stall_ms"], "ms", 100.0,
                       note=f"job {s['job_s']:.1f} s, {s['result']}"))
    return out
