"""Forward-only migrations, tested from every earlier version with data in place."""
from __future__ import annotations

import pytest

from services.store.database import Database
from services.core.errors import StoreDamaged
from services.store.keyfile import new_data_key
from services.store.migrations import LATEST, MIGRATIONS, current_version, migrate

NOW = "2026-01-01 00:00:00"


def _seed(c, version: int) -> None:
    c.execute("INSERT INTO patients (id, mrn, given_name, family_name, sex, race, created_at, updated_at) "
              "VALUES (1, 'M1', 'Ann', 'Lee', 'Female', '?', ?, ?)", (NOW, NOW))
    c.execute("INSERT INTO encounters (id, patient_id, encounter_nbr, status, admission_type_id, admission_source_id, "
              "created_at, updated_at) VALUES (1, 1, 100, 'discharged', 1, 7, ?, ?)", (NOW, NOW))
    c.execute("INSERT INTO diagnoses (encounter_id, position, code, system) VALUES (1, 1, '428', 'ICD9')")


@pytest.mark.parametrize("start", [m.version for m in MIGRATIONS])
def test_every_earlier_version_upgrades_with_data_kept(tmp_path, start):
    db = Database(tmp_path / "s.db", new_data_key())
    assert migrate(db.conn, target=start) == list(range(1, start + 1))
    _seed(db.conn, start)
    applied = migrate(db.conn)
    assert applied == list(range(start + 1, LATEST + 1))
    assert current_version(db.conn) == LATEST
    c = db.conn
    assert c.execute("SELECT mrn, family_name FROM patients").fetchall() == [("M1", "Lee")]
    assert c.execute("SELECT code FROM diagnoses").fetchall() == [("428",)]
    assert c.execute("SELECT code, patient_id FROM patient_codes").fetchall() == [("428", 1)]  # v6 back-fill
    if start < 2:  # v2 back-fills the folded search name of existing patients
        assert c.execute("SELECT search_name FROM patients").fetchone()[0] == "lee ann"
    assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert migrate(db.conn) == []  # idempotent at the latest version
    db.close()


def test_newer_store_is_refused(tmp_path):
    db = Database(tmp_path / "s.db", new_data_key())
    migrate(db.conn)
    db.conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    with pytest.raises(StoreDamaged, match="newer"):
        migrate(db.conn)
    db.close()


def test_failed_migration_leaves_version_unchanged(tmp_path, monkeypatch):
    from services.store import migrations
    db = Database(tmp_path / "s.db", new_data_key())
    migrate(db.conn, target=1)
    broken = migrations.Migration(2, "broken", "CREATE TABLE x (a);\nSELECT * FROM no_such_table;")
    monkeypatch.setattr(migrations, "MIGRATIONS", (migrations.MIGRATIONS[0], broken))
    with pytest.raises(Exception):
        migrations.migrate(db.conn, target=2)
    assert current_version(db.conn) == 1
    assert db.conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'x'").fetchone()[0] == 0
    db.close()


def test_patient_summary_columns_follow_every_write(tmp_path):
    db = Database(tmp_path / "s.db", new_data_key())
    migrate(db.conn)
    c = db.conn
    c.execute("INSERT INTO patients (id, mrn, sex, race, created_at, updated_at) VALUES (1, 'M1', 'Male', '?', ?, ?)", (NOW, NOW))
    ins = ("INSERT INTO encounters (id, patient_id, encounter_nbr, status, admit_time, admission_type_id, "
           "admission_source_id, created_at, updated_at) VALUES (?, 1, ?, ?, ?, 1, 7, ?, ?)")
    c.execute(ins, (1, 10, "discharged", "2026-01-01 10:00", NOW, NOW))
    c.execute(ins, (2, 11, "discharged", "2025-01-01 10:00", NOW, NOW))   # older: not the latest
    assert c.execute("SELECT latest_encounter_id, encounter_count FROM patients").fetchone() == (1, 2)
    c.execute(ins, (3, 9, "inpatient", "2024-05-01 10:00", NOW, NOW))    # in hospital beats any date
    assert c.execute("SELECT latest_encounter_id, encounter_count FROM patients").fetchone() == (3, 3)
    c.execute("UPDATE encounters SET status = 'discharged' WHERE id = 3")
    assert c.execute("SELECT latest_encounter_id FROM patients").fetchone() == (1,)
    c.execute("DELETE FROM encounters WHERE id = 1")
    assert c.execute("SELECT latest_encounter_id, encounter_count FROM patients").fetchone() == (2, 2)
    db.close()


def test_patient_codes_follow_every_write(tmp_path):
    """The search table of (code, patient) pairs stays equal to what diagnoses and encounters say."""
    db = Database(tmp_path / "s.db", new_data_key())
    migrate(db.conn)
    c = db.conn
    truth = ("SELECT DISTINCT d.code, e.patient_id FROM diagnoses d JOIN encounters e ON e.id = d.encounter_id "
             "ORDER BY 1, 2")

    def codes():
        got = c.execute("SELECT code, patient_id FROM patient_codes ORDER BY 1, 2").fetchall()
        assert got == c.execute(truth).fetchall()
        return got

    for pid in (1, 2):
        c.execute("INSERT INTO patients (id, mrn, sex, race, created_at, updated_at) VALUES (?, ?, 'Male', '?', ?, ?)",
                  (pid, f"M{pid}", NOW, NOW))
    ins = ("INSERT INTO encounters (id, patient_id, encounter_nbr, status, admission_type_id, admission_source_id, "
           "created_at, updated_at) VALUES (?, ?, ?, 'discharged', 1, 7, ?, ?)")
    c.execute(ins, (1, 1, 10, NOW, NOW))
    c.execute(ins, (2, 1, 11, NOW, NOW))
    dx = "INSERT INTO diagnoses (encounter_id, position, code, system) VALUES (?, ?, ?, 'ICD9')"
    c.executemany(dx, [(1, 1, "428"), (1, 2, "250.01"), (2, 1, "428")])
    assert codes() == [("250.01", 1), ("428", 1)]
    c.execute("DELETE FROM diagnoses WHERE encounter_id = 1")  # an edit rewrites an encounter's codes
    assert codes() == [("428", 1)]  # still coded on encounter 2
    c.execute("UPDATE diagnoses SET code = '414' WHERE encounter_id = 2")
    assert codes() == [("414", 1)]
    c.execute("UPDATE encounters SET patient_id = 2 WHERE id = 2")  # an encounter filed under the wrong patient
    assert codes() == [("414", 2)]
    c.execute("UPDATE encounters SET patient_id = 2, status = 'discharged' WHERE id = 2")  # unchanged patient
    c.execute("DELETE FROM encounters WHERE id = 2")  # cascades to its diagnoses
    assert codes() == []
    c.executemany(dx, [(1, 1, "V58"), (1, 2, "V58")])  # the same code twice on one encounter: one pair
    assert codes() == [("V58", 1)]
    c.execute("DELETE FROM diagnoses WHERE encounter_id = 1 AND position = 2")
    assert codes() == [("V58", 1)]
    assert c.execute("PRAGMA foreign_key_check").fetchall() == []
    db.close()
