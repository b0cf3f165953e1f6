"""Draw the demo sample committed in resources/demo/ from the UCI Diabetes 130 table.

Whole patients (every encounter of each), chosen by a seeded draw, so that the demo store holds real
encounter histories. Run: python -m training.demo_sample [--data DIR] [--encounters N]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from services.records.uci_table import DEFAULT_DATA_ROOT

OUT = Path(__file__).resolve().parents[1] / "resources" / "demo" / "uci_sample.csv.gz"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA_ROOT / "diabetes130")
    ap.add_argument("--encounters", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=20261122)
    args = ap.parse_args(argv)
    df = pd.read_csv(args.data / "diabetic_data.csv.gz", dtype=str, keep_default_na=False)
    rng = np.random.default_rng(args.seed)
    patients = df["patient_nbr"].unique()
    rng.shuffle(patients)
    sizes = df.groupby("patient_nbr").size()
    chosen, total = [], 0
    for p in patients:
        if total >= args.encounters:
            break
        chosen.append(p)
        total += int(sizes[p])
    sample = df[df["patient_nbr"].isin(set(chosen))].sort_values("encounter_id", key=lambda s: s.astype(int))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    sample.to_csv(OUT, index=False, compression={"method": "gzip", "mtime": 0})
    print(f"{len(sample)} encounters of {len(chosen)} patients -> {OUT} ({OUT.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
