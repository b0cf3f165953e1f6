"""Upgrade safety: a store made by the previous release opens in this one with every record, the audit chain
and the model registry intact; an upgrade takes a verified copy first; a failed upgrade changes nothing.

The fixture tests/fixtures/release-0.1.0/ was made by release 0.1.0's own code (commit 2e3ee07) with
tests/fixtures/make_release_store.py; its manifest.json says what that code stored."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from services.desk import open_desk
from services.site.accounts import unlock
from services.store import migrations
from services.store.keyfile import key_file_path

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "release-0.1.0"
MANIFEST = json.loads((FIXTURE / "manifest.json").read_text(encoding="utf-8"))
ADMIN = next(u for u in MANIFEST["users"] if "admin" in u)


def release_store(tmp_path: Path) -> Path:
    dst = tmp_path / "site" / "store.db"
    dst.parent.mkdir(parents=True)
    shutil.copyfile(FIXTURE / "store.db", dst)
    shutil.copyfile(FIXTURE / "store.db.keys", key_file_path(dst))
    return dst


def digest(conn, table: str, columns: list[str], where: str = "") -> tuple[int, str]:
    """The manifest's digest: the sorted rows of `columns` (blobs as hex), as the release computed it."""
    rows = sorted(repr(tuple(bytes(v).hex() if isinstance(v, (bytes, memoryview)) else v for v in row))
                  for row in conn.execute(f"SELECT {', '.join(columns)} FROM {table} {where}"))
    return len(rows), hashlib.sha256("\n".join(rows).encode("utf-8")).hexdigest()


def _patients_digest(conn, codec, columns: list[str]) -> tuple[int, str]:
    """The patients' digest with names, number and birth date as the session reads them: the first administrator
    login seals them under the identity key (v8), so their stored form changes and their content must not."""
    rows = []
    has_ident = any(r[1] == "ident" for r in conn.execute("PRAGMA table_info(patients)"))   # not before v8
    for row in conn.execute(f"SELECT {', '.join(columns)}, {'ident' if has_ident else 'NULL'} FROM patients"):
        r = dict(zip(columns, row))
        who = codec.read_patient(r["id"], r["mrn"], r["given_name"], r["family_name"], r["birth_date"], row[-1])
        r.update(mrn=who.mrn, given_name=who.given, family_name=who.family, birth_date=who.birth,
                 search_name=who.search)
        rows.append(repr(tuple(r[c] for c in columns)))
    rows.sort()
    return len(rows), hashlib.sha256("\n".join(rows).encode("utf-8")).hexdigest()


def assert_release_content(conn, codec=None) -> None:
    from services.store.identity import IdentityCodec
    codec = codec or IdentityCodec(None, False)
    for table, want in MANIFEST["tables"].items():
        if "kept" in want:   # a login appends to the audit chain and moves its head: the rest stays as it was
            kept = want["kept"]
            # the administrator key and where signing began are added when the first administrator logs in (v7), the
            # identity key's marker and the directory's generation counter with v8
            where = kept["where"] + (" AND key NOT IN ('admin_pub', 'signed_from', 'signed_state', 'identity', "
                                     "'identity_gen')" if table == "meta" else "")
            assert digest(conn, table, want["columns"], where) == (kept["rows"], kept["sha256"]), table
        elif table == "patients":
            assert _patients_digest(conn, codec, want["columns"]) == (want["rows"], want["sha256"]), table
        else:
            assert digest(conn, table, want["columns"]) == (want["rows"], want["sha256"]), table


def test_a_store_made_by_the_previous_release_opens_with_everything_kept(tmp_path):
    store = release_store(tmp_path)
    desk = open_desk(store, ADMIN, MANIFEST["users"][ADMIN])
    try:
        assert_release_content(desk.session.db.conn, desk.session.codec)
        report = desk.site.verify()
        assert report.ok, report.problems
        assert report.audit_rows > MANIFEST["audit_rows"]   # the release's chain, continued by this login
        stored = MANIFEST["models"][0]
        assert desk.active_model.origin == "local" and desk.active_model.version == stored["version"]
        entry = next(e for e in desk.models.registry.entries() if e.version_id == stored["id"])
        assert entry.sha256 == stored["sha256"] and entry.sha256_ok and entry.in_use
        assert desk.session.idle_seconds == 60 * float(MANIFEST["settings"]["idle_lock_minutes"])
        patients = desk.records.patients.search("", limit=5000)
        assert len(patients) == MANIFEST["tables"]["patients"]["rows"]
        assert desk.reports.patient_pdf(patients[0].patient_id).startswith(b"%PDF")
        copies = list(store.parent.glob("*.before-v*.db"))   # the release predates signatures (schema 7): one copy
        assert len(copies) == 1 and copies[0].name.startswith(f"store.db.before-v{migrations.LATEST}-")
    finally:
        desk.lock()
    for user, password in MANIFEST["users"].items():   # every account of the release still logs in
        unlock(store, user, password).lock()


