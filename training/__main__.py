"""`python -m training <pipeline> [--data DIR] ...`: build-time pipelines that write signed ONNX bundles;
`python -m training sign FOLDER...` re-signs finished bundles (with WARDLENS_RELEASE_KEY for a release)."""
from __future__ import annotations

import importlib
import sys

PIPELINES = {
    "readmission": "training.readmission",
    "los": "training.los",
    "xray": "training.xray",
    "icd9-titles": "training.icd9_titles",
    "icd10-tables": "training.icd10_tables",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sign"]:   # re-sign finished bundles, e.g. with WARDLENS_RELEASE_KEY for a release
        from services.inference.manifest import write_manifest
        for folder in argv[1:]:
            print(f"signed {write_manifest(folder)}")
        return 0
    if not argv or argv[0] not in PIPELINES:
        print(f"usage: python -m training {{{','.join(PIPELINES)}}} [--data DIR] [options]", file=sys.stderr)
        return 2
    module = importlib.import_module(PIPELINES[argv[0]])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
