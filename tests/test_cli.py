"""The command line, as an IT admin would use it (real subprocesses, real files)."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    for k in ("WARDLENS_USER", "WARDLENS_PASSWORD", "WARDLENS_RECOVERY_KEY"):
        if env is None or k not in env:
            e.pop(k, None)
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, env=e,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def cli_demo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "demo.db"
    r = run("demo", "--db", str(path))
    assert r.returncode == 0, r.stderr
    assert "dr.demo" in r.stdout
    return path


def test_demo_file_is_encrypted_and_unreadable_by_sqlite(cli_demo):
    raw = cli_demo.read_bytes()
    assert raw[:16] != b"SQLite format 3\x00"
    assert b"CREATE TABLE" not in raw and b"encounters" not in raw
    con = sqlite3.connect(cli_demo)
    with pytest.raises(sqlite3.DatabaseError):
        con.execute("SELECT name FROM sqlite_master").fetchall()


def test_verify_ok_and_wrong_password(cli_demo):
    ok = run("verify", "--db", str(cli_demo), "--user", "admin", env={"WARDLENS_PASSWORD": "wardlens-admin"})
    assert ok.returncode == 0 and "audit chain" in ok.stdout, ok.stderr
    bad = run("verify", "--db", str(cli_demo), "--user", "admin", env={"WARDLENS_PASSWORD": "nope-nope"})
    assert bad.returncode == 1 and "Wrong user name or password" in bad.stderr


def test_password_is_never_an_argument_and_missing_password_is_a_clear_error(cli_demo):
    r = run("verify", "--db", str(cli_demo), "--user", "admin")
    assert r.returncode == 1 and "WARDLENS_PASSWORD" in r.stderr
    r = run("verify", "--db", str(cli_demo), "--password", "x")
    assert r.returncode == 2  # argparse: no such option


@pytest.mark.slow
def test_init_import_backup_restore_verify(tmp_path):
    db = tmp_path / "site.db"
    env = {"WARDLENS_PASSWORD": "site-admin-pass"}
    r = run("init", "--db", str(db), "--admin", "itadmin", env=env)
    assert r.returncode == 0, r.stderr
    assert "RECOVERY KEY" in r.stdout
    recovery = r.stdout.split("RECOVERY KEY")[1].splitlines()[1].strip()
    bad = tmp_path / "bad.csv"
    bad.write_text("encounter_id,patient_nbr\n1,2\n")
    r = run("import", "--db", str(db), "--user", "itadmin", "--input", str(bad), env=env)
    assert r.returncode == 1 and "missing columns" in r.stderr
    sample = ROOT / "resources" / "demo" / "uci_sample.csv.gz"
    r = run("import", "--db", str(db), "--user", "itadmin", "--input", str(sample), env=env)
    assert r.returncode == 0 and "3000 encounters imported" in r.stdout, r.stdout + r.stderr
    (tmp_path / "b").mkdir()   # the backup folder (e.g. a mounted drive) exists; WardLens never creates one
    r = run("backup", "--db", str(db), "--user", "itadmin", "--output", str(tmp_path / "b" / "site-backup.db"), env=env)
    assert r.returncode == 0 and "verified" in r.stdout, r.stderr
    r = run("restore", "--db", str(db), "--user", "itadmin", "--backup", str(tmp_path / "b" / "site-backup.db"), env=env)
    assert r.returncode == 0, r.stderr
    r = run("verify", "--db", str(db), env={"WARDLENS_RECOVERY_KEY": recovery})
    assert r.returncode == 0, r.stdout + r.stderr


def test_bad_input_gives_clear_errors(tmp_path):
    r = run("verify", "--db", str(tmp_path / "nope.db"), "--user", "a", env={"WARDLENS_PASSWORD": "x"})
    assert r.returncode == 1 and "No store" in r.stderr
    plain = tmp_path / "plain.db"
    sqlite3.connect(plain).execute("CREATE TABLE t(a)").connection.commit()
    r = run("verify", "--db", str(plain), "--user", "a", env={"WARDLENS_PASSWORD": "x"})
    assert r.returncode == 1 and "unencrypted" in r.stderr
    r = run("import", "--db", str(plain))
    assert r.returncode == 2  # --input is required


def test_score_los_reports_bad_rows_with_line_and_reason(tmp_path):
    """`score los` answers every input row: line, encounter_id, los_days, los_low, los_high, error (like
    `score readmission`), and names each rejected row on stderr with a non-zero exit."""
    import csv
    import gzip
    with gzip.open(ROOT / "resources" / "demo" / "uci_sample.csv.gz", "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(5)]  # header + 4 encounters
    fields = lines[2].rstrip("\n").split(",")
    fields[6] = "urgent"                     # admission_type_id must be a number
    lines[2] = ",".join(fields) + "\n"
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text("".join(lines) + "1,2,3\n", encoding="utf-8")
    r = run("score", "los", "--input", str(src), "--output", str(out))
    assert r.returncode == 3, r.stderr
    assert "3 scored, 2 rejected" in r.stdout
    assert "line 3: admission_type_id must be a whole number" in r.stderr and "line 6: has 3 fields" in r.stderr
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["line", "encounter_id", "los_days", "los_low", "los_high", "error"]
    assert [r["line"] for r in rows] == ["2", "3", "4", "5", "6"]
    assert rows[1]["error"].startswith("admission_type_id") and rows[1]["los_days"] == ""
    assert rows[0]["error"] == "" and float(rows[0]["los_days"]) >= 1


@pytest.mark.parametrize("model", ["readmission", "los"])
def test_scoring_never_overwrites_its_input_and_refuses_bad_output_paths_up_front(tmp_path, model):
    """One typo must not cost the analyst the source file: output = input is refused before anything is written,
    as are a folder as output, a missing output folder (not silently created) and a folder as input."""
    import gzip
    with gzip.open(ROOT / "resources" / "demo" / "uci_sample.csv.gz", "rt", encoding="utf-8") as f:
        text = "".join(next(f) for _ in range(4))
    src = tmp_path / "in.csv"
    src.write_text(text, encoding="utf-8")
    cases = {str(src): "is the input file", str(tmp_path): "is a folder",
             str(tmp_path / "missing" / "o.csv"): "does not exist"}
    for out, said in cases.items():
        r = run("score", model, "--input", str(src), "--output", out)
        assert r.returncode == 1 and said in r.stderr and "Errno" not in r.stderr, (out, r.stderr)
    assert src.read_text(encoding="utf-8") == text and not (tmp_path / "missing").exists()
    r = run("score", model, "--input", str(tmp_path), "--output", str(tmp_path / "o.csv"))
    assert r.returncode == 1 and "is a folder; give the CSV file" in r.stderr
    r = run("report", "ward", "--db", str(tmp_path / "x.db"), "--output", str(tmp_path / "missing" / "w.pdf"))
    assert r.returncode == 1 and "does not exist" in r.stderr  # told before any login is asked for
