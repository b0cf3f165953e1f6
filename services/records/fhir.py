"""FHIR R4 in: Bundles (transaction, batch, collection, searchset), Bulk Data NDJSON (one file per resource type), a
folder of either and `.gz` of any, read into plain records the store can keep (the interoperability issue, step 1).

Read as dictionaries with the standard library's json rather than validated as pydantic models (fhir.resources):
the import must stay within 3x of only parsing the files, and validating every Observation of 500 patients costs an
order of magnitude more. What is kept is checked field by field here instead, and every entry is accounted for:
kept, skipped as a resource type WardLens does not keep (counted by type), or rejected with its file, entry and reason.

References are resolved as FHIR defines them: `urn:uuid:` full URLs inside a Bundle, `Type/id` (relative, also from
another file of the same export) and conditional references (`Patient?identifier=system|value`)."""
from __future__ import annotations

import gc
import gzip
import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SYSTEMS = {   # code system URL -> the short name WardLens stores beside the code (kept as given otherwise)
    "http://snomed.info/sct": "SNOMED",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD10",
    "http://hl7.org/fhir/sid/icd-10": "ICD10",
    "http://hl7.org/fhir/sid/icd-9-cm": "ICD9",
    "http://loinc.org": "LOINC",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RXNORM",
}
# v3 ActCode encounter classes -> the classes `stats` and the census count
CLASSES = {"IMP": "inpatient", "ACUTE": "inpatient", "NONAC": "inpatient", "EMER": "emergency", "AMB": "ambulatory",
           "OBSENC": "other", "SS": "ambulatory", "HH": "other", "VR": "ambulatory", "PRENC": "other"}
KEPT = ("Patient", "Encounter", "Condition", "MedicationRequest", "Observation", "Procedure", "Location")
KINDS = {"Condition": "diagnosis", "MedicationRequest": "medication", "Observation": "lab", "Procedure": "procedure"}


@dataclass(frozen=True)
class Coded:
    code: str
    system: str     # short name (SYSTEMS) or the URL as given
    display: str = ""


@dataclass
class FhirPatient:
    key: str
    identifiers: tuple[tuple[str, str], ...]
    mrn: str                      # the medical record number (identifier type MR), else the first identifier, else the id
    family: str = ""
    given: str = ""
    birth_date: str = ""
    sex: str = "Unknown/Invalid"
    deceased: bool = False
    file: str = ""


@dataclass
class FhirEncounter:
    key: str
    patient: str
    identifiers: tuple[tuple[str, str], ...]
    cls: str                      # inpatient, emergency, ambulatory, other
    status: str
    start: str = ""
    end: str = ""
    admit_source: Coded | None = None
    discharge_disposition: Coded | None = None
    locations: tuple[str, ...] = ()   # display names, most specific last (ward, room, bed)
    type: str = ""
    file: str = ""


@dataclass
class FhirClinical:
    """A Condition, MedicationRequest, Observation or Procedure, with what WardLens keeps of it."""
    kind: str                     # "diagnosis", "medication", "lab" or "procedure"
    key: str
    patient: str
    encounter: str | None
    coded: Coded
    value: float | None = None    # labs
    value_text: str = ""
    unit: str = ""
    low: float | None = None
    high: float | None = None
    time: str = ""
    icd10: str = ""               # a diagnosis's ICD-10 coding beside its SNOMED one, where the source gives both
    status: str = ""              # a medication order's status (active, stopped …)


@dataclass
class Problem:
    file: str
    entry: str                    # "entry 12" in a Bundle, "line 7" in NDJSON
    reason: str


@dataclass
class FhirBatch:
    patients: dict[str, FhirPatient] = field(default_factory=dict)
    encounters: dict[str, FhirEncounter] = field(default_factory=dict)
    clinical: list[FhirClinical] = field(default_factory=list)
    locations: dict[str, str] = field(default_factory=dict)   # Location key -> name
    skipped: Counter = field(default_factory=Counter)          # resource types WardLens does not keep
    problems: list[Problem] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        kinds = Counter(c.kind for c in self.clinical)
        return {"patients": len(self.patients), "encounters": len(self.encounters), "diagnoses": kinds["diagnosis"],
                "medications": kinds["medication"], "labs": kinds["lab"], "procedures": kinds["procedure"], "rejected": len(self.problems),
                "skipped": sum(self.skipped.values())}


class NotFhir(ValueError):
    """The file is no FHIR JSON or NDJSON; the message says what it looks like."""


# ------------------------------------------------------------------------------------------------ files
def _open(path: Path) -> io.TextIOBase:
    raw = path.open("rb")
    head = raw.read(2)
    raw.seek(0)
    stream = gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw
    return io.TextIOWrapper(stream, encoding="utf-8-sig")


