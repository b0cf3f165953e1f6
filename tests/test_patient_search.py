"""Patient search: the two strategies for a page (walk the list order, or collect and sort) and the
unpaged search return exactly what a brute-force filter over every patient returns, in list order."""
from __future__ import annotations

import pytest

from services.records import patients as patients_mod
from services.site.accounts import unlock
from services.records.patients import PatientService

QUERIES = ["250", "428", "4", "V5", "996.0", "E8", "smi", "a", "ca", "1000", "10", "zz", "Med", "medicine b", "Card", "ICU",
           "sur", "adams, d", "Adams,Donna", "donna adams", "smith j", "heart failure", "heart fail", "pneumonia",
           "diabetes renal", "septicemia", "Patel", "Hall", "Ali", "hea"]


def _name_forms(q: str) -> list[str]:
    words = q.lower().replace(",", " ").split()
    return [" ".join(words)] + ([f"{words[1]} {words[0]}"] if len(words) == 2 else [])


def _title_matcher(q: str):
    """A code matches typed words when the title shown beside it has a word starting with each of them; a query that
    matches more than MAX_TITLE_CODES titles (or is no word) searches no titles."""
    import re
    from services.records import codes as codes_mod
    words = re.findall(r"[a-z0-9]+", q.lower())

    def matches(title: str) -> bool:
        tw = re.findall(r"[a-z0-9]+", title.lower())
        return bool(title) and all(any(w.startswith(x) for w in tw) for x in words)
    n = sum(matches(t) for t in codes_mod._titles().values())
    if not words or not codes_mod.looks_like_words(q) or n > codes_mod.MAX_TITLE_CODES:
        return lambda code: False
    return lambda code: matches(codes_mod.diagnosis_title(code))


def _reference(s, q: str, names: bool) -> list[int]:
    """Every patient tested in Python against every alternative the search documents (a de-identified
    role finds patients by diagnosis code and ward only, in row order; names are sealed in the store, so the
    reference reads them through the session's identity key, one patient at a time)."""
    c = s.db.conn
    wards = {wid for wid, name in c.execute("SELECT id, name FROM wards") if name.lower().startswith(q.lower())}
    codes: dict[int, set[str]] = {}
    for code, pid in c.execute("SELECT d.code, e.patient_id FROM diagnoses d JOIN encounters e ON e.id = d.encounter_id"):
        codes.setdefault(pid, set()).add(code)
    people = []
    for pid, mrn, given, family, birth, ident, ward in c.execute(
            "SELECT p.id, p.mrn, p.given_name, p.family_name, p.birth_date, p.ident, e.ward_id FROM patients p "
            "LEFT JOIN encounters e ON e.id = p.latest_encounter_id"):
        who = s.codec.read_patient(pid, mrn, given, family, birth, ident) if names else None
        people.append((who.search if who else "", who.mrn if who else "", pid, ward))
    people.sort(key=lambda t: (t[0], t[1]) if names else t[2])
    hits = []
    named = names and any(mrn.startswith(q) or any(n.startswith(f) for f in _name_forms(q)) for n, mrn, _, _ in people)
    by_title = (lambda code: False) if named else _title_matcher(q)   # a name is never mixed with diagnoses
    for name, mrn, pid, ward in people:
        if ((names and mrn.startswith(q)) or any(code.startswith(q.upper()) or by_title(code) for code in codes.get(pid, ()))
                or (names and any(name.startswith(n) for n in _name_forms(q))) or ward in wards):
            hits.append(pid)
    return hits


@pytest.mark.parametrize("user,password,names", [("dr.demo", "wardlens-clinician", True),
                                                  ("analyst.demo", "wardlens-analyst", False)])
def test_every_strategy_returns_the_reference_in_list_order(demo_store, monkeypatch, user, password, names):
    s = unlock(demo_store, user, password)
    try:
        svc = PatientService(s)
        for q in QUERIES:
            want = _reference(s, q, names)
            assert [r.patient_id for r in svc.search(q)] == want, q  # unpaged
            for broad in (1, 10**9):  # force the walk, then force collect-and-sort
                monkeypatch.setattr(patients_mod, "BROAD", broad)
                for limit in (1, 7, 500):
                    assert [r.patient_id for r in svc.search(q, limit)] == want[:limit], (q, broad, limit)
        assert len(_reference(s, "250", names)) > 100  # the broad cases really are broad on the demo store
        if names:  # a name typed as the list shows it, or given name first, finds the patient
            for typed in ("Adams, Donna", "donna adams", "ADAMS donna"):
                found = svc.search(typed)
                assert found and all(r.name.startswith("Adams, Donna") for r in found), typed
    finally:
        s.lock()
