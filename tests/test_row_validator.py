"""One row check for every way a UCI-schema row comes in: the importer, `score readmission` and `score los` reject
the same bad row for the same reason (sex "Unicorn" used to be scored), and keep the good ones."""
from __future__ import annotations

import csv
import gzip
import io

import pytest

from services.records.demo import SAMPLE
from services.records.validation import uci_row_problem


def _rows(n: int = 6) -> tuple[list[str], list[dict[str, str]]]:
    text = gzip.decompress(SAMPLE.read_bytes()).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text))
    rows = [r for _, r in zip(range(n), reader)]
    for i, r in enumerate(rows):   # encounters and patients the demo store does not hold yet
        r["encounter_id"], r["patient_nbr"] = str(9_000_000_000 + i), str(9_100_000_000 + i)
    return list(reader.fieldnames or []), rows


def _write(path, header, rows) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows)


@pytest.mark.parametrize("column,value,reason", [("gender", "Unicorn", "gender has an unknown value"),
                                                 ("num_medications", "-3", "num_medications out of range"),
                                                 ("diag_1", "HEART", "diag_1 is not an ICD-9 or ICD-10 code"),
                                                 ("insulin", "Maybe", "insulin has an unknown value")])
def test_import_and_both_scoring_commands_reject_the_same_row_for_the_same_reason(tmp_path, desks, column, value,
                                                                                   reason):
    from services.capacity.los import score_los_csv
    from services.records.importer import import_uci_csv
    from services.risk.readmission import score_readmission_csv
    header, rows = _rows()
    rows[2][column] = value
    src = tmp_path / "in.csv"
    _write(src, header, rows)
    assert reason in (uci_row_problem(rows[2]) or "")
    readm = score_readmission_csv(src, tmp_path / "r.csv")
    los = score_los_csv(src, tmp_path / "l.csv")
    for result in (readm, los):
        assert [e["line"] for e in result["errors"]] == [4] and reason in result["errors"][0]["reason"]
    admin = desks("admin")
    report = import_uci_csv(admin.session, src)
    assert [(r.line, reason in r.reason) for r in report.rejected] == [(4, True)]


def test_an_inpatient_row_may_leave_its_stay_length_blank_for_length_of_stay_only():
    _header, rows = _rows(1)
    rows[0]["time_in_hospital"] = ""
    assert uci_row_problem(rows[0], stay_length_known=False) is None
    assert "time_in_hospital" in (uci_row_problem(rows[0]) or "")