def _files(paths: Iterable[Path | str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and any(
                f.name.endswith(s) for s in (".json", ".ndjson", ".json.gz", ".ndjson.gz")))
        else:
            out.append(p)
    return out


def _entries(path: Path) -> Iterator[tuple[str, str | None, dict[str, Any] | None, str]]:
    """(where, full URL, resource, problem) for every entry of one file: a Bundle, one resource, or NDJSON."""
    with _open(path) as f:
        first = f.read(1)
        while first and first.isspace():
            first = f.read(1)
        if first != "{":
            raise NotFhir(f"{path.name} is not FHIR JSON (it starts with {first!r}, not '{{')")
        rest = f.read()
    text = first + rest
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = None   # several objects, one per line: NDJSON
    if doc is None:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                res = json.loads(line)
            except json.JSONDecodeError as exc:
                yield f"line {n}", None, None, f"not JSON ({exc.msg})"
                continue
            yield f"line {n}", None, res if isinstance(res, dict) else None, "" if isinstance(res, dict) else "not an object"
        return
    if not isinstance(doc, dict) or "resourceType" not in doc:
        raise NotFhir(f"{path.name} is JSON but not a FHIR resource (no resourceType)")
    if doc["resourceType"] != "Bundle":
        yield "resource", None, doc, ""
        return
    for n, entry in enumerate(doc.get("entry") or [], 1):
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict):
            yield f"entry {n}", None, None, "entry without a resource"
            continue
        yield f"entry {n}", entry.get("fullUrl"), res, ""


# ------------------------------------------------------------------------------------------------ fields
def _coded(concept: Any) -> Coded | None:
    """The first coding with a code (a known system first), with the concept's text as display if it has none."""
    if not isinstance(concept, dict):
        return None
    codings = [c for c in concept.get("coding") or [] if isinstance(c, dict) and c.get("code")]
    codings.sort(key=lambda c: c.get("system") not in SYSTEMS)
    if not codings:
        return None
    c = codings[0]
    system = c.get("system") or ""
    return Coded(str(c["code"]), SYSTEMS.get(system, system), str(c.get("display") or concept.get("text") or ""))


# Identifiers that name a person across organisations (v2-0203: social security, driver's licence, passport, tax,
# national and insurance numbers) are not matched on: they collide in real registries and in the shared Synthea set,
# where two patients carry the same driver's licence number. A hospital's own numbers (MR, PI …) and untyped ones are.
PERSON_TYPES = {"SS", "SSN", "DL", "DLN", "PPN", "PP", "TAX", "NI", "NH", "BC", "DR", "MC", "MA", "PEN", "SB", "HC"}


def matches_patient(type_code: str) -> bool:
    t = (type_code or "").strip().upper()
    return not (t in PERSON_TYPES or t.startswith("NN"))


def _identifiers(res: dict) -> tuple[tuple[str, str], ...]:
    out = []
    for i in res.get("identifier") or []:
        if not isinstance(i, dict) or not i.get("value"):
            continue
        types = {str(c.get("code")) for c in ((i.get("type") or {}).get("coding") or []) if isinstance(c, dict)}
        if res.get("resourceType") != "Patient" or all(matches_patient(t) for t in types):
            out.append((str(i.get("system") or ""), str(i["value"])))
    return tuple(out)


def _mrn(res: dict, identifiers: tuple[tuple[str, str], ...]) -> str:
    for i in res.get("identifier") or []:
        codes = [c.get("code") for c in ((i.get("type") or {}).get("coding") or []) if isinstance(c, dict)] \
            if isinstance(i, dict) else []
        if "MR" in codes and i.get("value"):
            return str(i["value"])
    return identifiers[0][1] if identifiers else str(res.get("id") or "")


def _sex(gender: Any) -> str:
    return {"female": "Female", "male": "Male"}.get(str(gender or "").lower(), "Unknown/Invalid")


