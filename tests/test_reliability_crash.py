"""Crash consistency (small count for CI; `python -m benchmarks.crash --kills 1000` is the long run).

A forked child edits, imports, backs up and migrates a real encrypted store and is killed with SIGKILL
at random moments; after each kill the store must open with its key, verify clean and hold every
commit the child acknowledged, with no transaction half-applied."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses fork and SIGKILL (Linux)")


@pytest.mark.slow
def test_random_kills_lose_nothing_and_leave_nothing_half_done(tmp_path):
    # In its own interpreter: the harness forks, and the test process may already run threads (Qt, onnxruntime).
    out = tmp_path / "crash.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.crash", "--kills", "18", "--seed", "7", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.exists(), proc.stdout + proc.stderr
    res = json.loads(out.read_text())
    assert res["problems"] == []
    assert res["kills"] == 18
    assert set(res["by_workload"]) == {"edit", "import", "backup", "migrate"}
    assert res["acked_commits"] > 0  # the child got far enough to commit before being killed


def test_the_checker_notices_a_lost_commit_and_a_half_import(tmp_path):
    """The harness itself must be able to fail: feed it acknowledgements the store does not hold."""
    from benchmarks.crash import IMPORT_ROWS, TAG_SPAN, USER, PASSWORD, Checker
    from services.site.accounts import create_store, unlock
    from services.store.keyfile import KdfParams
    store = tmp_path / "s.db"
    create_store(store, USER, PASSWORD, KdfParams.fast())
    s = unlock(store, USER, PASSWORD)
    with s.db.transaction() as c:  # a "half import": 3 encounters of tag 5 instead of IMPORT_ROWS
        c.execute("INSERT INTO patients (id, mrn, created_at, updated_at) VALUES (1, '1', 'x', 'x')")
        for i in range(1, 4):
            c.execute("INSERT INTO encounters (patient_id, encounter_nbr, status, admission_type_id, "
                      "admission_source_id, created_at, updated_at) VALUES (1, ?, 'discharged', 1, 1, 'x', 'x')",
                      (5 * TAG_SPAN + i,))
    s.lock()
    chk = Checker()
    chk.added["CR1"] = False
    chk.imports_begun.add(5)
    chk.check_main(0, store)
    assert any("CR1 is lost" in p for p in chk.problems)
    assert any(f"3 of {IMPORT_ROWS}" in p for p in chk.problems)
