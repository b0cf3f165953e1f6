"""`python -m training.xray_maps BUNDLE [BUNDLE ...] [--data DIR]`: where X-ray bundles' heat maps peak.

For the validation films labelled with each finding a bundle may flag, the share of class activation maps whose peak
lies in the lower half of the film and the share that peak on the map's outer ring (an edge artefact when far above
the ring's share of cells). Validation split only (the patient split of training.xray), so a choice between
bundles made on it leaves the test split alone. docs/xray.md has why: two models can rank films alike and point at
different places.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from services.imaging.xray_image import normalize
from training.xray import CLASSES, DEFAULT_DATA, load_data, patient_split


def peak_places(session, images: np.ndarray, cls: int, batch: int = 64) -> tuple[float, float, int]:
    """(share peaking in the lower half, share peaking on the outer ring, ring cells / all cells) for class `cls`."""
    lower = ring = 0
    side = (0, 0)
    for i in range(0, len(images), batch):
        cam = session.run(None, {"image": normalize(images[i:i + batch])[:, None]})[1][:, cls]
        side = cam.shape[1:]
        for g in cam:
            y, x = np.unravel_index(int(np.argmax(g)), g.shape)
            lower += y >= g.shape[0] / 2
            ring += y in (0, g.shape[0] - 1) or x in (0, g.shape[1] - 1)
    h, w = side
    n = max(1, len(images))
    return lower / n, ring / n, (h * w - max(0, h - 2) * max(0, w - 2)) / max(1, h * w)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.xray_maps", description=__doc__.split("\n")[0])
    ap.add_argument("bundles", nargs="+", type=Path, help="bundle folders (resources/models/xray, a pipeline's --out)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = ap.parse_args(argv)
    from services.inference.onnx_runtime import load_bundle
    data = load_data(args.data)
    va = patient_split(data.patient_id) == 1
    print("| bundle | finding | validation films | peak in the lower half | peak on the outer ring | ring's share of cells |")
    print("|---|---|---|---|---|---|")
    for folder in args.bundles:
        bundle = load_bundle(folder, use_cache=False)  # checked against its signed manifest like the application
        flaggable = json.loads(bundle.files["xray_meta.json"]).get("flaggable", CLASSES[1:])
        for name in flaggable:
            c = CLASSES.index(name)
            sel = va & (data.labels[:, c] == 1)
            lower, ring, cells = peak_places(bundle.session, data.images[sel], c)
            print(f"| {folder} | {name} | {int(sel.sum())} | {lower:.0%} | {ring:.0%} | {cells:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