def _name(res: dict) -> tuple[str, str]:
    names = [n for n in res.get("name") or [] if isinstance(n, dict)]
    names.sort(key=lambda n: n.get("use") != "official")
    if not names:
        return "", ""
    n = names[0]
    return str(n.get("family") or ""), " ".join(str(g) for g in n.get("given") or [])


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# ------------------------------------------------------------------------------------------------ reading
def read_fhir(paths: Iterable[Path | str]) -> FhirBatch:
    """Every FHIR resource under `paths`, kept, skipped or rejected with a reason; references resolved.

    The cyclic garbage collector is paused while reading: the parsed resources (plain dictionaries, no cycles) are
    all alive until the second pass, and its full collections re-scanned them again and again (4.3x the time of
    parsing alone for the 500 Synthea bundles, 1.7x without; docs/performance.md)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return _read_fhir(paths)
    finally:
        if paused:
            gc.enable()


def _read_fhir(paths: Iterable[Path | str]) -> FhirBatch:
    batch = FhirBatch()
    pending: list[tuple[str, str, dict, dict[str, str]]] = []   # (file, where, resource, full URL -> key) for pass 2
    files = _files(paths)
    if not files:
        raise NotFhir("no .json, .ndjson or .gz file to read")
    for path in files:
        aliases: dict[str, str] = {}
        entries = []
        for where, full_url, res, problem in _entries(path):
            if problem:
                batch.problems.append(Problem(path.name, where, problem))
                continue
            kind, rid = res.get("resourceType"), res.get("id")
            key = f"{kind}/{rid}" if rid else (full_url or f"{path.name}#{where}")
            if full_url:
                aliases[full_url] = key
            entries.append((where, key, res))
        for where, key, res in entries:
            pending.append((path.name, where, {**res, "_key": key}, aliases))
    # pass 1: patients and locations (what the others point to); pass 2: the rest
    for file, where, res, _aliases in pending:
        kind = res.get("resourceType")
        if kind == "Patient":
            family, given = _name(res)
            ids = _identifiers(res)
            batch.patients[res["_key"]] = FhirPatient(
                res["_key"], ids, _mrn(res, ids), family, given, str(res.get("birthDate") or ""), _sex(res.get("gender")),
                bool(res.get("deceasedBoolean") or res.get("deceasedDateTime")), file)
        elif kind == "Location":
            batch.locations[res["_key"]] = str(res.get("name") or "")
    by_identifier = {(s, v): k for k, p in batch.patients.items() for s, v in p.identifiers}
    for file, where, res, aliases in pending:
        kind = res.get("resourceType")
        if kind in ("Patient", "Location"):
            continue
        if kind not in KEPT:
            batch.skipped[str(kind) if kind else "no resourceType (not a FHIR resource)"] += 1
            continue

        def ref(field_value: Any) -> str | None:
            r = field_value.get("reference") if isinstance(field_value, dict) else None
            if not r:
                return None
            if r in aliases:
                return aliases[r]
            if "?identifier=" in r:   # conditional: Type?identifier=system|value
                system, _, value = r.split("?identifier=", 1)[1].partition("|")
                return by_identifier.get((system, value)) if r.startswith("Patient") else r
            return r
        patient = ref(res.get("subject") or res.get("patient"))
        if patient not in batch.patients:
            batch.problems.append(Problem(file, where, f"{kind} for a patient not in the files ({patient or 'none'})"))
            continue
        if kind == "Encounter":
            cls = res.get("class") or {}
            hosp = res.get("hospitalization") or {}
            places = tuple(batch.locations.get(ref(loc.get("location")) or "", "") or
                           str((loc.get("location") or {}).get("display") or "")
                           for loc in res.get("location") or [] if isinstance(loc, dict))
            period = res.get("period") or {}
            batch.encounters[res["_key"]] = FhirEncounter(
                res["_key"], patient, _identifiers(res), CLASSES.get(str(cls.get("code") or ""), "other"),
                str(res.get("status") or ""), str(period.get("start") or ""), str(period.get("end") or ""),
                _coded(hosp.get("admitSource")), _coded(hosp.get("dischargeDisposition")), tuple(p for p in places if p),
                (_coded((res.get("type") or [None])[0]) or Coded("", "")).display, file)
            continue
        concept = res.get("code") if kind != "MedicationRequest" else (
            res.get("medicationCodeableConcept") or {"text": str((res.get("medicationReference") or {}).get("display")
                                                                 or "")})
        coded = _coded(concept)
        if coded is None:
            batch.problems.append(Problem(file, where, f"{kind} without a code"))
            continue
        encounter = ref(res.get("encounter") or res.get("context"))
        item = FhirClinical(KINDS[kind], res["_key"], patient, encounter, coded,
                            time=str(res.get("effectiveDateTime") or res.get("onsetDateTime") or res.get("authoredOn")
                                     or res.get("performedDateTime") or (res.get("performedPeriod") or {}).get("start")
                                     or res.get("recordedDate") or ""),
                            status=str(res.get("status") or ""))
        if kind == "Condition" and coded.system != "ICD10":
            item.icd10 = next((str(c["code"]) for c in (concept or {}).get("coding") or [] if isinstance(c, dict)
                               and SYSTEMS.get(c.get("system") or "") == "ICD10" and c.get("code")), "")
        if kind == "Observation":
            q = res.get("valueQuantity") or {}
            item.value, item.unit = _number(q.get("value")), str(q.get("unit") or q.get("code") or "")
            item.value_text = str(res.get("valueString") or (_coded(res.get("valueCodeableConcept")) or
                                                             Coded("", "")).display or "")
            rr = (res.get("referenceRange") or [{}])[0]
            item.low = _number((rr.get("low") or {}).get("value"))
            item.high = _number((rr.get("high") or {}).get("value"))
            if item.value is None and not item.value_text:
                batch.skipped["Observation without a value (panel)"] += 1
                continue
        batch.clinical.append(item)
    # encounters referenced by clinical items must exist (a dangling one is kept without its encounter)
    for item in batch.clinical:
        if item.encounter is not None and item.encounter not in batch.encounters:
            item.encounter = None
    return batch
