"""Streaming import of a CSV in the UCI encounter schema into the store.

All or nothing at file level: the whole import is one transaction, so a file that turns out to be
unreadable half-way (bad encoding, unmatched quote, NUL byte) leaves the store exactly as it was. Rows
with bad values are rejected one by one, each reported with its line and reason, and the rest import.
"""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

from models.domain import Permission
from services.store import audit
from services.core.errors import ImportFileError
from services.core.progress import CancelToken, ProgressFn, no_progress
from services.site.session import Session
from services.records.uci_schema import ENCOUNTER_COLUMNS, MEDICATIONS
from services.records.intake import next_patient_id
from services.store.dialect import sync_ids, writer_lock
from services.records.validation import diagnosis_system, uci_row_problem

REQUIRED = [c for c in ENCOUNTER_COLUMNS if c != "readmitted"]
OPTIONAL = ("readmitted", "given_name", "family_name", "birth_date", "admit_time", "discharge_time", "ward")
BATCH = 2000
MAX_LINE_CHARS = 1 << 20  # one physical line; memory stays bounded even for a file with no line breaks
MAX_REPORTED = 10_000


@dataclass
class RejectedRow:
    line: int
    reason: str


@dataclass
class ImportReport:
    imported: int = 0
    patients_created: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    rejected_total: int = 0

    def reject(self, line: int, reason: str) -> None:
        self.rejected_total += 1
        if len(self.rejected) < MAX_REPORTED:
            self.rejected.append(RejectedRow(line, reason))

    def summary(self) -> str:
        return (f"{self.imported} encounters imported ({self.patients_created} new patients), "
                f"{self.rejected_total} rows rejected")


def _open_text(source: Path | BinaryIO) -> tuple[io.TextIOBase, BinaryIO]:
    raw = open(source, "rb") if isinstance(source, Path) else source
    magic = raw.read(2)
    raw.seek(0)
    binary = gzip.GzipFile(fileobj=raw) if magic == b"\x1f\x8b" else raw
    # errors="strict": a file in the wrong encoding is refused, never imported as mojibake.
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="strict", newline=""), raw


class _LineTooLong(Exception):
    pass


def _bounded_lines(text: io.TextIOBase) -> Iterator[str]:
    """Physical lines of at most MAX_LINE_CHARS: iterating the file itself would hold a whole
    line in memory however long it is (a multi-gigabyte file without a line break)."""
    while True:
        chunk = text.readline(MAX_LINE_CHARS)
        if not chunk:
            return
        if len(chunk) >= MAX_LINE_CHARS and not chunk.endswith(("\n", "\r")):
            raise _LineTooLong()
        yield chunk


def _rows(source: Path | BinaryIO) -> Iterator[tuple[int, list[str], int]]:
    """(line number, fields, bytes read so far); raises ImportFileError on file-level faults."""
    text, raw = _open_text(source)
    reader = csv.reader(_bounded_lines(text), strict=True)
    line = 1
    try:
        for fields in reader:
            yield line, fields, raw.tell()
            line = reader.line_num + 1
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"Line {line}: the file is not UTF-8 text ({exc.reason}). Nothing was imported.") from exc
    except _LineTooLong:
        raise ImportFileError(f"Line {line}: a line is longer than {MAX_LINE_CHARS:,} characters; this is not an "
                              "encounter file. Nothing was imported.") from None
    except csv.Error as exc:
        raise ImportFileError(f"Line {line}: the CSV is malformed ({exc}). Nothing was imported.") from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise ImportFileError(f"The file could not be read ({exc}). Nothing was imported.") from exc
    finally:
        text.close()


