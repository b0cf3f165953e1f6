"""CSV exports: any table, escaped against spreadsheet formula injection, and the de-identified
encounter export for analysts (HIPAA Safe Harbor).

Rules enforced here, not in the UI:
- every export needs Permission.EXPORT (nurses cannot export) and is audited as 'export';
- a role that does not see names (analyst) never gets an identified export: its encounter export is
  always the de-identified one, and a table flagged as identified is refused;
- cells that a spreadsheet would run as a formula (= + - @, tab, CR first) are prefixed with a quote.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from models.domain import Permission
from services.core.errors import PermissionDenied
from services.core.outputs import escape_cell, output_file
from services.records.patients import encounters_uci_frame
from services.site.pseudonyms import Pseudonymiser
from services.site.session import Session
from services.store.identity import Ident
from services.records.uci_schema import MEDICATIONS

BOM = "\ufeff"

Row = Mapping[str, Any] | Sequence[Any]


# ------------------------------------------------------------------------------ writing
def _cells(row: Row, headers: Sequence[str]) -> list[str]:
    if isinstance(row, Mapping):
        return [escape_cell(row.get(h)) for h in headers]
    values = list(row)
    if len(values) != len(headers):
        raise ValueError(f"row has {len(values)} values for {len(headers)} columns")
    return [escape_cell(v) for v in values]


def write_csv(rows: Iterable[Row], headers: Sequence[str], out: IO[str], bom: bool = False) -> int:
    """Write headers and rows (dicts keyed by header, or sequences in header order) to a text stream.

    Returns the number of data rows. The stream should be opened with newline="" (csv's own rule).
    """
    if bom:
        out.write(BOM)  # Excel on Windows needs it to read UTF-8 (else it assumes the ANSI code page)
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow([escape_cell(h) for h in headers])
    n = 0
    for row in rows:
        w.writerow(_cells(row, headers))
        n += 1
    return n


def csv_bytes(rows: Iterable[Row], headers: Sequence[str], bom: bool = False) -> bytes:
    buf = io.StringIO(newline="")
    write_csv(rows, headers, buf, bom=bom)
    return buf.getvalue().encode("utf-8")


def _write_file(path: Path | str, rows: Iterable[Row], headers: Sequence[str], bom: bool) -> int:
    with output_file(path, "csv") as f:  # never over a store or a non-CSV file; 0600; whole or not at all
        return write_csv(rows, headers, f, bom=bom)


# ------------------------------------------------------------------------------ any table
def export_table(session: Session, headers: Sequence[str], rows: Iterable[Row], path: Path | str, what: str,
                 identified: bool = True, bom: bool = False) -> int:
    """Export a table the user is looking at (e.g. a worklist) to CSV; returns the row count.

    `identified`: whether the table may hold names, patient numbers or dates (the default, to be safe).
    Roles that do not see names may only export tables the caller declares de-identified.
    """
    session.require(Permission.EXPORT, "export data")
    if identified and not session.sees_names:
        session.log("denied", "export", "", f"identified table {what!r} refused for a de-identified role")
        raise PermissionDenied("Your role may only export de-identified data. Use the de-identified encounter export.")
    n = _write_file(path, rows, headers, bom)
    session.log("export", "table", "", f"{what}: {n} rows, {'identified' if identified else 'de-identified'}, "
                                       f"file {Path(path).name}")
    return n


# ------------------------------------------------------------------------------ de-identification
DEID_COLUMNS: tuple[str, ...] = (
    "patient_pseudonym", "encounter_pseudonym", "sex", "race", "age_group", "admit_year", "discharge_year",
    "status", "ward", "bed", "admission_type_id", "admission_source_id", "discharge_disposition_id",
    "time_in_hospital", "medical_specialty", "payer_code", "num_lab_procedures", "num_procedures",
    "num_medications", "number_outpatient", "number_emergency", "number_inpatient", "number_diagnoses",
    "diag_1", "diag_2", "diag_3", "max_glu_serum", "A1Cresult", *MEDICATIONS, "change", "diabetesMed", "readmitted",
)
_COPIED = [c for c in DEID_COLUMNS if c not in ("patient_pseudonym", "encounter_pseudonym", "sex", "age_group",
                                                "admit_year", "discharge_year", "ward", "bed")]


def age_group(age_band: str | None) -> str:
    """Safe Harbor: ages over 89 are one group, "90+"; below that the UCI ten-year band stays."""
    band = (age_band or "").strip()
    if not band:
        return ""
    try:
        low = int(band.strip("[]()").split("-")[0])
    except ValueError:
        return ""
    return "90+" if low >= 90 else band


def year_of(timestamp: Any) -> str:
    """Safe Harbor: of a date only the year may stay."""
    text = "" if timestamp is None else str(timestamp).strip()
    return text[:4] if len(text) >= 4 and text[:4].isdigit() else ""


def deidentified_encounters(session: Session, key: bytes | None = None) -> list[dict[str, str]]:
    """Every encounter without names, patient or encounter numbers, birth dates or dates finer than a
    year; ages over 89 as "90+"; ward and bed kept. Columns: DEID_COLUMNS.

    `key` only for tests that need stable pseudonyms; normally each call draws a fresh one.
    """
    session.require(Permission.READ_DEIDENTIFIED, "read de-identified data")
    conn = session.db.conn
    frame = encounters_uci_frame(conn)
    place = {eid: (ward, bed) for eid, ward, bed in conn.execute(
        "SELECT e.id, coalesce(w.name, ''), coalesce(b.label, '') FROM encounters e "
        "LEFT JOIN wards w ON w.id = e.ward_id LEFT JOIN beds b ON b.id = e.bed_id")}
    pseudo = Pseudonymiser(key)
    out: list[dict[str, str]] = []
    for rec in frame.to_dict("records"):
        ward, bed = place.get(int(rec["_eid"]), ("", ""))
        row = {
            # the store's own patient id, not the hospital number: even hashed, the number never leaves
            "patient_pseudonym": pseudo("P", int(rec["_pid"])),
            "encounter_pseudonym": pseudo("E", int(rec["_eid"])),
            "sex": rec["gender"],
            "age_group": age_group(rec["age"]),
            "admit_year": year_of(rec["admit_time"]),
            "discharge_year": year_of(rec["discharge_time"]),
            "ward": ward,
            "bed": bed,
        }
        for c in _COPIED:
            v = rec.get(c)
            row[c] = "" if v is None else str(v)
        if rec["status"] == "inpatient":
            row["discharge_disposition_id"] = ""  # the scoring view assumes "home"; nothing is recorded yet
        out.append(row)
    session.log("read", "encounters", "", f"de-identified view of {len(out)} encounters")
    return out


IDENTIFIED_COLUMNS: tuple[str, ...] = ("patient_number", "family_name", "given_name", "birth_date", "sex",
                                       "encounter_number", "admit_time", "discharge_time", "status", "ward", "bed",
                                       "age_band", "diag_1", "diag_2", "diag_3", "readmitted")


def identified_encounters(session: Session) -> list[dict[str, str]]:
    """Encounters with names and dates, for roles that see names (clinician, admin)."""
    session.require(Permission.READ_PATIENT, "read identified patient data")
    d = session.directory()
    if d is None:
        raise PermissionDenied("Names and hospital numbers are sealed under an identity key this session does not hold.")
    rows = session.db.conn.execute(
        "SELECT e.patient_id, p.sex, "
        "e.encounter_nbr, coalesce(e.admit_time,''), coalesce(e.discharge_time,''), e.status, coalesce(w.name,''), "
        "coalesce(b.label,''), e.age_band, "
        "coalesce((SELECT code FROM diagnoses d WHERE d.encounter_id = e.id AND d.position = 1), '?'), "
        "coalesce((SELECT code FROM diagnoses d WHERE d.encounter_id = e.id AND d.position = 2), '?'), "
        "coalesce((SELECT code FROM diagnoses d WHERE d.encounter_id = e.id AND d.position = 3), '?'), e.readmitted "
        "FROM encounters e JOIN patients p ON p.id = e.patient_id LEFT JOIN wards w ON w.id = e.ward_id "
        "LEFT JOIN beds b ON b.id = e.bed_id").fetchall()
    out = []
    for pid, *rest in rows:
        who = d.get(pid) or Ident("?", None, None, None)
        out.append((who.mrn, who.family or "", who.given or "", who.birth or "", *rest))
    out.sort(key=lambda r: (r[0], r[5]))
    session.log("read", "encounters", "", f"identified view of {len(out)} encounters")
    return [dict(zip(IDENTIFIED_COLUMNS, (str(v) for v in r))) for r in out]


def export_encounters_csv(session: Session, path: Path | str, identified: bool = False, bom: bool = False) -> int:
    """All encounters to CSV; returns the row count.

    Roles that do not see names always get the de-identified export (asking for an identified one is
    refused, never silently downgraded, so nobody believes they hold identified data when they do not).
    """
    session.require(Permission.EXPORT, "export data")
    if identified and not session.sees_names:
        session.log("denied", "export", "", "identified encounter export refused for a de-identified role")
        raise PermissionDenied("Your role may only export de-identified data.")
    if identified:
        rows, headers = identified_encounters(session), IDENTIFIED_COLUMNS
    else:
        rows, headers = deidentified_encounters(session), DEID_COLUMNS
    n = _write_file(path, rows, headers, bom)
    session.log("export", "encounters", "", f"{n} rows, {'identified' if identified else 'de-identified (Safe Harbor)'}, "
                                            f"file {Path(path).name}")
    return n
