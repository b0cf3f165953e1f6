#!/usr/bin/env python3
"""Smoke test of the FROZEN WardLens bundle (dist/WardLens/), headless and offline.

    python3 installer/smoke_test.py [--bundle dist/WardLens] [--no-strace] [--keep]

Standard library only: it runs with any python3, never with the project's virtual environments, so the
frozen executable cannot borrow their modules. Steps (each a run of dist/WardLens/WardLens):

  0. layout: executable, resources (stylesheet, icons, demo sample, every model bundle with a matching
     sha256), the Qt plugins (platforms offscreen + xcb, imageformats svg, iconengines svg), no torch,
     and every bundled ELF file resolves its libraries (ldd shows no "not found")
  1. demo --db TMP/demo.db
  2. score readmission and score los on the first rows of the bundled demo sample; outputs checked
  3. verify with the demo admin login (WARDLENS_USER / WARDLENS_PASSWORD)
  4. xray classify on a generated PNG and a generated 16-bit DICOM (decoded by pydicom, then refused as not
     radiographs) plus a real radiograph when one is at hand (WARDLENS_SMOKE_XRAY, or
     ../shared/data/nih_cxr/originals), when the bundle carries resources/models/xray (else skipped)
  5. the GUI, offscreen, on the demo store: quits by itself after a few seconds (hidden --smoke-seconds),
     exit status 0, the platform and SVG icon plugins really loaded; again with the xcb platform under Xvfb
     when xvfb-run is installed (the X server is not traced; only WardLens is)
  6. report ward (reportlab PDF)
  7. frozen checks: what no sub-command reaches, run INSIDE the bundle by the build's check executable
     (build/pyinstaller/wardlens/wardlens-check: the same code archive and runtime hooks as WardLens, copied
     beside a link to the bundle's _internal/, running frozen_checks() of this file): Qt's ICU text services,
     every page of an administrator's workspace, the dashboards (pandas, scikit-learn, SciPy) and a chart
     exported to PNG, beds and staff (scipy.stats, scipy.optimize.milp), reports rendered by pypdfium2 and
     printed to a PDF QPrinter, local retraining and recalibration (xgboost, onnxmltools, onnx)

Every run fails the test on a non-zero exit (unless expected), a time-out, or "Traceback" / a Qt plugin
error in its output. Every run goes under `strace -f -e trace=connect,sendto,sendmsg,sendmmsg`: any
AF_INET or AF_INET6 address fails the test (AF_UNIX and netlink are fine), with one exception named in
the output: in the frozen checks QPrinter's CUPS plugin asks the local CUPS server for printers at
127.0.0.1:631 / [::1]:631 (loopback only) when /run/cups/cups.sock is absent. HOME, XDG folders and
WARDLENS_HOME point into the temporary folder, so nothing touches the real user's data, and the test checks
that onnxruntime left no telemetry folder (~/.cache/Microsoft) behind.
Exit status 0 when every step passed.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INET = re.compile(r"sa_family=AF_INET6?\b")
BAD_OUTPUT = (
    "Traceback (most recent call last)",
    "ModuleNotFoundError",
    "ImportError",
    "Could not load the Qt platform plugin",
    "Could not find the Qt platform plugin",
    "This application failed to start",
    "Fatal Python error",
    "Segmentation fault",
)


def _strace_fast_flags() -> list[str]:
    """--seccomp-bpf stops the child only at the traced calls (the demo store build is 5x slower without it)."""
    try:
        ok = subprocess.run(["strace", "--seccomp-bpf", "-f", "-qq", "-o", os.devnull, "-e", "trace=connect", "true"],
                            capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return ["--seccomp-bpf"] if ok else []


STRACE_FAST: list[str] = []


def _strace_sees_inet() -> bool:
    """The guard must be able to fail: a connect() to 127.0.0.1:9 (refused, nothing leaves the host) is reported."""
    probe = ("import socket\ns = socket.socket()\ntry:\n    s.connect(('127.0.0.1', 9))\nexcept OSError:\n    pass\n")
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as trace:
        subprocess.run(["strace", *STRACE_FAST, "-f", "-qq", "-o", trace.name, "-e",
                        "trace=connect,sendto,sendmsg,sendmmsg", sys.executable, "-c", probe],
                       capture_output=True, timeout=60)
        return any(INET.search(line) for line in Path(trace.name).read_text(errors="replace").splitlines())


class SmokeFailure(Exception):
    pass


class Runner:
    def __init__(self, exe: Path, tmp: Path, use_strace: bool) -> None:
        self.exe = exe
        self.tmp = tmp
        self.use_strace = use_strace
        self.home = tmp / "home"
        for d in ("home", "home/.config", "home/.cache", "home/.local/share", "runtime", "wardlens-home"):
            (tmp / d).mkdir(parents=True, exist_ok=True)
        os.chmod(tmp / "runtime", 0o700)
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "XDG_DATA_HOME": str(self.home / ".local/share"),
            "XDG_RUNTIME_DIR": str(tmp / "runtime"),
            "WARDLENS_HOME": str(tmp / "wardlens-home"),
            "QT_QPA_PLATFORM": "offscreen",
            "LANG": "C.UTF-8",
            "TMPDIR": str(tmp),
        }
        self.connects: list[str] = []
        self.loopback: list[str] = []   # allowed connects to this machine (CUPS at 127.0.0.1:631 / [::1]:631)
        self.runs = 0

    def run(self, name: str, args: list[str], extra_env: dict[str, str] | None = None, timeout: float = 300,
            ok_codes: tuple[int, ...] = (0,), allow_in_output: tuple[str, ...] = (),
            wrapper: list[str] | None = None, exe: Path | None = None,
            loopback_ports: tuple[int, ...] = ()) -> subprocess.CompletedProcess:
        env = dict(self.env, **(extra_env or {}))
        cmd = [str(exe or self.exe), *args]
        trace = self.tmp / f"strace-{self.runs:02d}-{name}.txt"
        self.runs += 1
        if self.use_strace:
            cmd = ["strace", *STRACE_FAST, "-f", "-qq", "-o", str(trace), "-e", "trace=connect,sendto,sendmsg,sendmmsg", *cmd]
        cmd = [*(wrapper or []), *cmd]   # e.g. xvfb-run: the X server itself is not traced
        t0 = time.monotonic()
        try:
            proc = subprocess.run(cmd, env=env, cwd=self.tmp, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise SmokeFailure(f"{name}: no exit after {timeout:.0f} s\n{_tail(exc.stdout)}{_tail(exc.stderr)}") from None
        elapsed = time.monotonic() - t0
        output = proc.stdout + proc.stderr
        if proc.returncode not in ok_codes:
            raise SmokeFailure(f"{name}: exit status {proc.returncode} (expected {ok_codes})\n{_tail(output)}")
        for bad in BAD_OUTPUT:
            if bad in output and bad not in allow_in_output:
                raise SmokeFailure(f"{name}: {bad!r} in its output\n{_tail(output)}")
        allowed: list[str] = []
        if self.use_strace:
            hits = [line.strip() for line in trace.read_text(errors="replace").splitlines() if INET.search(line)]
            allowed = [h for h in hits if _loopback_to(h, loopback_ports)]
            hits = [h for h in hits if h not in allowed]
            self.loopback += allowed
            if hits:
                self.connects += hits
                raise SmokeFailure(f"{name}: network access (AF_INET/AF_INET6):\n  " + "\n  ".join(hits[:10]))
        note = f"  (strace: no AF_INET/AF_INET6{' except loopback port ' + '/'.join(map(str, loopback_ports)) if allowed else ''})"
        print(f"  ok  {name:<28} {elapsed:6.1f} s" + (note if self.use_strace else ""))
        return proc


LOOPBACK = re.compile(r'sin6?_port=htons\((\d+)\).*(inet_addr\("127\.0\.0\.1"\)|inet_pton\(AF_INET6, "::1")')


def _loopback_to(line: str, ports: tuple[int, ...]) -> bool:
    """A connect() to 127.0.0.1 or ::1 on one of `ports` (never anything off this machine)."""
    m = LOOPBACK.search(line)
    return bool(m) and int(m.group(1)) in ports and "connect(" in line


def _tail(text: str | bytes | None, n: int = 3000) -> str:
    if not text:
        return ""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return text[-n:] + ("\n" if not text.endswith("\n") else "")


def png_gray(path: Path, width: int = 320, height: int = 320) -> None:
    """A small 8-bit grayscale PNG (a soft vertical gradient with a bright oval), written with zlib only."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            dx, dy = (x - width / 2) / (width / 3), (y - height / 2) / (height / 2.4)
            v = 40 + 120 * y // height + (70 if dx * dx + dy * dy < 1 else 0)
            rows.append(min(255, v))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b""))


