"""The packaged application: build dist/WardLens (PyInstaller, when stale) and run installer/smoke_test.py on it.

Slow and opt-in: skipped unless WARDLENS_PACKAGE_TEST=1. A build from scratch takes about 1.5-2.5 min on two
shared cores (plus about 1 min to create .venv-build the first time); the smoke test about 20-30 s. It needs
strace for the no-network check (`apt-get install strace`). See installer/README.md.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("WARDLENS_PACKAGE_TEST") != "1",
                       reason="set WARDLENS_PACKAGE_TEST=1 to build the PyInstaller bundle and smoke-test it (2-4 min)"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux bundle is built and tested on Linux"),
]


def _clean_env() -> dict[str, str]:
    """No Qt/pytest settings of this test session leak into the build or the frozen runs."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("QT_", "PYTEST", "PYTHON", "VIRTUAL_ENV"))}


def test_frozen_bundle_builds_and_passes_the_smoke_test() -> None:
    build = subprocess.run(["bash", str(ROOT / "installer" / "build.sh"), "--if-needed"], cwd=ROOT, env=_clean_env(),
                           capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, f"installer/build.sh failed:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    assert (ROOT / "dist" / "WardLens" / "WardLens").is_file()

    smoke = subprocess.run([sys.executable, str(ROOT / "installer" / "smoke_test.py")], cwd=ROOT, env=_clean_env(),
                           capture_output=True, text=True, timeout=900)
    assert smoke.returncode == 0, f"installer/smoke_test.py failed:\n{smoke.stdout[-6000:]}\n{smoke.stderr[-6000:]}"
    assert "PASSED" in smoke.stdout
