"""Input files made to exhaust memory or the parser: refused with a sentence, nothing of the store changed."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from services.core import files
from services.core.errors import ImportFileError
from services.core.files import InputTooLarge, read_input
from services.desk import open_desk
from tests.conftest import DEMO_PASSWORDS


def _bomb(path: Path, expanded: int) -> Path:
    """A FHIR Patient whose narrative expands to `expanded` bytes from a file a thousandth of that."""
    body = b'{"resourceType":"Patient","id":"x","text":{"div":"' + b"A" * expanded + b'"}}'
    path.write_bytes(gzip.compress(body, compresslevel=9))
    return path


def test_a_small_gz_that_expands_past_the_limit_is_not_read_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "MAX_INPUT_BYTES", 1 << 20)
    bomb = _bomb(tmp_path / "feed.json.gz", 8 << 20)
    assert bomb.stat().st_size < 64 << 10
    with pytest.raises(InputTooLarge, match="larger than 1 MiB once decompressed"):
        read_input(bomb)
    assert read_input(_bomb(tmp_path / "small.json.gz", 1000)).startswith(b'{"resourceType"')
    plain = tmp_path / "plain.json"
    plain.write_bytes(b"{}" * (1 << 20))
    with pytest.raises(InputTooLarge, match=r"larger than 1 MiB and was not read"):
        read_input(plain)


def test_bombs_and_deep_nesting_are_refused_by_every_import_and_the_store_is_unchanged(demo_store, tmp_path,
                                                                                       monkeypatch):
    monkeypatch.setattr(files, "MAX_INPUT_BYTES", 1 << 20)
    desk = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        count = lambda: desk.session.db.conn.execute("SELECT count(*) FROM patients").fetchone()[0]  # noqa: E731
        before = count()
        with pytest.raises(ImportFileError, match="larger than 1 MiB once decompressed.*Nothing was imported"):
            desk.records.import_files([_bomb(tmp_path / "feed.json.gz", 4 << 20)])
        deep = tmp_path / "deep.json"
        deep.write_text('{"resourceType":"Bundle","entry":' + "[" * 100_000 + "]" * 100_000 + "}")
        with pytest.raises(ImportFileError, match="nested too deeply"):
            desk.records.import_files([deep])
        deep_line = '{"a":' + "[" * 100_000 + "]" * 100_000 + "}\n"
        for n, text in enumerate(('{"resourceType":"Patient","id":"a"}\n' + deep_line,   # second line or first:
                                  deep_line + '{"resourceType":"Patient","id":"b"}\n')):  # that line alone
            nd = tmp_path / f"deep{n}.ndjson"
            nd.write_text(text)
            report = desk.records.import_files([nd])
            assert any("nested too deeply" in str(r) for r in report.rejected)
        mapped = tmp_path / "export.csv.gz"
        mapped.write_bytes(gzip.compress(b"id,name\n" + b"1," + b"A" * (4 << 20) + b"\n"))
        from services.records.csv_mapping import _rows
        with pytest.raises(ImportFileError, match="once decompressed.*Nothing was imported"):
            _rows(mapped)
        assert count() == before + 2   # the good NDJSON patients; nothing of the refused files
        hl7 = tmp_path / "adt.hl7.gz"
        hl7.write_bytes(gzip.compress(b"MSH|^~\\&|A|B|C|D|202601010000||ADT^A01|1|P|2.5\r" + b"X" * (2 << 20)))
        with pytest.raises(ImportFileError, match="once decompressed"):
            desk.records.import_files([hl7])
    finally:
        desk.lock()


def test_scoring_a_bomb_or_a_missing_file_says_so(tmp_path, monkeypatch):
    from services.risk.readmission import ReadmissionInputError, score_readmission_csv
    monkeypatch.setattr(files, "MAX_INPUT_BYTES", 1 << 20)
    src = tmp_path / "enc.csv.gz"
    src.write_bytes(gzip.compress(b"encounter_id\n" + b"1\n" * (2 << 20)))
    with pytest.raises(ReadmissionInputError, match="larger than 1 MiB once decompressed"):
        score_readmission_csv(src, tmp_path / "o.csv")
    from services.records.sources import detect
    with pytest.raises(ImportFileError, match="does not exist"):
        detect([tmp_path / "nope.json"])