def check_layout(bundle: Path) -> Path:
    exe = bundle / "WardLens"
    internal = bundle / "_internal"
    if not exe.is_file() or not os.access(exe, os.X_OK):
        raise SmokeFailure(f"{exe} missing or not executable: build it with installer/build.sh (make package)")
    res = internal / "resources"
    needed = [res / "style.qss", res / "icons" / "wardlens.svg", res / "demo" / "uci_sample.csv.gz"]
    needed += [internal / "PySide6/Qt/plugins" / p for p in (
        "platforms/libqoffscreen.so", "platforms/libqxcb.so", "imageformats/libqsvg.so", "iconengines/libqsvgicon.so")]
    if any("import xgboost" in f.read_text(errors="replace") for f in (ROOT / "services").rglob("*.py")):
        needed.append(internal / "xgboost" / "lib" / "libxgboost.so")   # no PyInstaller hook; the spec collects it
    missing = [str(p.relative_to(bundle)) for p in needed if not p.is_file()]
    # every committed resource of the source tree is in the bundle
    for src in _tracked_resources():
        dst = internal / src.relative_to(ROOT)
        if not dst.is_file():
            missing.append(str(dst.relative_to(bundle)))
    if missing:
        raise SmokeFailure("missing from the bundle (a stale build? run installer/build.sh): " + ", ".join(missing[:20]))
    models = sorted(p.parent.name for p in (res / "models").glob("*/model.onnx"))
    for name in models:
        model = res / "models" / name / "model.onnx"
        expected = (model.parent / "model.onnx.sha256").read_text().split()[0].lower()
        if hashlib.sha256(model.read_bytes()).hexdigest() != expected:
            raise SmokeFailure(f"{model.relative_to(bundle)} does not match its sha256")
    for forbidden in ("torch", "torchvision", "training", "tests", "onnxruntime/transformers"):
        if (internal / forbidden).exists():
            raise SmokeFailure(f"{forbidden} must not be in the bundle")
    unresolved = []
    if shutil.which("ldd"):
        for f in internal.rglob("*.so*"):
            if f.is_file() and not f.is_symlink():
                out = subprocess.run(["ldd", str(f)], capture_output=True, text=True,
                                     env={"LD_LIBRARY_PATH": str(internal), "PATH": "/usr/bin:/bin"}).stdout
                unresolved += [f"{f.relative_to(bundle)}: {line.strip()}" for line in out.splitlines() if "not found" in line]
    if unresolved:
        raise SmokeFailure("libraries not found (a trimmed library is still needed, or a system package is missing):\n  "
                           + "\n  ".join(unresolved[:20]))
    size_mb = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6
    print(f"  ok  layout: models {', '.join(models) or 'none'}; {size_mb:.0f} MB; all ELF dependencies resolve")
    return exe


