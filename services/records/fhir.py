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
import hashlib
import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.core.files import read_input

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
    number_is_mr: bool = False    # the hospital number is an MR-typed identifier (matched on); else shown only


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
    file: str = ""


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
    text = read_input(path).decode("utf-8-sig").lstrip()   # bounded: a small .gz can expand a thousandfold
    if text[:1] != "{":
        raise NotFhir(f"{path.name} is not FHIR JSON (it starts with {text[:1]!r}, not '{{')")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = None   # several objects, one per line: NDJSON
    except RecursionError:   # nested thousands deep: no FHIR resource is
        if sum(1 for line in text.splitlines() if line.strip()) < 2:
            raise NotFhir(f"{path.name} is JSON nested too deeply to be a FHIR resource") from None
        doc = None   # NDJSON: the line-by-line reading below rejects that line alone
    if doc is None:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                res = json.loads(line)
            except json.JSONDecodeError as exc:
                yield f"line {n}", None, None, f"not JSON ({exc.msg})"
                continue
            except RecursionError:
                yield f"line {n}", None, None, "JSON nested too deeply to be a FHIR resource"
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
    codings = [c for c in _list(concept.get("coding"), "coding") if isinstance(c, dict) and c.get("code")]
    codings.sort(key=lambda c: c.get("system") not in SYSTEMS if isinstance(c.get("system"), str) else True)
    if not codings:
        return None
    c = codings[0]
    system = _text(c.get("system"), "coding.system")
    return Coded(_text(c["code"], "coding.code"), SYSTEMS.get(system, system),
                 _text(c.get("display") or concept.get("text"), "display"))


# Identifiers that name a person across organisations (v2-0203: social security, driver's licence, passport, tax,
# national and insurance numbers) are not matched on: they collide in real registries and in the shared Synthea set,
# where two patients carry the same driver's licence number. A hospital's own numbers (MR, PI …) and untyped ones are.
PERSON_TYPES = {"SS", "SSN", "DL", "DLN", "PPN", "PP", "TAX", "NI", "NH", "BC", "DR", "MC", "MA", "PEN", "SB", "HC"}


def matches_patient(type_code: str) -> bool:
    t = (type_code or "").strip().upper()
    return not (t in PERSON_TYPES or t.startswith("NN"))


def _identifiers(res: dict) -> tuple[tuple[str, str], ...]:
    out = []
    for i in _list(res.get("identifier"), "identifier"):
        if not isinstance(i, dict) or not i.get("value"):
            continue
        types = {str(c.get("code")) for c in _list(_obj(i.get("type"), "identifier.type").get("coding"), "type.coding")
                 if isinstance(c, dict)}
        system = _text(i.get("system"), "identifier.system")
        if system.startswith("urn:wardlens:"):   # WardLens's own namespaces are never taken from a source
            continue
        if res.get("resourceType") != "Patient" or all(matches_patient(t) for t in types):
            out.append((system, _text(i["value"], "identifier.value")))
    return tuple(out)


def _mrn(res: dict, identifiers: tuple[tuple[str, str], ...]) -> tuple[str, bool]:
    """(the number shown as the hospital number, whether it is a medical record number). Only an MR-typed number is
    matched against the store's hospital numbers; another is shown but matched through its identifier alone."""
    for i in _list(res.get("identifier"), "identifier"):
        codes = [c.get("code") for c in _list(_obj(i.get("type"), "identifier.type").get("coding"), "type.coding")
                 if isinstance(c, dict)] if isinstance(i, dict) else []
        if "MR" in codes and i.get("value"):
            return _text(i["value"], "identifier.value"), True
    return (identifiers[0][1] if identifiers else ""), False


def _sex(gender: Any) -> str:
    return {"female": "Female", "male": "Male"}.get(str(gender or "").lower(), "Unknown/Invalid")


def _name(res: dict) -> tuple[str, str]:
    names = [n for n in _list(res.get("name"), "name") if isinstance(n, dict)]
    names.sort(key=lambda n: n.get("use") != "official")
    if not names:
        return "", ""
    n = names[0]
    family = _text(n.get("family"), "name.family")
    given = " ".join(_text(g, "name.given") for g in _list(n.get("given"), "name.given"))
    if len(family) > 80 or len(given) > 80:
        raise Malformed("a name is longer than 80 characters")
    return family, given


