"""Confidentiality by role: an analyst holding the store, the key file and her own password cannot produce a single
name, hospital number or birth date; the care team reads them as before; rotation and role changes move the identity
key with the role (services.store.identity)."""
from __future__ import annotations

import re
from contextlib import contextmanager

import pytest

from models.domain import Role
from services.desk import open_desk
from services.records.patients import PatientService
from services.site.accounts import AccountService, unlock
from services.site.rotation import rotate_data_key
from services.store.database import connect_raw
from services.store.keyfile import KeyFile, key_file_path
from services.store.keyring import Keyring
from tests.conftest import DEMO_PASSWORDS, FAST


def _ring(store, user: str, password: str | None = None) -> Keyring:
    keys = KeyFile.load(key_file_path(store))
    return Keyring.from_payload(keys.unwrap(f"user:{user}", (password or DEMO_PASSWORDS[user]).encode()))


@contextmanager
def _in_the_file(store):
    """The analyst's raw connection to the decrypted store (her own password, the files, Python); committed after."""
    conn = connect_raw(store, _ring(store, "analyst.demo").data_key)
    try:
        yield conn
        conn.commit()
    finally:
        conn.close()


def _everything(store, data_key, blobs: list | None = None) -> str:
    """Every text and number of every table of the decrypted store, as the insider's script would dump it; the blobs
    go to `blobs` (their random bytes spell short words by chance, so they are searched for whole values only)."""
    conn = connect_raw(store, data_key)
    parts = []
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        for row in conn.execute(f"SELECT * FROM \"{table}\""):
            for v in row:
                if isinstance(v, (bytes, memoryview)):
                    if blobs is not None:
                        blobs.append(bytes(v))
                elif v is not None:
                    parts.append(str(v))
    conn.close()
    return "\n".join(parts)


def _who(store) -> list:
    s = unlock(store, "dr.demo", DEMO_PASSWORDS["dr.demo"])
    try:
        d = s.directory()
        return [d.get(pid) for pid in d.order()]
    finally:
        s.lock()


def test_an_analyst_with_the_files_and_her_password_reads_no_name_number_or_birth_date(demo_store):
    people = _who(demo_store)
    assert len(people) > 1000 and all(p.family and p.mrn and p.birth for p in people)
    ring = _ring(demo_store, "analyst.demo")
    assert ring.identity is None                        # her keyring never held the identity key
    blobs: list[bytes] = []
    dump = _everything(demo_store, ring.data_key, blobs)
    assert dump and len(blobs) > 1000                   # she does read the clinical data, and the sealed blobs
    words = set(re.findall(r"[A-Za-z0-9-]+", dump))
    names = {p.family for p in people} | {p.given for p in people}
    assert not names & words, sorted(names & words)[:10]
    # (numbers of six digits or more: shorter ones are also row ids and diagnosis codes, by coincidence)
    numbers = {p.mrn for p in people if len(p.mrn) >= 6}
    assert len(numbers) > 1000 and not numbers & words
    births = {p.birth for p in people if p.birth < "2000"}   # later ones can equal another stay's admission date
    assert len(births) > 1000 and not births & words
    # inside the blobs: no name of six letters or more, no number, no birth date, as bytes anywhere (shorter names
    # turn up by chance in 3 MB of random bytes)
    joined = b"\x00".join(blobs)
    for value in sorted({n for n in names if len(n) >= 6} | numbers | births):
        assert value.encode("utf-8") not in joined, value
    # and the care team still reads them, in name order
    assert [p.family for p in people] == sorted(p.family for p in people) or people[0].family <= people[-1].family


def test_the_analysts_session_finds_no_one_by_name_and_shows_pseudonyms(demo_store):
    people = _who(demo_store)
    s = unlock(demo_store, "analyst.demo", DEMO_PASSWORDS["analyst.demo"])
    try:
        svc = PatientService(s)
        assert svc.search(people[0].family) == []
        assert svc.search(people[0].mrn) == []
        row = svc.search("", 5)[0]
        assert row.mrn.startswith("P-") and row.name.startswith("Patient P-")
    finally:
        s.lock()


