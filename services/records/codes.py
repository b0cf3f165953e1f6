"""Codes people can read: ICD-9-CM titles beside every diagnosis code, lab names and units in words, and the codes
whose titles match words typed in the search box.

Titles come from resources/icd9cm_titles.json.gz (built by `python -m training icd9-titles` from the ICD-9-CM
tabular list and the CMS v32 descriptions, public domain). The UCI table stores categories ("428"), subcategories
("250.6") and full codes ("250.83"), and drops leading zeros ("38" for 038); a code without a title of its own is
shown with the title of its subcategory or category, which is always true of it, only broader."""
from __future__ import annotations

import gzip
import json
import re
from bisect import bisect_left
from functools import lru_cache

from services.core.paths import RESOURCES

_ICD9 = re.compile(r"^(?:(E)(\d{3})|(V)(\d{2})|(\d{1,3}))(?:\.?(\d{0,2}))?$")
# UCI lab fields: what they are in words, their unit, and the values as people say them
LABS: dict[str, tuple[str, str, dict[str, str]]] = {
    "A1Cresult": ("HbA1c (band)", "%", {">8": "above 8", ">7": "7 to 8", "Norm": "normal (below 7)"}),
    "max_glu_serum": ("Highest serum glucose (band)", "mg/dL", {">300": "above 300", ">200": "200 to 300",
                                                                 "Norm": "normal (below 200)"}),
}
_WORD = re.compile(r"[a-z0-9]+")
MAX_TITLE_CODES = 400   # a query this broad ("disease") is not a diagnosis search


@lru_cache(maxsize=1)
def _titles() -> dict[str, str]:
    doc = json.loads(gzip.decompress((RESOURCES / "icd9cm_titles.json.gz").read_bytes()))
    return doc["titles"]


def icd9_key(code: str) -> str | None:
    """The code as the title table keys it (no dot, numeric head zero-padded to 3), or None if it is no ICD-9 code."""
    m = _ICD9.match((code or "").strip().upper())
    if m is None:
        return None
    e, e3, v, v2, num, tail = m.groups()
    head = f"E{e3}" if e else (f"V{v2}" if v else num.zfill(3))
    return head + (tail or "")


def diagnosis_title(code: str, system: str = "ICD9") -> str:
    """The code's title ("Heart failure" for 428), a broader one where the code has none itself, "" if unknown."""
    s = system.upper().replace("-", "")
    if s in ("ICD10", "ICD10CM"):
        return icd10_title(code)
    if s not in ("ICD9", "ICD9CM"):
        return ""
    key, titles = icd9_key(code), _titles()
    while key:
        if key in titles:
            return titles[key]
        if len(key) <= (4 if key.startswith("E") else 3):
            return ""
        key = key[:-1]
    return ""


@lru_cache(maxsize=8192)
def diagnosis_label(code: str, system: str = "ICD9") -> str:
    """"428 Heart failure" (the code as stored, then its title), or the code alone when it has no title."""
    title = diagnosis_title(code, system)
    return f"{code} {title}" if title else code


@lru_cache(maxsize=1)
def _word_index() -> tuple[list[str], list[frozenset[str]]]:
    """The title words in order, and for each the codes whose title has it: a typed prefix is a bisected range of
    the ~5,000 words, not a scan of the 16,000 titles."""
    index: dict[str, set[str]] = {}
    for k, t in _titles().items():
        for w in set(_WORD.findall(t.lower())):
            index.setdefault(w, set()).add(k)
    words = sorted(index)
    return words, [frozenset(index[w]) for w in words]


def _codes_with_word_prefix(prefix: str) -> set[str]:
    words, codes = _word_index()
    lo, hi = bisect_left(words, prefix), bisect_left(words, prefix + "\uffff")
    return set().union(*codes[lo:hi])


def looks_like_words(query: str) -> bool:
    """A query that could be a diagnosis title: letters, at least 3 of them, not a code."""
    q = query.strip()
    return len(re.sub(r"[^A-Za-z]", "", q)) >= 3 and icd9_key(q) is None


def codes_for_title(query: str) -> list[str]:
    """Every stored form of the ICD-9 codes whose title has a word starting with each word of `query` ("heart fail"
    finds 428 and its codes), for matching against the codes in the store; [] for a query too broad to be useful."""
    words = _WORD.findall(query.lower())
    if not words or not looks_like_words(query):
        return []
    found = None
    for q in words:
        hits = _codes_with_word_prefix(q)
        found = hits if found is None else found & hits
    keys = sorted(found or ())
    if len(keys) > MAX_TITLE_CODES:
        return []
    untitled = _untitled_below()
    forms: set[str] = set()
    for k in keys + [u for k in keys for u in untitled.get(k, ())]:
        head = 4 if k.startswith("E") else 3
        h, tail = k[:head], k[head:]
        forms.update((k, f"{h}.{tail}") if tail else (k,))
        short = h.lstrip("0") or "0"    # UCI drops leading zeros: 038 is "38", 055.2 is "55.2" (never "552")
        if k[0].isdigit() and short != h:
            forms.add(f"{short}.{tail}" if tail else short)
    return sorted(forms)


@lru_cache(maxsize=1)
def _untitled_below() -> dict[str, list[str]]:
    """titled code -> the codes under it that have no title of their own (428.2: its codes' titles share no words),
    which are shown with, and so found by, that code's title."""
    titles = _titles()
    prefixes = {k[:i] for k in titles for i in range(3, len(k))}
    out: dict[str, list[str]] = {}
    for p in sorted(prefixes - set(titles)):
        up = next((p[:i] for i in range(len(p) - 1, 2, -1) if p[:i] in titles), None)
        if up is not None:
            out.setdefault(up, []).append(p)
    return out


def lab_name(name: str) -> str:
    return LABS[name][0] if name in LABS else name


def lab_unit(name: str, unit: str | None) -> str:
    return unit or (LABS[name][1] if name in LABS else "")


def lab_value(name: str, value: str) -> str:
    return LABS[name][2].get(value, value) if name in LABS else value


# ---- ICD-10-CM: titles and the CMS GEM to ICD-9-CM (resources/icd10cm.json.gz, `python -m training icd10-tables`)
@lru_cache(maxsize=1)
def _icd10() -> dict[str, dict[str, str]]:
    return json.loads(gzip.decompress((RESOURCES / "icd10cm.json.gz").read_bytes()))


def icd10_key(code: str) -> str:
    return (code or "").strip().upper().replace(".", "")


def icd10_title(code: str) -> str:
    return _icd10()["titles"].get(icd10_key(code), "")


def icd9_from_icd10(code: str) -> str | None:
    """The ICD-9-CM code the CMS GEM gives for an ICD-10-CM code, written as the UCI table writes codes ("428.9",
    "V45.81", "E849.0"), or None where the GEM has no map (the models then treat the diagnosis as missing)."""
    raw = _icd10()["to_icd9"].get(icd10_key(code))
    if not raw:
        return None
    head = 4 if raw.startswith("E") else 3
    return raw if len(raw) <= head else f"{raw[:head]}.{raw[head:]}"


def model_code(code: str, system: str) -> str | None:
    """The ICD-9-CM form of a diagnosis for the models' diagnosis groups: ICD-9 as given, ICD-10-CM through the GEM,
    anything else (SNOMED CT without an ICD-10 code beside it) None."""
    s = (system or "").upper().replace("-", "")
    if s in ("ICD9", "ICD9CM"):
        return code
    if s in ("ICD10", "ICD10CM"):
        return icd9_from_icd10(code)
    return None