PROJECT_PACKAGES = ("services", "ui", "viewmodels", "models", "__main__", "main")
WARN_LINE = re.compile(r"^(missing|excluded) module named '?([\w.]+)'? - imported by (.*)$")


def check_build_report(workpath: Path) -> None:
    """PyInstaller's own report (warn-wardlens.txt): a module that our code imports, even lazily inside a
    function, and that the bundle lacks (not installed in .venv-build, or excluded by the spec) is an import
    error waiting for the first user who opens that page."""
    warn = workpath / "warn-wardlens.txt"
    if not warn.is_file():
        print(f"  --  build report                 skipped: {warn} not found (bundle built elsewhere)")
        return
    problems = []
    for line in warn.read_text(errors="replace").splitlines():
        m = WARN_LINE.match(line.strip())
        if not m:
            continue
        importers = [i.strip() for i in m.group(3).split(", ")]
        ours = [i for i in importers if i.split(" ")[0].split(".")[0] in PROJECT_PACKAGES]
        optional = all("optional" in i or "conditional" in i for i in ours)
        if ours and not optional:
            problems.append(f"{m.group(1)} module {m.group(2)} (imported by {', '.join(ours)})")
    if problems:
        raise SmokeFailure("the bundle lacks modules that WardLens imports (add them to [project.dependencies] "
                           "or stop excluding them in installer/wardlens.spec):\n  " + "\n  ".join(problems))
    print("  ok  build report: every module WardLens imports is in the bundle")


def check_executable(workpath: Path, bundle: Path) -> Path | None:
    """The check executable that installer/wardlens.spec builds beside WardLens in the work folder, when it comes
    from the same build as the bundle (the work folder's WardLens is byte for byte the bundle's)."""
    checker, built = workpath / "wardlens-check", workpath / "WardLens"
    if not (checker.is_file() and built.is_file() and (bundle / "WardLens").is_file()):
        return None
    same = built.stat().st_size == (bundle / "WardLens").stat().st_size and \
        hashlib.sha256(built.read_bytes()).digest() == hashlib.sha256((bundle / "WardLens").read_bytes()).digest()
    return checker if same else None


