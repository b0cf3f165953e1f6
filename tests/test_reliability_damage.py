"""Damaged stores: bit flips, truncation, zeroed pages, damaged and stale -wal files, each copy opened in
its own process. Never a crash, never wrong data shown silently; the user is told (StoreDamaged) and
the last verified backup is found. `python -m benchmarks.damage --copies 500` is the long run."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from services.site.accounts import unlock
from services.site.backup import backup, check_backup, latest_verified_backup
from services.core.errors import StoreDamaged

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="probes run in forked processes (Linux)")
def test_mutated_copies_never_crash_and_never_show_wrong_data(tmp_path):
    out = tmp_path / "damage.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.damage", "--copies", "30", "--seed", "11",
                           "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert out.exists(), proc.stdout + proc.stderr
    res = json.loads(out.read_text())
    assert res["failures"] == [], res["failures"][:3]
    # each kind of damage to the main file is reported to the user, not just survived
    for kind in ("bitflip", "truncate", "zero_page", "header", "stale_wal", "empty"):
        assert set(res["by_kind"][kind]) <= {"told", "intact"}, (kind, res["by_kind"][kind])
    assert res["told"] > 0 and res["store_damaged_with_backup_offered"] == sum(
        n for m, n in res["messages"].items() if m.startswith("StoreDamaged"))
    for message in res["messages"]:
        assert "damaged" in message or "empty" in message or "key file" in message, message


def _flip_middle_page(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_damaged_store_is_refused_and_the_newest_verified_backup_is_offered(demo_store, tmp_path):
    s = unlock(demo_store, "admin", "wardlens-admin")
    older = tmp_path / "backups" / "older.db"
    newer = tmp_path / "backups" / "newer.db"
    older.parent.mkdir()
    backup(s, older)
    s.log("test", "store", "", "a change between the two backups")
    backup(s, newer)
    s.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    s.lock()
    _flip_middle_page(demo_store)
    with pytest.raises(StoreDamaged, match="damaged.*Restore the last verified backup"):
        unlock(demo_store, "admin", "wardlens-admin")

    best = latest_verified_backup(demo_store, "admin", "wardlens-admin")
    assert best is not None and best.path == newer.resolve() and best.audit_rows > 0
    assert "full check" in best.how
    # without credentials only the digest recorded at backup time can be checked
    assert latest_verified_backup(demo_store).how.startswith("unchanged")
    # the newest one is damaged too: the older verified one is offered
    _flip_middle_page(newer)
    assert check_backup(newer, "admin", "wardlens-admin") is None
    assert latest_verified_backup(demo_store, "admin", "wardlens-admin").path == older.resolve()
    # found by scanning a folder when the index beside the store is gone
    Path(str(demo_store) + ".backups.json").unlink()
    found = latest_verified_backup(demo_store, "admin", "wardlens-admin", folders=[tmp_path / "backups"])
    assert found is not None and found.path == older.resolve()
    # wrong password: nothing is offered, nothing raised
    assert latest_verified_backup(demo_store, "admin", "wrong-password", folders=[tmp_path / "backups"]) is None


def test_emptied_store_file_is_not_migrated_into_a_blank_one(empty_store):
    empty_store.path.write_bytes(b"")
    for side in ("-wal", "-shm"):
        Path(str(empty_store.path) + side).unlink(missing_ok=True)
    with pytest.raises(StoreDamaged, match="empty"):
        unlock(empty_store.path, "admin", "admin-password")
    assert empty_store.path.stat().st_size == 0  # nothing was written into it
