"""The records façade: patients and their encounters, imports and exports, for one session."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from models.domain import Permission
from services.core.errors import PermissionDenied, ValidationError
from services.core.progress import CancelToken, ProgressFn, no_progress
from services.records import export
from services.records.importer import ImportReport, import_uci_csv
from services.records.intake import RecordsReport
from services.records.sources import import_records
from services.records.watch import WatchResult, process_folder
from services.records.patients import PatientService
from services.site.session import Session


class Records:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.patients = PatientService(session)

    def patient_id_for(self, ref: str | int) -> int:
        """The patient number (mrn) staff type on the command line. Only the number: falling back to the
        store's internal row id turned a mistyped number into another patient's report."""
        self.session.require(Permission.READ_DEIDENTIFIED, "look up patients")
        text = str(ref).strip()
        if not text:
            raise ValidationError({"patient": "give a patient number"})
        if not self.session.sees_names:   # the number is sealed under the identity key this session lacks
            raise PermissionDenied("Your role does not see hospital numbers, so it cannot look patients up by them.")
        row = self.session.db.conn.execute("SELECT id FROM patients WHERE mrn = ?",
                                           (self.session.codec.number_key(text),)).fetchone()
        if row is None:
            raise ValidationError({"patient": f"no patient with number {text!r}: check the number on the patient list"})
        return int(row[0])

    def counts(self) -> dict[str, Any]:
        """What the store holds, for `stats` (any role: counts only, nothing identifying)."""
        self.session.require(Permission.READ_DEIDENTIFIED, "see the store's counts")
        c = self.session.db.conn
        one = lambda sql: int(c.execute(sql).fetchone()[0])  # noqa: E731
        encounters = one("SELECT count(*) FROM encounters")
        return {"patients": one("SELECT count(*) FROM patients"), "encounters": encounters,
                "encounters_by_class": {"inpatient": 0, "emergency": 0, "ambulatory": 0, "other": 0} | {
                    cls: n for cls, n in c.execute("SELECT class, count(*) FROM encounters GROUP BY class")},
                "diagnoses": one("SELECT count(*) FROM diagnoses"), "medications": one("SELECT count(*) FROM medications"),
                "labs": one("SELECT count(*) FROM lab_results")}

    def import_csv(self, source: Path | str | BinaryIO, progress: ProgressFn = no_progress,
                   cancel: CancelToken | None = None) -> ImportReport:
        return import_uci_csv(self.session, source, progress, cancel)

    def import_files(self, paths: Sequence[Path | str], fmt: str | None = None, progress: ProgressFn = no_progress,
                     cancel: CancelToken | None = None, mapping: Path | str | dict | None = None) -> RecordsReport:
        """UCI CSV, FHIR R4 or HL7 v2 ADT, detected from the content, or a CSV export through a saved column mapping
        (services.records.sources)."""
        return import_records(self.session, paths, fmt, progress, cancel, mapping)

    def import_watched_folder(self, folder: Path | str, cancel: CancelToken | None = None) -> list[WatchResult]:
        """One pass over the watched import folder (services.records.watch)."""
        return process_folder(self.session, folder, cancel)

    def export_encounters(self, path: Path | str, identified: bool = False, bom: bool = False) -> int:
        return export.export_encounters_csv(self.session, path, identified, bom)

    def export_table(self, headers: Sequence[str], rows: Iterable[Sequence[Any]], path: Path | str, what: str,
                     identified: bool = True, bom: bool = False) -> int:
        return export.export_table(self.session, headers, rows, path, what, identified, bom)
