"""Outputs can never destroy data: no command writes over a store, its key file or a file of another kind; temporary
files are exclusive and never follow a planted link; patient files are 0600; CSV cells cannot run as formulas."""
from __future__ import annotations

import csv
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from services.core.outputs import OutputRefused, check_output, escape_cell, output_file, write_output
from tests.conftest import shared_path
from tests.security.conftest import as_user, cli


def _digest(*paths: Path) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


@pytest.mark.parametrize("suffix", [".keys", "", "-wal", "-shm"])
def test_scoring_without_a_login_cannot_overwrite_a_store_or_its_key_file(demo_store, uci_rows, suffix):
    """Before: `score los --output s.db.keys` (no login at all) replaced the key file: the store never opened again."""
    target = Path(str(demo_store) + suffix)
    if not target.exists():
        target.write_bytes(b"\x00" * 64)   # a -wal/-shm that happens to exist
    before = _digest(demo_store, Path(str(demo_store) + ".keys"), target)
    for model in ("los", "readmission"):
        r = cli("score", model, "--input", str(uci_rows), "--output", str(target))
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert "store" in r.stderr or "key file" in r.stderr
    assert _digest(demo_store, Path(str(demo_store) + ".keys"), target) == before


def test_a_nurse_cannot_write_a_ward_report_over_the_store_or_a_backup(demo_store, tmp_path):
    """Before: `report ward --output s.db` by a nurse replaced the store with a PDF."""
    backup = tmp_path / "b" / "monday.db"
    backup.parent.mkdir()
    shutil.copyfile(demo_store, backup)
    shutil.copyfile(str(demo_store) + ".keys", str(backup) + ".keys")
    other = tmp_path / "notes.txt"
    other.write_text("a nurse's handover notes", encoding="utf-8")
    before = _digest(demo_store, backup, other)
    for out in (demo_store, backup, Path(str(backup) + ".keys"), other, tmp_path / "renamed-store.db"):
        r = cli("report", "ward", "--db", str(demo_store), "--output", str(out), env=as_user("nurse.demo", "wardlens-nurse"))
        assert r.returncode == 1 and "Traceback" not in r.stderr, (out, r.stderr)
    assert _digest(demo_store, backup, other) == before
    assert not (tmp_path / "renamed-store.db").exists()
    r = cli("report", "ward", "--db", str(demo_store), "--output", str(tmp_path / "ward.pdf"),
            env=as_user("nurse.demo", "wardlens-nurse"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ward.pdf").read_bytes()[:5] == b"%PDF-"
    assert (tmp_path / "ward.pdf").stat().st_mode & 0o777 == 0o600


def test_a_planted_link_at_the_temporary_name_is_never_followed(tmp_path):
    """Before: a symlink planted at `rep.pdf.part` redirected a report with names into another user's file."""
    victim = tmp_path / "victim.pdf"
    victim.write_bytes(b"%PDF-1.4 someone else's report")
    for name in ("rep.pdf.part", ".rep.pdf.part", "rep.pdf.tmp"):
        (tmp_path / name).symlink_to(victim)
    out = write_output(tmp_path / "rep.pdf", "pdf", b"%PDF-1.4 new report")
    assert victim.read_bytes() == b"%PDF-1.4 someone else's report"
    assert out.read_bytes() == b"%PDF-1.4 new report" and not out.is_symlink()
    assert out.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["victim.pdf", "rep.pdf", "rep.pdf.part",
                                                                 ".rep.pdf.part", "rep.pdf.tmp"])  # nothing left behind


def test_a_link_planted_at_the_key_files_temporary_name_is_not_followed(empty_store, tmp_path):
    from services.store.keyfile import KeyFile, key_file_path
    store = empty_store.path
    before = _digest(store)
    for name in (store.name + ".keys.tmp", "." + store.name + ".keys.tmp"):
        (store.parent / name).symlink_to(store)
    keys = KeyFile.load(key_file_path(store))
    keys.record_failure("someone", "wrong password")  # rewrites the key file
    assert _digest(store) == before
    assert KeyFile.load(key_file_path(store)).data["failures"]["someone"]["count"] == 1


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    old = tmp_path / "r.pdf"
    old.write_bytes(b"%PDF-old")
    with pytest.raises(RuntimeError):
        with output_file(old, "pdf", text=False) as f:
            f.write(b"%PDF-half")
            raise RuntimeError("renderer failed")
    assert old.read_bytes() == b"%PDF-old" and [p.name for p in tmp_path.iterdir()] == ["r.pdf"]


@pytest.mark.parametrize("existing,kind,ok", [
    (b"%PDF-1.7 ...", "pdf", True), (b"a,b\r\n1,2\r\n", "csv", True), (b"a,b\r\n", "pdf", False),
    (b"%PDF-1.7", "csv", True),  # a CSV may replace any text file of the user's...
    (b"SQLite format 3\x00xxxx", "csv", False), (bytes(range(256)), "csv", False),  # ...never a database or binary
    (b'{"format": "wardlens-keys"}', "csv", False), (b"\x89PNG\r\n\x1a\nxx", "png", True), (b"%PDF-", "png", False),
])
def test_an_output_replaces_only_a_file_of_its_own_kind(tmp_path, existing, kind, ok):
    target = tmp_path / f"out.{kind}"
    target.write_bytes(existing)
    if ok:
        check_output(target, kind)
    else:
        with pytest.raises(OutputRefused, match="will not write over it"):
            check_output(target, kind)


def test_patient_files_are_created_readable_by_their_owner_only(desks, tmp_path):
    """Before: reports, CSVs and backup `.keys` were written world-readable (0644)."""
    from services.site.backup import backup
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    old = os.umask(0o022)  # a permissive desktop umask: the modes must not depend on it
    try:
        desk = desks("admin")
        on_server = isinstance(desks.store, str)
        if not on_server:   # a server store's backups are the DBA's, on the server
            backup(desk.session, tmp_path / "b.db")
        desk.records.export_encounters(tmp_path / "e.csv", identified=True)
        write_output(tmp_path / "r.pdf", "pdf", b"%PDF-1.4")
    finally:
        os.umask(old)
    for p in tmp_path.iterdir():
        assert p.stat().st_mode & 0o077 == 0, (p.name, oct(p.stat().st_mode))
    assert ({"e.csv", "r.pdf"} if on_server else {"b.db", "b.db.keys", "e.csv", "r.pdf"}) <= \
        {p.name for p in tmp_path.iterdir()}


@pytest.mark.parametrize("raw", [
    '=HYPERLINK("http://evil","x")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3", "\t=1", "\r=1", "  =1",
    "\uff1dHYPERLINK()", "\ufe66SUM(1)", "\uff0bcmd", "\ufe62cmd", "\uff20SUM(1)", "\ufe6bSUM(1)", "\u2212 1+1",
    "\u00a0=1", "\u3000=1",
])
def test_every_formula_start_is_neutralised(raw):
    assert escape_cell(raw).startswith("'")


@pytest.mark.parametrize("value,expected", [(-5, "-5"), (0.25, "0.25"), ("Smith, Ann", "Smith, Ann"), (None, ""),
                                            ("0.0698", "0.0698"), ("ICU-2", "ICU-2")])
def test_ordinary_values_are_unchanged(value, expected):
    assert escape_cell(value) == expected


def test_scoring_commands_neutralise_what_they_echo(uci_rows, tmp_path):
    """Before: `score readmission` and `score los` wrote `+cmd|…` verbatim into the output."""
    rows = list(csv.reader(uci_rows.open(encoding="utf-8")))
    rows[2][rows[0].index("encounter_id")] = "+cmd|' /C calc'!A0"
    rows[3][rows[0].index("encounter_id")] = "=HYPERLINK(\"http://evil\",\"x\")"
    with uci_rows.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    for model in ("readmission", "los"):
        out = tmp_path / f"{model}.csv"
        r = cli("score", model, "--input", str(uci_rows), "--output", str(out))
        assert r.returncode == 3, r.stderr
        cells = [c for row in csv.reader(out.open(encoding="utf-8")) for c in row]
        assert not any(c.lstrip()[:1] in "=+@" for c in cells if c), cells
        assert "'+cmd|' /C calc'!A0" in cells
        assert out.stat().st_mode & 0o777 == 0o600


def test_xray_classify_neutralises_file_names(tmp_path):
    """Before: `xray classify` wrote a file named `=HYPERLINK(…).png` as a live formula."""
    src = shared_path("nih_cxr", "originals", "00000001_000.png")
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(src, folder / '=HYPERLINK("http:evil")@SUM(1).png')
    out = tmp_path / "x.csv"
    r = cli("xray", "classify", "--input", '=HYPERLINK("http:evil")@SUM(1).png', "--output", str(out), cwd=folder)

    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(out.open(encoding="utf-8")))
    assert rows[1][0].startswith("'") and "HYPERLINK" in rows[1][0]