def _tracked_resources() -> list[Path]:
    """resources/ files that git tracks (all files when this is no git checkout)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "resources"], cwd=ROOT, capture_output=True, check=True).stdout
        return [ROOT / name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]
    except (OSError, subprocess.CalledProcessError):
        return [p for p in (ROOT / "resources").rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")]


def _real_xray_sample() -> Path | None:
    """A real chest radiograph when one is at hand: WARDLENS_SMOKE_XRAY, else the first NIH original in ../shared/data."""
    env = os.environ.get("WARDLENS_SMOKE_XRAY")
    if env:
        return Path(env) if Path(env).is_file() else None
    originals = ROOT.parent / "shared" / "data" / "nih_cxr" / "originals"
    found = sorted(originals.glob("*.png"))[:1] if originals.is_dir() else []
    return found[0] if found else None


def first_rows(sample: Path, out: Path, n: int) -> int:
    with gzip.open(sample, "rt", newline="", encoding="utf-8") as src, open(out, "w", newline="", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i > n:
                break
            dst.write(line)
    return n


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def check_probabilities(name: str, rows: list[dict[str, str]], n_expected: int) -> None:
    if len(rows) != n_expected:
        raise SmokeFailure(f"{name}: {len(rows)} output rows for {n_expected} input rows")
    numeric = 0
    for row in rows:
        for key, value in row.items():
            if key and ("prob" in key.lower() or "risk" in key.lower()) and value not in ("", None):
                try:
                    v = float(value)
                except ValueError:
                    continue
                if not 0.0 <= v <= 1.0 and "percent" not in key.lower():
                    raise SmokeFailure(f"{name}: {key}={value} is not a probability")
                numeric += 1
    if numeric == 0:
        raise SmokeFailure(f"{name}: no probability/risk column with values in the output ({list(rows[0])})")


def dicom_gray(path: Path, width: int = 256, height: int = 256) -> None:
    """A small 16-bit MONOCHROME2 DICOM (explicit VR little endian) with rescale and window, standard library only:
    `xray classify` must decode it through pydicom (pixel data, modality LUT, VOI LUT) without an error."""
    def el(group: int, elem: int, vr: str, value: bytes) -> bytes:
        if vr in ("OB", "OW", "UN", "SQ", "UT"):
            return struct.pack("<HH2sHI", group, elem, vr.encode(), 0, len(value)) + value
        return struct.pack("<HH2sH", group, elem, vr.encode(), len(value)) + value

    def text(v: str, pad: bytes = b" ") -> bytes:
        b = v.encode("ascii")
        return b + pad if len(b) % 2 else b

    def uid(v: str) -> bytes:
        return text(v, b"\0")

    sop_class, sop_instance = "1.2.840.10008.5.1.4.1.1.1.1", "1.2.826.0.1.3680043.10.1234.1"
    meta_body = (el(0x0002, 0x0001, "OB", b"\0\1") + el(0x0002, 0x0002, "UI", uid(sop_class))
                 + el(0x0002, 0x0003, "UI", uid(sop_instance)) + el(0x0002, 0x0010, "UI", uid("1.2.840.10008.1.2.1")))
    meta = el(0x0002, 0x0000, "UL", struct.pack("<I", len(meta_body))) + meta_body
    pixels = bytearray()
    for y in range(height):
        for x in range(width):
            dx, dy = (x - width / 2) / (width / 3), (y - height / 2) / (height / 2.4)
            pixels += struct.pack("<H", 400 + 2000 * y // height + (900 if dx * dx + dy * dy < 1 else 0))
    us = lambda v: struct.pack("<H", v)  # noqa: E731
    body = (el(0x0008, 0x0016, "UI", uid(sop_class)) + el(0x0008, 0x0018, "UI", uid(sop_instance))
            + el(0x0008, 0x0060, "CS", text("DX")) + el(0x0018, 0x0015, "CS", text("CHEST"))
            + el(0x0028, 0x0002, "US", us(1)) + el(0x0028, 0x0004, "CS", text("MONOCHROME2"))
            + el(0x0028, 0x0010, "US", us(height)) + el(0x0028, 0x0011, "US", us(width))
            + el(0x0028, 0x0100, "US", us(16)) + el(0x0028, 0x0101, "US", us(12)) + el(0x0028, 0x0102, "US", us(11))
            + el(0x0028, 0x0103, "US", us(0)) + el(0x0028, 0x1050, "DS", text("1400")) + el(0x0028, 0x1051, "DS", text("2800"))
            + el(0x0028, 0x1052, "DS", text("0")) + el(0x0028, 0x1053, "DS", text("1"))
            + el(0x7FE0, 0x0010, "OW", bytes(pixels)))
    path.write_bytes(b"\0" * 128 + b"DICM" + meta + body)


def frozen_checks(db: Path, work: Path, trace_json: Path | None = None) -> int:
    """Runs INSIDE the bundle, through the build's check executable (installer/wardlens.spec: the same code archive
    and runtime hooks as WardLens, beside the bundle's _internal/): the features that no sub-command of main.py
    reaches. The workspace of an administrator with every page shown and a patient opened; the dashboards
    (pandas, scikit-learn, SciPy) computed and drawn, a chart exported to PNG (pyqtgraph); beds and staff
    (scipy.stats forecast, scipy.optimize.milp recommendation); a ward and a patient report (reportlab),
    rendered by pypdfium2 and painted on a QPrinter (QtPrintSupport); local retraining and recalibration
    (xgboost, onnxmltools, onnx, onnxruntime). One line per check; exit status 0 when all passed."""
    from PySide6.QtCore import QEventLoop, QObject, QTimer
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtWidgets import QApplication
    app = QApplication.instance() or QApplication(sys.argv[:1])
    owner = QObject()

    def wait_until(cond, what: str, failed=lambda: "", timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not cond():
            if failed():
                raise SmokeFailure(f"{what}: {failed()}")
            if time.monotonic() > deadline:
                raise SmokeFailure(f"{what}: not done within {timeout_s:.0f} s")
            loop = QEventLoop()
            QTimer.singleShot(50, loop.quit)
            loop.exec()

    def ok(name: str, t0: float, detail: str) -> None:
        print(f"  ok  {name:<28} {time.monotonic() - t0:6.1f} s  {detail}", flush=True)

    # Qt's text services that use ICU's data (installer/wardlens.spec keeps what Qt calls): collation (file
    # dialogs sort with it), time-zone names (long date formats), case mapping, legacy encodings
    t0 = time.monotonic()
    from PySide6.QtCore import QCollator, QDate, QDateTime, QLocale, QStringDecoder, QTime, QTimeZone
    berlin = QTimeZone(b"Europe/Berlin")
    winter = QDateTime(QDate(2026, 1, 15), QTime(10, 0), berlin)
    got = {
        "collation de (a-umlaut before b)": QCollator(QLocale("de_DE")).compare("\u00e4", "b") < 0,
        "collation sv (a-umlaut after z)": QCollator(QLocale("sv_SE")).compare("\u00e4", "z") > 0,
        "upper case tr": QLocale("tr_TR").toUpper("i") == "\u0130",
        "zone name de": berlin.displayName(QTimeZone.TimeType.StandardTime, QTimeZone.NameType.LongName,
                                           QLocale("de_DE")) == "Mitteleurop\u00e4ische Normalzeit",
        "zone name ja": berlin.displayName(QTimeZone.TimeType.StandardTime, QTimeZone.NameType.LongName,
                                           QLocale("ja_JP")) == "\u4e2d\u592e\u30e8\u30fc\u30ed\u30c3\u30d1\u6a19\u6e96\u6642",
        "long date en": QLocale("en_US").toString(winter, QLocale.FormatType.LongFormat).endswith(
            "Central European Standard Time"),
        "encodings": QStringDecoder("Shift_JIS").isValid() and QStringDecoder("windows-1252").isValid(),
    }
    if not all(got.values()):
        raise SmokeFailure(f"Qt text services (ICU): failed {[k for k, v in got.items() if not v]}")
    ok("Qt text services (ICU)", t0, f"{len(got)} probes: collation, time-zone names, case, encodings")

    from services.desk import open_desk
    from viewmodels.background import BackgroundRunner

    # every page of an administrator's workspace, a patient opened (risk, LOS, scores), each page drawn
    t0 = time.monotonic()
    from ui.dashboards_view import DashboardsView
    from ui.main_window import Workspace
    from viewmodels.beds_vm import BedsViewModel
    from viewmodels.dashboards_vm import DASHBOARDS, DashboardsViewModel
    admin = open_desk(db, "admin", "wardlens-admin")
    runner = BackgroundRunner(owner)
    ws = Workspace(admin, runner)
    ws.resize(1300, 850)
    ws.show()
    patient = admin.records.patients.search("", limit=5)[0].patient_id
    ws.open_patient(patient)
    vm = ws.findChild(DashboardsViewModel)   # found by type: the workspace builds some pages on first view
    pages = []
    for row in range(ws.nav.count()):
        ws.nav.setCurrentRow(row)   # pages compute on first view, off the GUI thread
        wait_until(lambda: not runner.busy and not vm.busy, f"workspace page {ws.nav.item(row).text()}",
                   lambda: vm.error)
        if ws.pages.currentWidget().grab().isNull():
            raise SmokeFailure(f"workspace: page {ws.nav.item(row).text()} did not draw")
        pages.append(ws.nav.item(row).text())
    ok("workspace pages", t0, ", ".join(pages))

    # dashboards: all four computed (sklearn roc_auc/roc_curve, PCA, IsolationForest, KMeans, silhouette; LOS)
    t0 = time.monotonic()
    ws.nav.setCurrentRow(pages.index("Dashboards"))
    vm.refresh()
    wait_until(lambda: not vm.busy, "dashboards", lambda: vm.error)
    missing = [n for n in DASHBOARDS if vm.results.get(n) is None]
    if missing or vm.error:
        raise SmokeFailure(f"dashboards: {missing} not computed; error {vm.error!r}")
    view = ws.findChild(DashboardsView)
    for i in range(view.tabs.count()):
        view.tabs.setCurrentIndex(i)
        if view.tabs.currentWidget().grab().isNull():
            raise SmokeFailure(f"dashboards: tab {view.tabs.tabText(i)} did not draw")
    png = work / "chart.png"
    if not vm.export_chart("readmission_ward", str(png), view.cards["readmission_ward"].png_bytes) \
            or not png.is_file() or png.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
        raise SmokeFailure(f"dashboards: chart export to PNG failed ({vm.error})")
    ok("dashboards", t0, f"{', '.join(DASHBOARDS)}; AUC {vm.results['performance'].auc:.3f}; "
                         f"chart PNG {png.stat().st_size} bytes")

    # beds and staff: forecasts (scipy.stats) and recommendations (scipy.optimize.milp, also on a fixed case)
    t0 = time.monotonic()
    from services.capacity.bed_assignment import Bed, WaitingAdmission, Ward, assign_beds
    beds = ws.findChild(BedsViewModel)
    snap = beds.snapshot
    if snap is None or not snap.forecasts:
        raise SmokeFailure(f"beds: no forecast ({beds.status!r})")
    res = assign_beds([WaitingAdmission("iso", "M", "medical", needs_isolation=True, priority=2),
                       WaitingAdmission("fem", "F", "medical"), WaitingAdmission("s1", "F", "surgical")],
                      [Bed("M1", "Med", isolation=True), Bed("M2", "Med", bay_sex="F"), Bed("S1", "Surg")],
                      [Ward("Med", "medical"), Ward("Surg", "surgical")])
    got = {a.patient_id: a.bed_id for a in res.assignments}
    if got != {"iso": "M1", "fem": "M2", "s1": "S1"}:
        raise SmokeFailure(f"beds: milp assignment {got}")
    ok("beds + staff", t0, f"{len(snap.forecasts)} ward forecasts, {len(snap.recommendations)} recommendations; "
                           "milp case solved")

    # reports and printing: reportlab, pages rendered by pypdfium2, painted on a QPrinter (PDF output)
    t0 = time.monotonic()
    from PySide6.QtPrintSupport import QPrinter
    from services.reports.pdf import pdf_page_images
    ward_pdf = admin.reports.ward_pdf(None)
    patient_pdf = admin.reports.patient_pdf(patient)
    images = [p.convert("RGB") for p in pdf_page_images(patient_pdf, dpi=150)]
    printer = QPrinter(QPrinter.PrinterMode.HighResolution)
    printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
    printer.setOutputFileName(str(work / "printed.pdf"))
    painter = QPainter(printer)
    for i, page in enumerate(images):
        if i:
            printer.newPage()
        w, h = page.size
        painter.drawImage(0, 0, QImage(page.tobytes(), w, h, 3 * w, QImage.Format.Format_RGB888).copy())
    painter.end()
    printed = (work / "printed.pdf").read_bytes()
    if not (ward_pdf[:5] == patient_pdf[:5] == printed[:5] == b"%PDF-"):
        raise SmokeFailure("reports: a PDF is not a PDF")
    ok("reports + printing", t0, f"ward {len(ward_pdf) // 1024} KB, patient {len(patient_pdf) // 1024} KB, "
                                 f"{len(images)} page(s) printed to PDF")

    # local retraining and recalibration, tiny settings (xgboost, onnxmltools, onnx, onnxruntime)
    t0 = time.monotonic()
    from services.modelops import local_training as lt
    tiny = lt.TrainingConfig(max_rounds=20, n_boot_gate=200, n_boot_card=30)
    r1 = admin.models.retrain(config=tiny)
    r2 = admin.models.recalibrate(config=tiny)
    diff = r1.card["model"]["onnx_vs_native_max_abs_margin_diff"]
    if not diff < 1e-4:
        raise SmokeFailure(f"retrain: the ONNX export differs from the booster by {diff}")
    ok("retrain + recalibrate", t0, f"{r1.version} and {r2.version}; ONNX vs booster {diff:.1e}")

    ws.close()
    ws.deleteLater()
    owner.deleteLater()
    app.processEvents()
    admin.lock()
    if trace_json is not None:   # what this process loaded (discovery of unused parts of the bundle)
        maps = set()
        with open("/proc/self/maps") as fh:
            for line in fh:
                parts = line.split(None, 5)
                if len(parts) == 6 and parts[5].startswith("/"):
                    maps.add(parts[5].strip())
        trace_json.write_text(json.dumps({"modules": sorted(sys.modules), "maps": sorted(maps)}))
    print("FROZEN CHECKS PASSED", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", type=Path, default=ROOT / "dist" / "WardLens")
    ap.add_argument("--workpath", type=Path, default=ROOT / "build" / "pyinstaller" / "wardlens",
                    help="PyInstaller's work folder of that build (for its missing-module report)")
    ap.add_argument("--no-strace", action="store_true", help="skip the network check (only where strace cannot run)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (outputs and strace logs)")
    ap.add_argument("--rows", type=int, default=40, help="rows of the demo sample to score")
    ap.add_argument("--gui-seconds", type=float, default=4.0)
    # inside the bundle (the build's check executable runs this file): see frozen_checks()
    ap.add_argument("--frozen-checks", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--trace-json", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.frozen_checks:
        try:
            return frozen_checks(args.db, args.work, args.trace_json)
        except SmokeFailure as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1

    use_strace = not args.no_strace
    if use_strace and shutil.which("strace") is None:
        print("smoke_test: strace is needed for the network check: apt-get install strace "
              "(or run with --no-strace where it cannot be installed)", file=sys.stderr)
        return 2
    if use_strace:
        STRACE_FAST[:] = _strace_fast_flags()
        if not _strace_sees_inet():
            print("smoke_test: strace did not report a test connect() to 127.0.0.1; the network check would be blind",
                  file=sys.stderr)
            return 2
    t_start = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="wardlens-smoke-"))
    print(f"WardLens bundle smoke test: {args.bundle} (temporary folder {tmp})")
    try:
        exe = check_layout(args.bundle.resolve())
        check_build_report(args.workpath)
        r = Runner(exe, tmp, use_strace)
        internal = args.bundle.resolve() / "_internal"
        db = tmp / "demo.db"

        r.run("--help", ["--help"], timeout=60)

        proc = r.run("demo", ["demo", "--db", str(db)], timeout=600)
        if not db.is_file() or "Demo store written" not in proc.stdout:
            raise SmokeFailure(f"demo: no store written\n{_tail(proc.stdout + proc.stderr)}")

        rows_csv = tmp / "rows.csv"
        n = first_rows(internal / "resources" / "demo" / "uci_sample.csv.gz", rows_csv, args.rows)
        out = tmp / "readmission.csv"
        proc = r.run("score readmission", ["score", "readmission", "--input", str(rows_csv), "--output", str(out)])
        header, rows = read_csv(out)
        scored = re.search(r"(\d+) scored, (\d+) not eligible", proc.stdout)
        if not scored or int(scored.group(1)) == 0:
            raise SmokeFailure(f"score readmission: nothing scored: {proc.stdout.strip()}")
        check_probabilities("score readmission", rows, n)
        print(f"      {proc.stdout.strip()}; columns: {', '.join(header[:8])}{' ...' if len(header) > 8 else ''}")

        out = tmp / "los.csv"
        proc = r.run("score los", ["score", "los", "--input", str(rows_csv), "--output", str(out)])
        header, rows = read_csv(out)
        if not rows or not re.search(r"(\d+) scored", proc.stdout) or re.search(r"^0 scored", proc.stdout):
            raise SmokeFailure(f"score los: nothing scored: {proc.stdout.strip()}")
        print(f"      {proc.stdout.strip()}; columns: {', '.join(header[:8])}{' ...' if len(header) > 8 else ''}")

        r.run("bad input -> clear error", ["score", "readmission", "--input", str(tmp / "absent.csv"),
                                           "--output", str(tmp / "x.csv")], ok_codes=(1, 2, 3))

        login = {"WARDLENS_USER": "admin", "WARDLENS_PASSWORD": "wardlens-admin"}
        proc = r.run("verify", ["verify", "--db", str(db)], extra_env=login)
        if not proc.stdout.startswith("OK:"):
            raise SmokeFailure(f"verify: {proc.stdout.strip()}")
        print(f"      {proc.stdout.strip()}")
        r.run("verify, wrong password", ["verify", "--db", str(db)],
              extra_env={"WARDLENS_USER": "admin", "WARDLENS_PASSWORD": "not-the-password"}, ok_codes=(1,))

        # the server store's driver (psycopg with its bundled libpq) loads in the frozen app: a server address on a
        # Unix socket with no server behind it is tried and reported as unreachable (no network is touched)
        sock = tmp / "no-server"
        sock.mkdir()
        proc = r.run("server store, unreachable", ["stats", "--db", f"postgresql:///wardlens?host={sock}&port=5999"],
                     extra_env=login, ok_codes=(1,))
        if "cannot be reached" not in proc.stderr:
            raise SmokeFailure(f"server store: the driver did not run: {_tail(proc.stderr)}")
        print(f"      {proc.stderr.strip()[:150]}")

        if (internal / "resources" / "models" / "xray" / "model.onnx").is_file():
            png = tmp / "synthetic.png"
            png_gray(png)
            dcm = tmp / "synthetic.dcm"
            dicom_gray(dcm)   # decoded by pydicom (no error in its row), then judged like any image
            inputs = [png, dcm]
            real = _real_xray_sample()
            if real is not None:
                inputs.append(real)
            out = tmp / "xray.csv"
            proc = r.run("xray classify", ["xray", "classify", "--input", *map(str, inputs), "--output", str(out)])
            header, rows = read_csv(out)
            if len(rows) != len(inputs) or any(row.get("error") for row in rows):
                raise SmokeFailure(f"xray classify: unexpected output {rows}")
            if real is not None and not proc.stdout.startswith("1 of"):
                raise SmokeFailure(f"xray classify: the real radiograph {real.name} was not classified: {proc.stdout.strip()}")
            print(f"      {proc.stdout.strip()}" + (f" (synthetic PNG and DICOM + {real.name})" if real
                                                    else " (synthetic PNG and DICOM only)"))
        else:
            print("  --  xray classify               skipped: the bundle has no resources/models/xray (model not trained yet)")

        proc = r.run("gui (offscreen)", ["gui", "--db", str(db), "--smoke-seconds", str(args.gui_seconds)],
                     extra_env={"QT_DEBUG_PLUGINS": "1"}, timeout=120 + args.gui_seconds)
        loaded = proc.stdout + proc.stderr
        for plugin in ("libqoffscreen.so", "libqsvgicon.so"):
            if not re.search(re.escape(plugin) + r'"? loaded library', loaded):
                raise SmokeFailure(f"gui: the Qt plugin {plugin} was not loaded (QT_DEBUG_PLUGINS output)\n{_tail(loaded)}")
        print("      plugins loaded: offscreen platform, SVG icon engine")

        if shutil.which("xvfb-run") and shutil.which("Xvfb"):
            proc = r.run("gui (xcb under Xvfb)", ["gui", "--db", str(db), "--smoke-seconds", str(args.gui_seconds)],
                         extra_env={"QT_QPA_PLATFORM": "xcb", "QT_DEBUG_PLUGINS": "1"}, timeout=120 + args.gui_seconds,
                         wrapper=["xvfb-run", "-a", "-s", "-nolisten tcp -screen 0 1280x800x24"])
            if not re.search(r'libqxcb\.so"? loaded library', proc.stdout + proc.stderr):
                raise SmokeFailure(f"gui (xcb): the xcb platform plugin was not loaded\n{_tail(proc.stdout + proc.stderr)}")
            print("      plugins loaded: xcb platform (the X11/XWayland path of real desktops)")
        else:
            print("  --  gui (xcb under Xvfb)         skipped: xvfb-run not installed (apt-get install xvfb xauth)")

        ward_pdf = tmp / "ward.pdf"
        proc = r.run("report ward", ["report", "ward", "--db", str(db), "--output", str(ward_pdf)], extra_env=login)
        if not ward_pdf.is_file() or ward_pdf.read_bytes()[:5] != b"%PDF-":
            raise SmokeFailure(f"report ward: no PDF written\n{_tail(proc.stdout + proc.stderr)}")
        print(f"      {proc.stdout.strip()}")

        checker = check_executable(args.workpath, args.bundle.resolve())
        if checker is not None:
            # The features no sub-command reaches, run inside the bundle (see frozen_checks): the check
            # executable is copied beside a link to the bundle's _internal/, so it loads exactly what WardLens loads.
            chk = tmp / "check"
            chk.mkdir()
            shutil.copy2(checker, chk / "WardLens-check")
            (chk / "_internal").symlink_to(internal, target_is_directory=True)
            proc = r.run("frozen checks", [str(Path(__file__).resolve()), "--frozen-checks", "--db", str(db),
                                           "--work", str(tmp)], exe=chk / "WardLens-check", timeout=900,
                         loopback_ports=(631,))   # QPrinter asks the local CUPS server for printers
            if "FROZEN CHECKS PASSED" not in proc.stdout:
                raise SmokeFailure(f"frozen checks: incomplete\n{_tail(proc.stdout + proc.stderr)}")
            for line in proc.stdout.splitlines():
                if line.startswith("  ok  "):
                    print("    " + line.strip())
        else:
            print(f"  --  frozen checks                skipped: no check executable of this build in {args.workpath}")

        telemetry = r.home / ".cache" / "Microsoft"
        if telemetry.exists():
            raise SmokeFailure(f"onnxruntime wrote {telemetry} (telemetry/device id): ORT_DISABLE_TELEMETRY not effective")
        if r.loopback:
            print(f"      note: QPrinter asked the local CUPS server for printers over loopback ({len(r.loopback)} "
                  "connect() to 127.0.0.1:631 / [::1]:631, refused here); no other AF_INET/AF_INET6 address")
        print(f"PASSED: {r.runs} runs of the frozen executable in {time.monotonic() - t_start:.0f} s"
              + (", no AF_INET/AF_INET6 connect/sendto/sendmsg under strace" + (" except the loopback CUPS query"
                 if r.loopback else "") if use_strace else ", network check skipped"))
        return 0
    except SmokeFailure as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        print(f"(outputs and strace logs kept in {tmp})", file=sys.stderr)
        args.keep = True
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            print(f"temporary folder kept: {tmp}")


if __name__ == "__main__":
    raise SystemExit(main())