def test_a_sealed_blob_moved_to_another_patient_does_not_open_as_that_patient(demo_store):
    """Swapping two patients' sealed identities in the file (any role can write it) shows neither name on the wrong
    record: each blob is bound to its row."""
    with _in_the_file(demo_store) as conn:
        (a, ia), (b, ib) = conn.execute("SELECT id, ident FROM patients ORDER BY id LIMIT 2").fetchall()
        conn.execute("UPDATE patients SET ident = ? WHERE id = ?", (ib, a))
        conn.execute("UPDATE patients SET ident = ? WHERE id = ?", (ia, b))
    s = unlock(demo_store, "dr.demo", DEMO_PASSWORDS["dr.demo"])
    try:
        assert s.identity(a).mrn == "?" and s.identity(b).mrn == "?"
        assert s.patient_label(a).startswith("Patient ?")
    finally:
        s.lock()


def test_care_roles_hold_the_identity_key_and_a_new_analyst_does_not(demo_store):
    for user in ("admin", "dr.demo", "nurse.demo"):
        assert _ring(demo_store, user).identity is not None
    s = unlock(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        AccountService(s, FAST).add_user("an.analyst", "analyst-pass-1", Role.ANALYST)
        AccountService(s, FAST).add_user("a.nurse", "nurse-pass-12", Role.NURSE)
    finally:
        s.lock()
    assert _ring(demo_store, "an.analyst", "analyst-pass-1").identity is None
    assert _ring(demo_store, "a.nurse", "nurse-pass-12").identity is not None


def test_promotion_grants_the_key_and_demotion_takes_it_from_the_keyring(demo_store):
    s = unlock(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        AccountService(s, FAST).set_role("analyst.demo", Role.CLINICIAN)
    finally:
        s.lock()
    s = unlock(demo_store, "analyst.demo", DEMO_PASSWORDS["analyst.demo"])
    try:
        assert s.sees_names and not s.warnings
        assert PatientService(s).search("", 1)[0].name[:8] != "Patient "
    finally:
        s.lock()
    assert _ring(demo_store, "analyst.demo").identity is not None
    s = unlock(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        AccountService(s, FAST).set_role("analyst.demo", Role.ANALYST)
    finally:
        s.lock()
    unlock(demo_store, "analyst.demo", DEMO_PASSWORDS["analyst.demo"]).lock()
    assert _ring(demo_store, "analyst.demo").identity is None


def test_rotation_gives_a_new_identity_key_to_the_care_team_only(demo_store):
    old = _ring(demo_store, "dr.demo").identity
    before = _who(demo_store)
    s = unlock(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        rotate_data_key(s)
        assert PatientService(s).search(before[0].family, 5)   # this session reads under the new key at once
    finally:
        s.lock()
    assert _who(demo_store) == before                  # everyone re-sealed, nothing lost
    assert _ring(demo_store, "dr.demo").identity not in (None, old)
    assert _ring(demo_store, "analyst.demo").identity is None
    keys = KeyFile.load(key_file_path(demo_store))
    assert "user:analyst.demo" not in keys.data.get("identity_grants", {})


def test_a_removed_sealed_marker_does_not_make_the_next_care_login_write_names_in_clear(demo_store):
    with _in_the_file(demo_store) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'identity'")
    desk = open_desk(demo_store, "dr.demo", DEMO_PASSWORDS["dr.demo"])
    try:
        assert any("altered outside WardLens" in w for w in desk.warnings)
        pid = desk.records.patients.add_patient({"mrn": "X-77", "given_name": "Zelda", "family_name": "Quixote",
                                                 "birth_date": "1950-01-02", "sex": "Female", "race": "Other"})
        assert desk.session.patient_label(pid) == "Quixote, Zelda"
    finally:
        desk.lock()
    assert "Quixote" not in _everything(demo_store, _ring(demo_store, "analyst.demo").data_key)


@pytest.mark.parametrize("user", ["nurse.demo"])
def test_a_care_account_without_the_key_sees_pseudonyms_and_is_told_why(demo_store, user):
    keys = KeyFile.load(key_file_path(demo_store))
    entry = f"user:{user}"
    payload, kek = keys.open(entry, DEMO_PASSWORDS[user].encode())
    ring = Keyring.from_payload(payload)
    ring.drop_identity()
    keys.seal(entry, kek, ring.payload())
    keys.save()
    s = unlock(demo_store, user, DEMO_PASSWORDS[user])
    try:
        assert not s.sees_names
        assert any("identity key your account has not been given" in w for w in s.warnings)
        assert PatientService(s).search("", 1)[0].name.startswith("Patient P-")
    finally:
        s.lock()


def test_verify_names_moved_identities_and_names_written_in_clear(demo_store):
    with _in_the_file(demo_store) as conn:
        (a, ia), (b, ib) = conn.execute("SELECT id, ident FROM patients ORDER BY id LIMIT 2").fetchall()
        conn.execute("UPDATE patients SET ident = ? WHERE id = ?", (ib, a))
        conn.execute("UPDATE patients SET family_name = 'Planted' WHERE id = ?", (b + 5,))
    desk = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        problems = desk.site.verify().problems
    finally:
        desk.lock()
    assert any("do not open" in p and str(a) in p for p in problems), problems
    assert any("in clear" in p for p in problems), problems


def test_the_directory_snapshot_reads_back_the_same_and_a_tampered_one_is_rebuilt(demo_store):
    from services.store.identity import Directory
    first = _who(demo_store)                      # builds the directory and leaves its sealed snapshot
    s = unlock(demo_store, "dr.demo", DEMO_PASSWORDS["dr.demo"])
    try:
        conn = s.db.conn
        assert conn.execute("SELECT count(*) FROM identity_cache").fetchone()[0] == 1
        d = Directory(s.codec)
        assert d._load_snapshot(conn, __import__("services.store.identity", fromlist=["x"]).generation(conn))
        assert [d.get(p) for p in d.order()] == first
        assert d.name_prefix(first[0].search[:3]) and d.number_prefix(first[0].mrn) >= {d.order()[0]}
    finally:
        s.lock()
    with _in_the_file(demo_store) as conn:
        blob = bytearray(conn.execute("SELECT blob FROM identity_cache").fetchone()[0])
        blob[40] ^= 1
        conn.execute("UPDATE identity_cache SET blob = ?", (bytes(blob),))
    assert _who(demo_store) == first              # the altered snapshot does not open: rebuilt from the records


def test_rotation_removes_the_snapshot_sealed_under_the_old_key(demo_store):
    _who(demo_store)
    s = unlock(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        rotate_data_key(s)
        assert s.db.conn.execute("SELECT count(*) FROM identity_cache").fetchone()[0] == 0
    finally:
        s.lock()


def test_swapped_number_indexes_show_neither_patient_and_rotation_refuses_to_bury_them(demo_store):
    """The store matches patients on the blind index of their number: two rows' indexes swapped in the file would
    attach imports and look-ups to the wrong patient. Each record's number must be its own blob's: both show as
    unreadable, verify names them, and a rotation stops instead of re-sealing the damage under a new key."""
    from services.core.errors import WardLensError
    with _in_the_file(demo_store) as conn:
        (a, ma), (b, mb) = conn.execute("SELECT id, mrn FROM patients ORDER BY id LIMIT 2").fetchall()
        conn.execute("UPDATE patients SET mrn = 'tmp' WHERE id = ?", (a,))
        conn.execute("UPDATE patients SET mrn = ? WHERE id = ?", (ma, b))
        conn.execute("UPDATE patients SET mrn = ? WHERE id = ?", (mb, a))
    s = unlock(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        assert s.identity_exact(a).mrn == "?" and s.identity_exact(b).mrn == "?"
        assert s.identity(a).mrn == "?"
        with pytest.raises(WardLensError, match="do not open"):
            rotate_data_key(s)
    finally:
        s.lock()


def test_an_administrator_login_never_re_seals_sealed_rows(demo_store):
    """Whatever the marker and signed state say, sealed rows in the data mean the store is sealed: sealing again would
    overwrite every sealed identity with its blind index (the reviewer's attack: marker removed, an older signed state
    put back). The sealing step refuses and changes nothing."""
    from services.site import keyrings
    from services.store import identity
    with _in_the_file(demo_store) as conn:
        conn.execute("DELETE FROM meta WHERE key = 'identity'")
    before = _everything(demo_store, _ring(demo_store, "analyst.demo").data_key)
    s = unlock(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        assert identity.sealed_rows(s.db.conn)
        admin_ring = s.on_lock.ring
        warned = keyrings.seal_identities(s.db, KeyFile.load(key_file_path(demo_store)), "user:admin", admin_ring,
                                          s.db.trust)
        assert warned and "Nothing was re-sealed" in warned[0]
        rows = s.db.conn.execute("SELECT count(*) FROM patients WHERE ident IS NOT NULL").fetchone()[0]
        assert rows > 1000 and s.identity_exact(1).mrn != "?"
    finally:
        s.lock()
    assert before
