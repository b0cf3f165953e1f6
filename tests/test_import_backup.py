"""CSV import (all or nothing at file level, rejected rows reported), backup and restore."""
from __future__ import annotations

import gzip
import io

import pandas as pd
import pytest

from services.site.accounts import unlock
from services.site.backup import BackupError, backup, restore
from services.core.errors import Cancelled, ImportFileError
from services.records.importer import import_uci_csv
from services.core.progress import CancelToken
from services.store.verify import verify_connection
from services.records.demo import SAMPLE

ADMIN = ("admin", "wardlens-admin")
TABLES = ("patients", "encounters", "diagnoses", "medications", "lab_results", "audit_log")


def _counts(session) -> dict[str, int]:
    return {t: session.db.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def _sample_text(n: int = 40) -> str:
    df = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False).head(n)
    df["encounter_id"] = (df["encounter_id"].astype(int) + 900_000_000).astype(str)  # not in the demo store yet
    return df.to_csv(index=False)


def test_import_good_file_with_bad_rows_reported(empty_store, tmp_path):
    text = _sample_text(30).splitlines()
    text[3] = text[3].replace(",Caucasian,", ",Martian,", 1)        # bad value
    text[5] = ",".join(text[5].split(",")[:-2])                      # too few fields
    text[7] = text[7].replace(",Female,", ",Fe\x00male,", 1).replace(",Male,", ",Ma\x00le,", 1)  # NUL byte
    path = tmp_path / "in.csv.gz"
    path.write_bytes(gzip.compress(("\n".join(text) + "\n").encode()))
    s = unlock(empty_store.path, "admin", "admin-password")
    report = import_uci_csv(s, path)
    assert report.imported == 27 and report.rejected_total == 3
    assert [r.line for r in report.rejected] == [4, 6, 8]
    assert "race" in report.rejected[0].reason and "fields" in report.rejected[1].reason
    assert "NUL" in report.rejected[2].reason
    assert _counts(s)["encounters"] == 27
    again = import_uci_csv(s, path)  # re-import: every row is a duplicate, nothing doubles
    assert again.imported == 0 and all("already" in r.reason for r in again.rejected if r.line not in (4, 6, 8))
    s.lock()


@pytest.mark.parametrize("kind", ["encoding", "missing_columns", "unmatched_quote", "duplicate_columns", "empty"])
def test_malformed_csv_leaves_store_unchanged(demo_store, tmp_path, kind):
    good = _sample_text(50)
    if kind == "encoding":
        data = good.encode() + "Zoë,\n".encode("latin-1") + good.splitlines()[1].encode()
    elif kind == "missing_columns":
        df = pd.read_csv(io.StringIO(good), dtype=str, keep_default_na=False).drop(columns=["diag_1", "insulin"])
        data = df.to_csv(index=False).encode()
    elif kind == "unmatched_quote":
        lines = good.splitlines()
        lines[30] = lines[30].replace(",Caucasian,", ',"Caucasian,', 1)
        data = ("\n".join(lines) + "\n").encode()
    elif kind == "duplicate_columns":
        lines = good.splitlines()
        data = ("\n".join([lines[0] + ",race"] + [ln + ",x" for ln in lines[1:]]) + "\n").encode()
    else:
        data = b""
    path = tmp_path / "bad.csv"
    path.write_bytes(data)
    s = unlock(demo_store, *ADMIN)
    before = _counts(s)
    with pytest.raises(ImportFileError, match="Nothing was imported"):
        import_uci_csv(s, path)
    assert _counts(s) == before
    assert verify_connection(s.db.conn).ok
    s.lock()


def test_cancelled_import_rolls_back(empty_store, tmp_path):
    path = tmp_path / "in.csv"
    df = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    path.write_text(df.to_csv(index=False))
    s = unlock(empty_store.path, "admin", "admin-password")
    before = _counts(s)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        import_uci_csv(s, path, cancel=token)
    assert _counts(s) == before
    s.lock()


def test_backup_then_restore_gives_the_same_content(demo_store, tmp_path):
    s = unlock(demo_store, *ADMIN)
    dump = list(s.db.conn.iterdump()) if hasattr(s.db.conn, "iterdump") else None
    content = {t: s.db.conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in TABLES if t != "audit_log"}
    target = tmp_path / "backups" / "b1.db"
    target.parent.mkdir()
    report = backup(s, target)
    assert report.ok and target.exists() and (tmp_path / "backups" / "b1.db.keys").exists()
    with pytest.raises(BackupError):
        backup(s, target)  # never overwrites
    # Change the live store after the backup, then restore.
    s.db.conn.execute("DELETE FROM medications")
    s.lock()
    kept = restore(target, demo_store, *ADMIN)
    assert kept.exists() and kept != demo_store
    r = unlock(demo_store, *ADMIN)
    after = {t: r.db.conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in TABLES if t != "audit_log"}
    assert after == content
    assert verify_connection(r.db.conn).ok
    assert r.db.conn.execute("SELECT count(*) FROM audit_log WHERE action = 'restore'").fetchone()[0] == 1
    r.lock()
    del dump


def test_restore_refuses_a_damaged_backup_and_keeps_the_store(demo_store, tmp_path):
    s = unlock(demo_store, *ADMIN)
    target = tmp_path / "b.db"
    backup(s, target)
    s.lock()
    data = bytearray(target.read_bytes())
    for i in range(8192, 12288):
        data[i] ^= 0xFF
    target.write_bytes(bytes(data))
    before = demo_store.read_bytes()
    with pytest.raises(Exception):
        restore(target, demo_store, *ADMIN)
    assert demo_store.read_bytes() == before
    assert not list(tmp_path.glob("store/*.restoring*"))


def test_a_backup_taken_while_the_desk_keeps_writing_verifies(empty_store, tmp_path):
    """In the GUI other threads write audit rows (every search) while a backup runs: the copy is compared with the
    state it was taken from, not with the store a moment later ('row counts differ' before)."""
    import threading
    import time
    from services.site.accounts import unlock
    from services.site.backup import backup
    s = unlock(empty_store.path, "admin", "admin-password")
    stop = threading.Event()

    def busy_desk():
        while not stop.is_set():
            s.log("read", "patients", "", "a search on another page")
            time.sleep(0.002)
    worker = threading.Thread(target=busy_desk)
    worker.start()
    try:
        for i in range(5):
            assert backup(s, tmp_path / f"b{i}.db").ok
    finally:
        stop.set()
        worker.join()
        s.lock()
