"""`import` of whatever a hospital's systems export: the UCI encounter CSV, FHIR R4 (Bundles, Bulk Data NDJSON, a
folder of either, .gz of any) and HL7 v2 ADT messages, told apart by their content (`fmt` forces one). FHIR and HL7
imports are one transaction each, like the CSV's: a file that cannot be read leaves the store as it was."""
from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence
from pathlib import Path

from models.domain import Permission
from services.core.errors import ImportFileError
from services.core.files import InputTooLarge
from services.core.progress import CancelToken, ProgressFn, no_progress
from services.records.adt import import_adt
from services.records.csv_mapping import load_mapping, mapping_problems, read_mapped
from services.records.fhir import NotFhir, read_fhir
from services.records.fhir_import import import_fhir
from services.records.hl7v2 import NotHl7, read_hl7
from services.records.importer import import_uci_csv
from services.records.intake import Intake, RecordsReport
from services.site.session import Session
from services.store import audit

FORMATS = ("uci-csv", "fhir", "hl7v2")
NAMES = {"uci-csv": "UCI encounter CSV", "fhir": "FHIR R4", "hl7v2": "HL7 v2"}


def _head(path: Path, n: int = 4096) -> bytes:
    with path.open("rb") as f:
        raw = f.read(n)
    if raw[:2] == b"\x1f\x8b":
        try:
            with gzip.open(path, "rb") as f:
                raw = f.read(n)
        except (OSError, EOFError, zlib.error) as exc:
            raise ImportFileError(f"{path.name} is a damaged .gz file ({exc}). Nothing was imported.") from exc
    return raw


def looks_like(path: Path) -> str:
    """The format of one file by its first bytes, or ImportFileError saying what it looks like instead."""
    raw = _head(path)
    text = raw.decode("utf-8-sig", errors="replace").lstrip()
    if text.startswith("{"):
        return "fhir"
    if text.startswith("MSH") or "\rMSH|" in text[:400] or "\nMSH|" in text[:400]:
        return "hl7v2"
    header = [h.strip() for h in text.splitlines()[0].split(",")] if text else []
    if "encounter_id" in header and "patient_nbr" in header:
        return "uci-csv"
    if not raw.strip():
        what = "an empty file"
    elif raw[128:132] == b"DICM":
        what = "a DICOM image"
    elif raw[:4] == b"%PDF":
        what = "a PDF"
    elif raw[:4] == b"PK\x03\x04":
        what = "a ZIP archive or an office document"
    elif b"\x00" in raw[:512]:
        what = "binary data"
    elif text.startswith("<"):
        what = "XML (a CDA document or an HL7 v3 message?), which WardLens does not read"
    elif len(header) > 1:
        what = (f"a CSV whose columns ({', '.join(header[:6])}{' …' if len(header) > 6 else ''}) are not the UCI "
                "encounter schema")
    else:
        what = "text that is no CSV, FHIR JSON or HL7 v2 message"
    raise ImportFileError(f"{path.name} is {what}. Nothing was imported.")


def detect(paths: Sequence[Path]) -> tuple[str, int]:
    """(format, files in the folders that hold no records: checksums, READMEs, licences, skipped and counted). A file
    named on its own must be a record file."""
    kinds: set[str] = set()
    skipped = 0
    for p in map(Path, paths):
        if not p.exists():
            raise ImportFileError(f"{p} does not exist. Nothing was read.")
        if not p.is_dir():
            kinds.add(looks_like(p))
            continue
        for f in sorted(q for q in p.rglob("*") if q.is_file() and not q.name.startswith(".")):
            try:
                kinds.add(looks_like(f))
            except ImportFileError:
                skipped += 1
    if not kinds:
        raise ImportFileError("There is no CSV, FHIR or HL7 v2 file to import. Nothing was imported.")
    if len(kinds) > 1:
        raise ImportFileError("The files hold different formats (" + ", ".join(NAMES[k] for k in sorted(kinds)) +
                              "); import each format on its own. Nothing was imported.")
    return kinds.pop(), skipped


def import_records(session: Session, paths: Sequence[Path | str], fmt: str | None = None,
                   progress: ProgressFn = no_progress, cancel: CancelToken | None = None,
                   mapping: Path | str | dict | None = None) -> RecordsReport:
    """`mapping`: a saved column mapping (services.records.csv_mapping) for a CSV export in the hospital's own
    columns; the paths are then that export's folder or its one CSV file."""
    session.require(Permission.IMPORT, "import data")
    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise ImportFileError(f"{p} does not exist. Nothing was imported.")
    if mapping is not None:
        if isinstance(mapping, dict):   # made on the Imports page, not saved
            problems = mapping_problems(mapping)
            if problems:
                raise ImportFileError("The mapping is not complete: " + "; ".join(problems) + ". Nothing was imported.")
            spec, name = mapping, "the mapping made on the Imports page"
        else:
            spec, name = load_mapping(mapping), f"mapping {Path(mapping).name}"
        report = RecordsReport(f"CSV with {name}")
        return _write(session, paths, report, import_fhir, [read_mapped(p, spec) for p in paths], progress, cancel)
    if fmt is not None and fmt not in FORMATS:
        raise ImportFileError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
    found, other_files = detect(paths) if fmt is None else (fmt, 0)
    fmt = fmt or found
    report = RecordsReport(NAMES[fmt])
    if other_files:
        report.skipped["files in the folder that hold no records"] += other_files
    if fmt == "uci-csv":
        for p in paths:
            if p.is_dir():
                raise ImportFileError(f"{p.name} is a folder; give the CSV file itself. Nothing was imported.")
            csv = import_uci_csv(session, p, progress, cancel)
            report.add("encounters", "imported", csv.imported)
            report.add("patients", "imported", csv.patients_created)
            report.rejected_total += csv.rejected_total - len(csv.rejected)
            for r in csv.rejected:
                report.reject(p.name, f"line {r.line}", r.reason)
        return report
    progress(0, 1, f"reading {len(paths)} {NAMES[fmt]} source(s)")
    try:
        batch = read_fhir(paths) if fmt == "fhir" else read_hl7(paths)
    except (NotFhir, NotHl7) as exc:
        raise ImportFileError(f"{exc}. Nothing was imported.") from exc
    except InputTooLarge as exc:
        raise ImportFileError(f"{exc} Nothing was imported.") from exc
    except (OSError, UnicodeDecodeError, EOFError, zlib.error) as exc:
        raise ImportFileError(f"A file could not be read ({exc}). Nothing was imported.") from exc
    if cancel is not None:
        cancel.raise_if_cancelled()
    return _write(session, paths, report, import_fhir if fmt == "fhir" else import_adt, [batch], progress, cancel)


def _write(session: Session, paths: Sequence[Path], report: RecordsReport, writer, batches: list,
           progress: ProgressFn, cancel: CancelToken | None) -> RecordsReport:
    """Records read from FHIR, HL7 v2 or a mapped CSV into the store: one transaction, audited."""
    with session.db.transaction() as c:
        intake = Intake(session, c, report)
        for batch in batches:
            writer(intake, batch, progress, cancel)
        audit.append(c, session.user.username, "import", "records", ", ".join(p.name for p in paths)[:500],
                     report.summary())
    progress(1, 1, report.summary())
    return report

