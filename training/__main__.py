"""`python -m training <pipeline> [--data DIR] ...`: build-time pipelines that write ONNX bundles."""
from __future__ import annotations

import importlib
import sys

PIPELINES = {
    "readmission": "training.readmission",
    "los": "training.los",
    "xray": "training.xray",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in PIPELINES:
        print(f"usage: python -m training {{{','.join(PIPELINES)}}} [--data DIR] [options]", file=sys.stderr)
        return 2
    module = importlib.import_module(PIPELINES[argv[0]])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
