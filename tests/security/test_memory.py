"""After lock no copy of the data key is left in the process: not in SQLCipher, not as hex text, not in our buffers."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.security.conftest import ROOT


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc to read this process's memory")
def test_no_copy_of_the_data_key_survives_a_lock():
    r = subprocess.run([sys.executable, str(Path(__file__).with_name("memory_probe.py")), str(ROOT)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    found = ast.literal_eval(r.stdout.strip().splitlines()[-1])
    assert found == {"raw": 1, "hex": 1, "HEX": 1}, found   # 1 = the needle the probe searches with