def import_uci_csv(session: Session, source: Path | str | BinaryIO, progress: ProgressFn = no_progress,
                   cancel: CancelToken | None = None, name: str | None = None) -> ImportReport:
    """Import from a file path or an open binary stream (the demo builder passes one from memory)."""
    session.require(Permission.IMPORT, "import data")
    if isinstance(source, (str, Path)):
        source = Path(source)
        if not source.is_file():
            raise ImportFileError(f"{source} is not a file.")
        total, name = max(1, os.path.getsize(source)), name or source.name
    else:
        total, name = max(1, source.seek(0, io.SEEK_END)), name or "stream"
        source.seek(0)
    report = ImportReport()
    now = dt.datetime.now().isoformat(sep=" ", timespec="seconds")
    with session.db.transaction() as c:
        for what in ("records", "patients", "encounters"):   # as every import: one desk at a time on the server,
            writer_lock(c, what, long_wait=True)              # before reading what is already there
        wards = {name.lower(): wid for wid, name in c.execute("SELECT id, name FROM wards")}
        codec = session.codec   # hospital numbers are matched by their blind index when the store is sealed
        patients = {key: pid for pid, key in c.execute("SELECT id, mrn FROM patients")}
        seen = {n for (n,) in c.execute("SELECT encounter_nbr FROM encounters")}
        next_pid = next_patient_id(c)
        next_eid = c.execute("SELECT coalesce(max(id), 0) + 1 FROM encounters").fetchone()[0]
        header: list[str] | None = None
        batch: dict[str, list[tuple]] = {"p": [], "e": [], "d": [], "m": [], "l": []}
        for line, fields, pos in _rows(source):
            if header is None:
                header = [h.strip() for h in fields]
                dup = sorted({h for h in header if header.count(h) > 1})
                if dup:
                    raise ImportFileError(f"Line 1: duplicate columns {', '.join(dup)}. Nothing was imported.")
                missing = [col for col in REQUIRED if col not in header]
                if missing:
                    raise ImportFileError(f"Line 1: missing columns {', '.join(missing[:8])}"
                                          f"{' …' if len(missing) > 8 else ''}. Nothing was imported.")
                continue
            if not fields or fields == [""]:
                continue
            if len(fields) != len(header):
                report.reject(line, f"expected {len(header)} fields, found {len(fields)}")
                continue
            row = dict(zip(header, fields))
            problem = "contains a NUL byte" if any("\x00" in f for f in fields) else uci_row_problem(row)
            enc_nbr = int(row["encounter_id"]) if problem is None else 0
            if problem is None and enc_nbr in seen:
                problem = f"encounter {enc_nbr} is already in the store or earlier in this file"
            if problem:
                report.reject(line, problem)
                continue
            seen.add(enc_nbr)
            mrn = row["patient_nbr"].strip()
            key = codec.number_key(mrn)
            pid = patients.get(key)
            if pid is None:
                pid = patients[key] = next_pid
                next_pid += 1
                report.patients_created += 1
                cols = codec.patient_columns(pid, mrn, row.get("given_name") or None, row.get("family_name") or None,
                                             row.get("birth_date") or None)
                batch["p"].append((pid, cols["mrn"], cols["given_name"], cols["family_name"], cols["birth_date"],
                                   cols["ident"], row["gender"], row["race"], "", now, now))
            eid, next_eid = next_eid, next_eid + 1
            admit, discharge = row.get("admit_time") or None, row.get("discharge_time") or None
            status = "inpatient" if admit and not discharge else "discharged"
            batch["e"].append((eid, pid, enc_nbr, status, admit, discharge, int(row["admission_type_id"]),
                               int(row["admission_source_id"]), int(row["discharge_disposition_id"]),
                               wards.get((row.get("ward") or "").lower()), row["age"], row["weight"], row["payer_code"],
                               row["medical_specialty"], int(row["time_in_hospital"]), int(row["num_lab_procedures"]),
                               int(row["num_procedures"]), int(row["num_medications"]), int(row["number_outpatient"]),
                               int(row["number_emergency"]), int(row["number_inpatient"]), int(row["number_diagnoses"]),
                               row["change"], row["diabetesMed"], row.get("readmitted", ""), now, now))
            for i, col in enumerate(("diag_1", "diag_2", "diag_3"), start=1):
                code = row[col].strip().upper()
                if code != "?":
                    batch["d"].append((eid, i, code, diagnosis_system(code)))
            batch["m"] += [(eid, d, row[d]) for d in MEDICATIONS if row[d] != "No"]
            batch["l"] += [(eid, n, row[n]) for n in ("max_glu_serum", "A1Cresult") if row[n] != "None"]
            report.imported += 1
            if len(batch["e"]) >= BATCH:
                _flush(c, batch)
                progress(pos, total, f"{report.imported} encounters read")
                if cancel is not None:
                    cancel.raise_if_cancelled()  # raises inside the transaction: everything rolls back
        if header is None:
            raise ImportFileError("The file is empty. Nothing was imported.")
        _flush(c, batch)
        for table in ("patients", "encounters"):
            sync_ids(c, table)
        audit.append(c, session.user.username, "import", "encounters", name, report.summary())
    progress(total, total, report.summary())
    return report


def _flush(c, batch: dict[str, list[tuple]]) -> None:
    c.executemany("INSERT INTO patients (id, mrn, given_name, family_name, birth_date, ident, sex, race, search_name, "
                  "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)", batch["p"])
    c.executemany("INSERT INTO encounters (id, patient_id, encounter_nbr, status, admit_time, discharge_time, "
                  "admission_type_id, admission_source_id, discharge_disposition_id, ward_id, age_band, weight, "
                  "payer_code, medical_specialty, time_in_hospital, num_lab_procedures, num_procedures, num_medications, "
                  "number_outpatient, number_emergency, number_inpatient, number_diagnoses, change_flag, diabetes_med, "
                  "readmitted, created_at, updated_at) VALUES (" + ",".join("?" * 27) + ")", batch["e"])
    c.executemany("INSERT INTO diagnoses (encounter_id, position, code, system) VALUES (?,?,?,?)", batch["d"])
    c.executemany("INSERT INTO medications (encounter_id, drug, status) VALUES (?,?,?)", batch["m"])
    c.executemany("INSERT INTO lab_results (encounter_id, name, value_text) VALUES (?,?,?)", batch["l"])
    for v in batch.values():
        v.clear()
