"""Benchmark runner: `python -m benchmarks [--only import,search,...] [--quick] [--json PATH]`.

Prints a table and writes JSON (default benchmarks/results/<host>-<date>.json). Measurements, not
assertions: a missed target is shown as MISS and recorded; nothing here fails a build.
Long reliability runs are separate commands: `python -m benchmarks.crash --kills 1000`,
`python -m benchmarks.damage --copies 500`, `python -m benchmarks.fuzz_import_atheris -atheris_runs=N`.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else (f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}")


def print_table(rows: list[dict]) -> None:
    w = max(len(r["metric"]) for r in rows) + 2
    print(f"{'case':10s} {'metric':{w}s} {'value':>10s} {'unit':7s} {'target':>8s}  result")
    for r in rows:
        res = "" if r["ok"] is None else ("ok" if r["ok"] else "MISS")
        print(f"{r['case']:10s} {r['metric']:{w}s} {_fmt(r['value']):>10s} {r['unit']:7s} {_fmt(r['target']):>8s}  "
              f"{res}{('  ' + r['note']) if r['note'] else ''}")


def main(argv: list[str] | None = None) -> int:
    from benchmarks.cases import CASES
    ap = argparse.ArgumentParser(description="WardLens benchmarks")
    ap.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(CASES)}")
    ap.add_argument("--quick", action="store_true", help="smaller imports (20,000 UCI rows, 50 FHIR bundles) for a fast look")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n] or list(CASES)
    rows: list[dict] = []
    started = time.time()
    for name in names:
        t = time.perf_counter()
        print(f"… {name}", file=sys.stderr, flush=True)
        try:
            fn = CASES[name]
            rows += fn(quick=args.quick) if name in ("import", "interop", "stores") else fn()
        except Exception as exc:  # noqa: BLE001 - one broken case must not hide the others
            traceback.print_exc()
            rows.append({"case": name, "metric": "error", "value": None, "unit": "", "target": None, "ok": False,
                         "note": f"{exc.__class__.__name__}: {str(exc)[:200]}"})
        print(f"  {name}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    print_table(rows)
    out = args.json or ROOT / "benchmarks" / "results" / f"{platform.node() or 'host'}-{dt.date.today()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"started": dt.datetime.fromtimestamp(started).isoformat(timespec="seconds"), "python": platform.python_version(),
            "machine": platform.machine(), "cpus": os.cpu_count(), "seconds": round(time.time() - started, 1)}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1), encoding="utf-8")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