def _with_v7(monkeypatch, sql: str) -> int:
    nxt = migrations.LATEST + 1
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, migrations.Migration(nxt, "test", sql)))
    monkeypatch.setattr(migrations, "LATEST", nxt)
    return nxt


def test_an_upgrade_takes_a_verified_copy_first(tmp_path, monkeypatch):
    store = release_store(tmp_path)
    version = _with_v7(monkeypatch, "CREATE TABLE upgrade_probe (x INTEGER);\nALTER TABLE patients ADD COLUMN probe TEXT;")
    s = unlock(store, ADMIN, MANIFEST["users"][ADMIN])
    try:
        assert migrations.current_version(s.db.conn) == version
        assert s.db.conn.execute("SELECT count(*) FROM upgrade_probe").fetchone()[0] == 0
        assert_release_content(s.db.conn, s.codec)   # the release's columns and rows, untouched by the upgrade
    finally:
        s.lock()
    copies = list(store.parent.glob(f"store.db.before-v{version}-*.db"))
    assert len(copies) == 1 and key_file_path(copies[0]).exists()
    monkeypatch.undo()   # the copy is the release's store, with the release's key file: read as it is, unopened
    conn = _raw(copies[0])
    try:
        assert migrations.current_version(conn) == MANIFEST["schema_version"]
        assert_release_content(conn)
    finally:
        conn.close()


def _raw(store):
    """A store read without logging in (so without upgrading it): the key straight from its key file."""
    from services.store.database import connect_raw
    from services.store.keyfile import KeyFile
    key = KeyFile.load(key_file_path(store)).unwrap(f"user:{ADMIN}", MANIFEST["users"][ADMIN].encode())
    assert len(key) == 32   # the release's key file: the bare data key, no keyring yet
    return connect_raw(store, key)


def test_a_failed_upgrade_leaves_the_store_as_it_was_and_says_so(tmp_path, monkeypatch):
    store = release_store(tmp_path)
    before = store.read_bytes()
    _with_v7(monkeypatch, "CREATE TABLE upgrade_probe (x INTEGER);\nALTER TABLE no_such_table ADD COLUMN y TEXT;")
    with pytest.raises(migrations.MigrationFailed) as failed:
        open_desk(store, ADMIN, MANIFEST["users"][ADMIN])
    message = str(failed.value)
    assert "left exactly as it was" in message and "before-v" in message
    monkeypatch.undo()
    conn = _raw(store)   # neither the schema nor the key file was touched
    try:
        assert migrations.current_version(conn) == MANIFEST["schema_version"]
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'upgrade_probe'").fetchone()[0] == 0
        assert_release_content(conn)
    finally:
        conn.close()
    assert len(before) > 0


def test_a_backup_made_by_the_previous_release_is_offered_restored_and_upgraded(tmp_path, monkeypatch):
    from services.site.backup import check_backup, restore
    backup = release_store(tmp_path)   # the release's store file and key file, as its backup command wrote them
    version = _with_v7(monkeypatch, "CREATE TABLE upgrade_probe (x INTEGER);")
    assert check_backup(backup, ADMIN, MANIFEST["users"][ADMIN]) is not None   # verifies at its own version
    target = tmp_path / "restored" / "site.db"
    target.parent.mkdir()
    restore(backup, target, ADMIN, MANIFEST["users"][ADMIN])
    s = unlock(target, ADMIN, MANIFEST["users"][ADMIN])
    try:
        assert migrations.current_version(s.db.conn) == version
        assert_release_content(s.db.conn, s.codec)
    finally:
        s.lock()



def test_keys_registered_after_the_upgrade_are_trusted_once_an_administrator_countersigns(tmp_path):
    store = release_store(tmp_path)
    unlock(store, ADMIN, MANIFEST["users"][ADMIN]).lock()              # the upgrade: the store is signed
    other = next(u for u in MANIFEST["users"] if u != ADMIN)
    unlock(store, other, MANIFEST["users"][other]).lock()              # registers a key no administrator signed yet
    desk = open_desk(store, ADMIN, MANIFEST["users"][ADMIN])
    try:
        report = desk.site.verify()
        assert any("cannot be told from forgeries" in p and other in p for p in report.problems), report.problems
        assert len(desk.site.accounts.countersign(other)) == 24        # its fingerprint, read to the user
        report = desk.site.verify()
        assert report.ok, report.problems
    finally:
        desk.lock()
