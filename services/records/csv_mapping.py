"""A hospital's own CSV export, read through a saved column mapping (JSON) instead of reshaped by hand: which file and
which column holds each field WardLens keeps. The mapped rows become the same records a FHIR export gives
(services.records.fhir.FhirBatch), so they are matched, derived and written by the one FHIR writer.

A mapping names, per kind, its file (relative to the folder imported; omitted when one CSV holds everything) and its
columns. A field is a column name, "=TEXT" for a constant (a code system the file does not name), or for diagnoses a
list of columns (DX1, DX2 … on one row). "values" translates a column's values (the export's "M" to "Male", its
encounter classes to inpatient / emergency / ambulatory / other). resources/mappings/synthea-csv.json maps the Synthea
CSV export; docs/interop.md describes every field."""
from __future__ import annotations

import csv
import gzip
import io
import json
import math
import zlib
from pathlib import Path
from typing import Any

from services.core.errors import ImportFileError
from services.core.files import InputTooLarge, read_input
from services.core.outputs import write_output
from services.records.fhir import SYSTEMS, Coded, FhirBatch, FhirClinical, FhirEncounter, FhirPatient, Problem

KINDS = ("patients", "encounters", "diagnoses", "labs", "medications", "procedures")
CLINICAL = {"diagnoses": "diagnosis", "labs": "lab", "medications": "medication", "procedures": "procedure"}
REQUIRED = {"patients": ("id",), "encounters": ("id", "patient", "start"), "diagnoses": ("patient", "code"),
            "labs": ("patient", "code"), "medications": ("patient", "code"), "procedures": ("patient", "code")}
FIELDS = {"patients": ("id", "mrn", "family", "given", "birth_date", "sex", "deceased_date"),
          "encounters": ("id", "patient", "start", "end", "class", "admit_source", "discharge_disposition", "ward"),
          "diagnoses": ("patient", "encounter", "code", "system", "display", "time"),
          "labs": ("patient", "encounter", "code", "system", "display", "value", "unit", "time"),
          "medications": ("patient", "encounter", "code", "system", "display", "time"),
          "procedures": ("patient", "encounter", "code", "system", "display", "time")}
CLASSES = ("inpatient", "emergency", "ambulatory", "other")


