"""Fuzzing the CSV import: encodings, missing/duplicate/shuffled columns, NUL bytes, unmatched quotes,
huge fields and lines, odd digits, damaged gzip. Whatever the input: no exception other than
ImportFileError (and then the store is unchanged), and every rejected row is reported with its line.
benchmarks/fuzz_import_atheris.py runs the same oracle under atheris (coverage-guided) as a command."""
from __future__ import annotations

import csv
import gzip
import io

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from services.site.accounts import unlock
from services.core.errors import ImportFileError
from services.records.importer import MAX_LINE_CHARS, import_uci_csv
from services.records.uci_schema import ENCOUNTER_COLUMNS, MEDICATIONS

GOOD = {"encounter_id": "1", "patient_nbr": "77", "race": "Caucasian", "gender": "Female", "age": "[70-80)",
        "weight": "?", "admission_type_id": "1", "discharge_disposition_id": "1", "admission_source_id": "7",
        "time_in_hospital": "3", "payer_code": "MC", "medical_specialty": "Cardiology", "num_lab_procedures": "41",
        "num_procedures": "0", "num_medications": "11", "number_outpatient": "0", "number_emergency": "0",
        "number_inpatient": "1", "diag_1": "428", "diag_2": "250.02", "diag_3": "V45", "number_diagnoses": "9",
        "max_glu_serum": "None", "A1Cresult": ">8", **{m: "No" for m in MEDICATIONS}, "insulin": "Steady",
        "change": "Ch", "diabetesMed": "Yes", "readmitted": "<30"}

NASTY = st.sampled_from(["", "?", "\x00", '"', '""', "'", "\n", "\r", ",", "²", "١٢", "-", "-0", "1e3", " 7 ",
                         "9" * 30, "\ufeff", "é", "\udcff"[:0] + "ß", "NaN", "None", "=cmd()", "x" * 200])


@st.composite
def csv_files(draw):
    cols = list(ENCOUNTER_COLUMNS)
    mode = draw(st.sampled_from(["valid", "drop", "dup", "shuffle", "extra"]))
    if mode == "drop":
        cols.remove(draw(st.sampled_from(cols)))
    elif mode == "dup":
        cols.append(draw(st.sampled_from(cols)))
    elif mode == "shuffle":
        cols = draw(st.permutations(cols))
    elif mode == "extra":
        cols.append("ward")
    rows = []
    for i in range(draw(st.integers(0, 12))):
        row = {c: GOOD.get(c, "") for c in cols}
        row["encounter_id"] = str(draw(st.integers(1, 40)))
        for _ in range(draw(st.integers(0, 3))):
            row[draw(st.sampled_from(cols))] = draw(st.one_of(NASTY, st.text(max_size=12)))
        cells = [row[c] for c in cols]
        if draw(st.integers(0, 9)) == 0:
            cells = cells[:draw(st.integers(0, len(cells)))]  # short row
        rows.append(cells)
    buf = io.StringIO()
    csv.writer(buf, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))).writerows([cols] + rows)
    text = buf.getvalue()
    if draw(st.integers(0, 5)) == 0:  # raw damage after quoting: a lone quote, a NUL, a cut
        pos = draw(st.integers(0, len(text)))
        text = text[:pos] + draw(st.sampled_from(['"', "\x00", "", "\r"])) + text[pos:]
    enc = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252"]))
    data = text.encode(enc, errors="replace")
    if draw(st.integers(0, 4)) == 0:
        data = gzip.compress(data)
        if draw(st.booleans()):
            data = data[:len(data) // 2] if draw(st.booleans()) else data[:20] + bytes(8) + data[28:]
    return data


def _counts(session) -> tuple:
    c = session.db.conn
    return tuple(c.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                 for t in ("patients", "encounters", "diagnoses", "medications", "lab_results"))


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    from services.site.accounts import create_store
    from tests.conftest import FAST
    path = tmp_path_factory.mktemp("fuzz") / "site.db"
    create_store(path, "admin", "admin-password", FAST)
    s = unlock(path, "admin", "admin-password")
    yield s
    s.lock()


def _check_one(session, data: bytes) -> None:
    before = _counts(session)
    physical_lines = data.count(b"\n") + data.count(b"\r") + 1 if data[:2] != b"\x1f\x8b" else 10**9
    try:
        report = import_uci_csv(session, io.BytesIO(data), name="fuzz.csv")
    except ImportFileError as exc:
        assert str(exc) and "Nothing was imported" in str(exc) or "empty" in str(exc)
        assert _counts(session) == before
        assert not session.db.conn.in_transaction
        return
    after = _counts(session)
    assert after[1] - before[1] == report.imported
    lines = [r.line for r in report.rejected]
    assert len(lines) == report.rejected_total == len(set(lines))
    assert all(2 <= n <= physical_lines for n in lines), lines
    assert all(r.reason for r in report.rejected)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=csv_files())
def test_any_csv_imports_cleanly_or_is_refused_whole(session, data):
    _check_one(session, data)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes(session, data):
    _check_one(session, data)


def test_rejected_rows_carry_their_physical_line(session):
    header = ",".join(ENCOUNTER_COLUMNS)
    good = lambda eid, **kw: ",".join(csv_cell({**GOOD, "encounter_id": str(eid), **kw}[c]) for c in ENCOUNTER_COLUMNS)
    csv_cell = lambda v: f'"{v}"' if any(ch in v for ch in ',"\n') else v
    text = "\n".join([
        header,                                             # line 1
        good(9001, medical_specialty="Two\nlines"),         # lines 2-3 (a quoted field spans a line break)
        good(9002, time_in_hospital="²"),                   # line 4: isdigit() but not a number
        good(9003, diag_1="٤٢٨"),                           # line 5: Arabic-Indic digits are not ICD-9
        good(9004, gender="F\x00"),                         # line 6: NUL byte
        "1,2,3",                                            # line 7: short row
        good(9001),                                         # line 8: duplicate of line 2
        good(9005),                                         # line 9: fine
    ]) + "\n"
    report = import_uci_csv(session, io.BytesIO(text.encode()), name="lines.csv")
    assert report.imported == 2
    assert [r.line for r in report.rejected] == [4, 5, 6, 7, 8]
    assert "whole number" in report.rejected[0].reason and "ICD" in report.rejected[1].reason


def test_a_line_without_end_is_refused_without_reading_it_all(session):
    before = _counts(session)
    data = (",".join(ENCOUNTER_COLUMNS) + "\n" + "x" * (MAX_LINE_CHARS * 3)).encode()
    with pytest.raises(ImportFileError, match="longer than"):
        import_uci_csv(session, io.BytesIO(data))
    assert _counts(session) == before


def test_damaged_gzip_is_refused_whole(session):
    raw = gzip.compress((",".join(ENCOUNTER_COLUMNS) + "\n").encode() * 50)
    bad = raw[:30] + bytes(b ^ 0xFF for b in raw[30:60]) + raw[60:]
    before = _counts(session)
    with pytest.raises(ImportFileError):
        import_uci_csv(session, io.BytesIO(bad))
    assert _counts(session) == before