def _number(value: Any) -> float | None:
    """A finite number, else None (NaN and infinities are no measurement)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


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


class Malformed(ValueError):
    """A resource whose fields are not of the types FHIR R4 gives them; rejected with the reason, never a crash."""


def _key(kind: Any, rid: Any, full_url: str | None, res: dict) -> str:
    """The resource's key: Type/id, else its full URL, else its content (the same resource in another file or under
    another file name is the same record, so importing it twice never duplicates it)."""
    if isinstance(rid, (str, int)) and str(rid):
        return f"{kind}/{rid}"
    if full_url:
        return full_url
    return f"{kind}/sha256-" + hashlib.sha256(json.dumps(res, sort_keys=True).encode("utf-8")).hexdigest()[:32]


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
            full_url = full_url if isinstance(full_url, str) else None
            key = _key(res.get("resourceType"), res.get("id"), full_url, res)
            if full_url:
                aliases[full_url] = key
            entries.append((where, key, res))
        for where, key, res in entries:
            pending.append((path.name, where, {**res, "_key": key}, aliases))
    # pass 1: patients and locations (what the others point to); pass 2: the rest
    for file, where, res, _aliases in pending:
        try:
            _first_pass(batch, file, res)
        except (Malformed, TypeError, AttributeError, ValueError, KeyError, IndexError) as exc:
            batch.problems.append(Problem(file, where, f"{res.get('resourceType')}: malformed ({_why(exc)})"))
    by_identifier = {(s, v): k for k, p in batch.patients.items() for s, v in p.identifiers}
    for file, where, res, aliases in pending:
        try:
            _second_pass(batch, file, where, res, aliases, by_identifier)
        except (Malformed, TypeError, AttributeError, ValueError, KeyError, IndexError) as exc:
            batch.problems.append(Problem(file, where, f"{res.get('resourceType')}: malformed ({_why(exc)})"))
    # encounters referenced by clinical items must exist (a dangling one is kept without its encounter), and be the
    # same patient's: an item whose subject is one patient and whose encounter another's is never filed on either
    kept = []
    for item in batch.clinical:
        if item.encounter is not None and item.encounter not in batch.encounters:
            item.encounter = None
        if item.encounter is not None and batch.encounters[item.encounter].patient != item.patient:
            batch.problems.append(Problem(item.file, item.key, f"{item.kind} whose subject ({item.patient}) is not the "
                                          f"patient of its encounter ({batch.encounters[item.encounter].patient})"))
            continue
        kept.append(item)
    batch.clinical = kept
    return batch


def _why(exc: BaseException) -> str:
    return str(exc)[:120] if isinstance(exc, Malformed) else f"{type(exc).__name__}: {str(exc)[:100]}"


def _text(value: Any, what: str) -> str:
    """A FHIR string (or a number where one was sent); anything else is malformed."""
    if value is None:
        return ""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise Malformed(f"{what} is a {type(value).__name__}, not a string")


def _obj(value: Any, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Malformed(f"{what} is a {type(value).__name__}, not an object")
    return value


def _list(value: Any, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Malformed(f"{what} is a {type(value).__name__}, not a list")
    return value


def _first_pass(batch: FhirBatch, file: str, res: dict) -> None:
    kind = res.get("resourceType")
    if kind == "Patient":
        family, given = _name(res)
        ids = _identifiers(res)
        mrn, is_mr = _mrn(res, ids)
        if len(mrn) > 64:
            raise Malformed("its hospital number is longer than 64 characters")
        batch.patients[res["_key"]] = FhirPatient(
            res["_key"], ids, mrn, family, given, _text(res.get("birthDate"), "birthDate"), _sex(res.get("gender")),
            bool(res.get("deceasedBoolean") or res.get("deceasedDateTime")), file, is_mr)
    elif kind == "Location":
        batch.locations[res["_key"]] = _text(res.get("name"), "Location.name")


def _second_pass(batch: FhirBatch, file: str, where: str, res: dict, aliases: dict[str, str],
                 by_identifier: dict[tuple[str, str], str]) -> None:
    kind = res.get("resourceType")
    if kind in ("Patient", "Location"):
        return
    if kind not in KEPT:
        batch.skipped[str(kind) if isinstance(kind, str) and kind else "no resourceType (not a FHIR resource)"] += 1
        return

    def ref(field_value: Any) -> str | None:
        r = _obj(field_value, "a reference").get("reference")
        if not r:
            return None
        r = _text(r, "reference")
        if r in aliases:
            return aliases[r]
        if "?identifier=" in r:   # conditional: Type?identifier=system|value
            system, _, value = r.split("?identifier=", 1)[1].partition("|")
            return by_identifier.get((system, value)) if r.startswith("Patient") else r
        return r
    patient = ref(res.get("subject") or res.get("patient"))
    if patient not in batch.patients:
        batch.problems.append(Problem(file, where, f"{kind} for a patient not in the files ({patient or 'none'})"))
        return
    if kind == "Encounter":
        cls = res.get("class")
        cls = cls[0] if isinstance(cls, list) and cls else cls   # R5 sends a list of CodeableConcepts
        cls = _obj(cls, "Encounter.class")
        code = cls.get("code") or next((c.get("code") for c in _list(cls.get("coding"), "class.coding")
                                        if isinstance(c, dict)), "")
        hosp = _obj(res.get("hospitalization"), "Encounter.hospitalization")
        places = tuple(batch.locations.get(ref(loc.get("location")) or "", "") or
                       _text(_obj(loc.get("location"), "location.location").get("display"), "location.display")
                       for loc in _list(res.get("location"), "Encounter.location") if isinstance(loc, dict))
        period = _obj(res.get("period"), "Encounter.period")
        types = _list(res.get("type"), "Encounter.type")
        batch.encounters[res["_key"]] = FhirEncounter(
            res["_key"], patient, _identifiers(res), CLASSES.get(_text(code, "class code"), "other"),
            _text(res.get("status"), "status"), _text(period.get("start"), "period.start"),
            _text(period.get("end"), "period.end"), _coded(hosp.get("admitSource")),
            _coded(hosp.get("dischargeDisposition")), tuple(p for p in places if p),
            (_coded(types[0] if types else None) or Coded("", "")).display, file)
        return
    concept = res.get("code") if kind != "MedicationRequest" else (
        res.get("medicationCodeableConcept") or {"text": _text(_obj(res.get("medicationReference"),
                                                                    "medicationReference").get("display"), "display")})
    coded = _coded(concept)
    if coded is None:
        batch.problems.append(Problem(file, where, f"{kind} without a code"))
        return
    encounter = ref(res.get("encounter") or res.get("context"))
    performed = _obj(res.get("performedPeriod"), "performedPeriod").get("start")
    item = FhirClinical(KINDS[kind], res["_key"], patient, encounter, coded,
                        time=_text(res.get("effectiveDateTime") or res.get("onsetDateTime") or res.get("authoredOn")
                                   or res.get("performedDateTime") or performed or res.get("recordedDate"), "time"),
                        status=_text(res.get("status"), "status"), file=file)
    if kind == "Condition" and coded.system != "ICD10":
        item.icd10 = next((_text(c["code"], "code") for c in _list(_obj(concept, "code").get("coding"), "coding")
                           if isinstance(c, dict) and SYSTEMS.get(c.get("system") if isinstance(c.get("system"), str)
                                                                  else "") == "ICD10" and c.get("code")), "")
    if kind == "Observation":
        q = _obj(res.get("valueQuantity"), "valueQuantity")
        item.value, item.unit = _number(q.get("value")), _text(q.get("unit") or q.get("code"), "unit")
        if q.get("value") is not None and item.value is None:
            raise Malformed(f"its value {str(q.get('value'))[:20]!r} is not a finite number")
        item.value_text = _text(res.get("valueString"), "valueString") or (
            _coded(res.get("valueCodeableConcept")) or Coded("", "")).display
        ranges = _list(res.get("referenceRange"), "referenceRange")
        rr = _obj(ranges[0] if ranges else None, "referenceRange")
        item.low = _number(_obj(rr.get("low"), "referenceRange.low").get("value"))
        item.high = _number(_obj(rr.get("high"), "referenceRange.high").get("value"))
        if item.value is None and not item.value_text:
            batch.skipped["Observation without a value (panel)"] += 1
            return
    batch.clinical.append(item)