def load_mapping(path: Path | str) -> dict[str, Any]:
    """The mapping file, checked whole: a mistake is reported before anything is read."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportFileError(f"The mapping {path.name} is not a readable JSON file ({exc}). Nothing was imported.")
    problems = mapping_problems(doc)
    if problems:
        raise ImportFileError(f"The mapping {path.name} is not usable: {'; '.join(problems)}. Nothing was imported.")
    return doc


def save_mapping(doc: dict[str, Any], path: Path | str) -> Path:
    """Write a mapping made on the Imports page (checked first; never over anything but another mapping)."""
    problems = mapping_problems(doc)
    if problems:
        raise ImportFileError("The mapping is not complete: " + "; ".join(problems) + ".")
    return write_output(path, "json", (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))


def csv_header(path: Path | str) -> list[str]:
    """The column names of a CSV (its first line only, however large the file), for the mapping step."""
    path = Path(path)
    try:
        with path.open("rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw) if gz else raw
            first = stream.readline(1 << 20).decode("utf-8-sig")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise ImportFileError(f"{path.name} is not a readable UTF-8 CSV ({exc}).") from exc
    try:
        return [h.strip() for h in next(csv.reader([first]), []) if h.strip()]
    except csv.Error as exc:
        raise ImportFileError(f"{path.name}: the first line is no CSV header ({exc}).") from exc


def mapping_problems(doc: Any) -> list[str]:
    problems = []
    if not isinstance(doc, dict) or doc.get("wardlens_mapping") != 1:
        problems.append('it must be a JSON object with "wardlens_mapping": 1')
    else:
        for kind in ("patients", "encounters"):
            if not isinstance(doc.get(kind), dict):
                problems.append(f"it has no {kind} section")
        for kind, spec in doc.items():
            if kind in ("wardlens_mapping", "name", "identifier_system"):
                continue
            if kind not in KINDS or not isinstance(spec, dict):
                problems.append(f"unknown section {kind!r} (one of {', '.join(KINDS)})")
                continue
            unknown = set(spec) - set(FIELDS[kind]) - {"file", "values"}
            if unknown:
                problems.append(f"{kind}: unknown fields {', '.join(sorted(unknown))}")
            problems += _type_problems(kind, spec)
            missing = [f for f in REQUIRED[kind] if not spec.get(f)]
            if missing:
                problems.append(f"{kind}: no column for {', '.join(missing)}")
    return problems


def _type_problems(kind: str, spec: dict) -> list[str]:
    out = []
    file = spec.get("file")
    if file is not None and (not isinstance(file, str) or not file or Path(file).name != file or file in (".", "..")):
        out.append(f"{kind}: file must be the name of a file in the export folder (no folders, no '..')")
    for field in FIELDS[kind]:
        col = spec.get(field)
        lists_ok = field == "code" and kind in CLINICAL
        if col is None or isinstance(col, str) or (lists_ok and isinstance(col, list) and col
                                                   and all(isinstance(c, str) and c for c in col)):
            continue
        out.append(f"{kind}: {field} must be a column name" + (" or a list of them" if lists_ok else ""))
    values = spec.get("values", {})
    if not isinstance(values, dict) or not all(
            isinstance(m, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in m.items())
            for m in values.values()):
        out.append(f"{kind}: values must map a field to {{its value in the file: the value WardLens keeps}}")
    return out


def _rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    try:
        raw = read_input(path)   # bounded: a small .gz can expand a thousandfold
    except InputTooLarge as exc:
        raise ImportFileError(f"{exc} Nothing was imported.") from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise ImportFileError(f"{path.name} could not be read ({exc}). Nothing was imported.") from exc
    try:
        reader = csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline=""), strict=True)
        header = [h.strip() for h in next(reader, [])]
        rows = [(reader.line_num, dict(zip(header, r))) for r in reader if r and any(x.strip() for x in r)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ImportFileError(f"{path.name} is not a readable UTF-8 CSV ({exc}). Nothing was imported.") from exc
    return header, rows


def read_mapped(source: Path, mapping: dict[str, Any]) -> FhirBatch:
    batch = FhirBatch()
    files: dict[str, tuple[list[str], list[tuple[int, dict[str, str]]]]] = {}
    id_system = str(mapping.get("identifier_system") or f"urn:wardlens:csv:{mapping.get('name', 'export')}")

    def table(kind: str) -> tuple[str, list[tuple[int, dict[str, str]]]] | None:
        spec = mapping.get(kind)
        if not spec:
            return None
        path = source / spec["file"] if source.is_dir() and spec.get("file") else source
        if source.is_dir() and not spec.get("file"):
            raise ImportFileError(f"The mapping names no file for {kind}, and {source.name} is a folder.")
        if not path.is_file():
            raise ImportFileError(f"{kind}: {path.name} is not in {source.name}. Nothing was imported.")
        if source.is_dir() and (path.is_symlink() or path.resolve().parent != source.resolve()):
            raise ImportFileError(f"{kind}: {path.name} is not a plain file of {source.name}. Nothing was imported.")
        if path.name not in files:
            files[path.name] = _rows(path)
        header, rows = files[path.name]
        wanted = [c for f in FIELDS[kind] for c in ([spec[f]] if isinstance(spec.get(f), str) else spec.get(f) or [])
                  if not c.startswith("=")]
        absent = [c for c in wanted if c not in header]
        if absent:
            raise ImportFileError(f"{path.name} has no column {', '.join(absent)} (the mapping's {kind}). "
                                  "Nothing was imported.")
        return path.name, rows

    def get(spec: dict, field: str, row: dict[str, str]) -> str:
        col = spec.get(field)
        if not isinstance(col, str) or not col:
            return ""
        value = col[1:] if col.startswith("=") else (row.get(col) or "").strip()
        return str((spec.get("values") or {}).get(field, {}).get(value, value))

    spec = mapping["patients"]
    name, rows = table("patients")  # type: ignore[misc]
    for line, row in rows:
        pid = get(spec, "id", row)
        if not pid:
            batch.problems.append(Problem(name, f"line {line}", "patient without an id"))
            continue
        sex = get(spec, "sex", row)
        batch.patients[f"Patient/{pid}"] = FhirPatient(
            f"Patient/{pid}", ((id_system, pid),), get(spec, "mrn", row) or pid, get(spec, "family", row),
            get(spec, "given", row), get(spec, "birth_date", row)[:10],
            sex if sex in ("Female", "Male") else "Unknown/Invalid", bool(get(spec, "deceased_date", row)), name,
            number_is_mr=True)   # the export's own patient number
    spec = mapping["encounters"]
    name, rows = table("encounters")  # type: ignore[misc]
    for line, row in rows:
        eid, patient = get(spec, "id", row), f"Patient/{get(spec, 'patient', row)}"
        if not eid or patient not in batch.patients:
            batch.problems.append(Problem(name, f"line {line}", "encounter without an id" if not eid else
                                          f"encounter for a patient not in the file ({patient[8:] or 'none'})"))
            continue
        cls = get(spec, "class", row)
        end = get(spec, "end", row)
        disposition, admitted_from = get(spec, "discharge_disposition", row), get(spec, "admit_source", row)
        batch.encounters[f"Encounter/{eid}"] = FhirEncounter(
            f"Encounter/{eid}", patient, ((id_system, eid),), cls if cls in CLASSES else "other",
            "finished" if end else "in-progress", get(spec, "start", row), end,
            Coded(admitted_from, "") if admitted_from else None, Coded(disposition, "") if disposition else None,
            tuple(w for w in [get(spec, "ward", row)] if w), "", name)
    for kind, item_kind in CLINICAL.items():
        spec = mapping.get(kind)
        found = table(kind)
        if not spec or found is None:
            continue
        name, rows = found
        codes = spec["code"] if isinstance(spec["code"], list) else [spec["code"]]
        for line, row in rows:
            patient = f"Patient/{get(spec, 'patient', row)}"
            if patient not in batch.patients:
                batch.problems.append(Problem(name, f"line {line}", f"{item_kind} for a patient not in the file"))
                continue
            encounter = f"Encounter/{get(spec, 'encounter', row)}" if spec.get("encounter") else None
            if encounter in batch.encounters and batch.encounters[encounter].patient != patient:
                batch.problems.append(Problem(name, f"line {line}", f"{item_kind} of one patient on another patient's "
                                              "stay"))
                continue
            system = get(spec, "system", row)
            system = SYSTEMS.get(system, system)
            for n, column in enumerate(codes):
                code = (column[1:] if column.startswith("=") else (row.get(column) or "")).strip()
                if not code or code == "?":
                    continue
                item = FhirClinical(item_kind, f"{name}#{line}.{n}", patient,
                                    encounter if encounter in batch.encounters else None,
                                    Coded(code, system, get(spec, "display", row)), time=get(spec, "time", row))
                if kind == "labs":
                    try:
                        item.value = float(get(spec, "value", row))
                    except ValueError:
                        item.value_text = get(spec, "value", row)
                    if item.value is not None and not math.isfinite(item.value):
                        batch.problems.append(Problem(name, f"line {line}", f"lab value {get(spec, 'value', row)!r} "
                                                      "is not a finite number"))
                        continue
                    item.unit = get(spec, "unit", row)
                    if item.value is None and not item.value_text:
                        batch.skipped["lab row without a value"] += 1
                        continue
                batch.clinical.append(item)
    return batch
