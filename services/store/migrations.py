"""Versioned, forward-only schema migrations. PRAGMA user_version holds the store's version.

All the migrations an opening needs run in ONE transaction with the version bump, so a store is always at
exactly one version, and an upgrade that fails part-way leaves the store exactly as it was (SQLite's DDL is
transactional). Before upgrading an existing store, the caller takes a verified copy of it
(services.site.accounts). Never edit a released migration: add the next one.
"""
from __future__ import annotations

from dataclasses import dataclass

from services.core.errors import StoreDamaged

MEDS_CHECK = "status IN ('No','Steady','Up','Down')"

V1 = f"""
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE users (
    username TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('admin','clinician','nurse','analyst')),
    display_name TEXT NOT NULL DEFAULT '',
    active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);
CREATE TABLE wards (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    ward_type TEXT NOT NULL,
    capacity INTEGER NOT NULL CHECK (capacity >= 0)
);
CREATE TABLE beds (
    id INTEGER PRIMARY KEY,
    ward_id INTEGER NOT NULL REFERENCES wards(id),
    label TEXT NOT NULL,
    isolation INTEGER NOT NULL DEFAULT 0,
    sex_bay TEXT,
    UNIQUE (ward_id, label)
);
CREATE TABLE patients (
    id INTEGER PRIMARY KEY,
    mrn TEXT NOT NULL UNIQUE,
    given_name TEXT,
    family_name TEXT,
    birth_date TEXT,
    sex TEXT NOT NULL DEFAULT 'Unknown/Invalid',
    race TEXT NOT NULL DEFAULT '?',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
-- Every field of the UCI Diabetes 130 encounter table, plus dates, ward and bed; the Microsoft
-- length-of-stay table's extra fields (rcount, facility, secondary diagnoses) live here too.
CREATE TABLE encounters (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    encounter_nbr INTEGER NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('inpatient','discharged')),
    admit_time TEXT,
    discharge_time TEXT,
    admission_type_id INTEGER NOT NULL,
    admission_source_id INTEGER NOT NULL,
    discharge_disposition_id INTEGER,
    ward_id INTEGER REFERENCES wards(id),
    bed_id INTEGER REFERENCES beds(id),
    age_band TEXT NOT NULL DEFAULT '',
    weight TEXT NOT NULL DEFAULT '?',
    payer_code TEXT NOT NULL DEFAULT '?',
    medical_specialty TEXT NOT NULL DEFAULT '?',
    time_in_hospital INTEGER,
    num_lab_procedures INTEGER NOT NULL DEFAULT 0,
    num_procedures INTEGER NOT NULL DEFAULT 0,
    num_medications INTEGER NOT NULL DEFAULT 0,
    number_outpatient INTEGER NOT NULL DEFAULT 0,
    number_emergency INTEGER NOT NULL DEFAULT 0,
    number_inpatient INTEGER NOT NULL DEFAULT 0,
    number_diagnoses INTEGER NOT NULL DEFAULT 0,
    change_flag TEXT NOT NULL DEFAULT 'No',
    diabetes_med TEXT NOT NULL DEFAULT 'No',
    readmitted TEXT NOT NULL DEFAULT '',
    rcount INTEGER,
    secondary_dx_non_icd9 INTEGER,
    facility TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE diagnoses (
    id INTEGER PRIMARY KEY,
    encounter_id INTEGER NOT NULL REFERENCES encounters(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    code TEXT NOT NULL,
    system TEXT NOT NULL CHECK (system IN ('ICD9','ICD10')),
    UNIQUE (encounter_id, position)
);
CREATE TABLE medications (
    encounter_id INTEGER NOT NULL REFERENCES encounters(id) ON DELETE CASCADE,
    drug TEXT NOT NULL,
    status TEXT NOT NULL CHECK ({MEDS_CHECK}),
    PRIMARY KEY (encounter_id, drug)
);
CREATE TABLE lab_results (
    id INTEGER PRIMARY KEY,
    encounter_id INTEGER NOT NULL REFERENCES encounters(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value_text TEXT,
    value_num REAL,
    unit TEXT NOT NULL DEFAULT '',
    taken_at TEXT
);
CREATE TABLE comorbidities (
    encounter_id INTEGER NOT NULL REFERENCES encounters(id) ON DELETE CASCADE,
    flag TEXT NOT NULL,
    PRIMARY KEY (encounter_id, flag)
);
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    username TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL DEFAULT '',
    entity_id TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
CREATE INDEX encounters_patient ON encounters(patient_id);
CREATE INDEX lab_results_encounter ON lab_results(encounter_id);
"""

# v2: search at 100,000 encounters: a folded name key and the indexes the patient list uses.
V2 = """
ALTER TABLE patients ADD COLUMN search_name TEXT NOT NULL DEFAULT '';
UPDATE patients SET search_name = lower(coalesce(family_name,'') || ' ' || coalesce(given_name,''));
CREATE INDEX patients_search_name ON patients(search_name);
CREATE INDEX encounters_patient_admit ON encounters(patient_id, admit_time);
CREATE INDEX encounters_ward_status ON encounters(ward_id, status);
CREATE INDEX diagnoses_code ON diagnoses(code);
"""

# v3: per-site settings (idle lock, thresholds, staffing ratios) stored inside the encrypted store.
V3 = """
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL, updated_by TEXT NOT NULL);
"""

# v4: the patient list at 100,000 encounters. Each patient carries its latest encounter and encounter
# count, kept right by triggers whatever code writes encounters, so the list needs no per-row subqueries.
_REFRESH = """UPDATE patients SET
  encounter_count = (SELECT count(*) FROM encounters WHERE patient_id = {p}),
  latest_encounter_id = (SELECT id FROM encounters WHERE patient_id = {p}
                         ORDER BY status = 'inpatient' DESC, coalesce(admit_time, '') DESC, encounter_nbr DESC LIMIT 1)
  WHERE id = {p};"""
# Inserts (bulk import) take the cheap path: count + 1 and a row-value comparison with the current latest.
_ON_INSERT = """UPDATE patients SET encounter_count = encounter_count + 1,
  latest_encounter_id = CASE WHEN latest_encounter_id IS NULL
      OR (NEW.status = 'inpatient', coalesce(NEW.admit_time, ''), NEW.encounter_nbr)
         > (SELECT status = 'inpatient', coalesce(admit_time, ''), encounter_nbr FROM encounters WHERE id = patients.latest_encounter_id)
    THEN NEW.id ELSE latest_encounter_id END
  WHERE id = NEW.patient_id;"""
V4 = f"""
ALTER TABLE patients ADD COLUMN latest_encounter_id INTEGER;
ALTER TABLE patients ADD COLUMN encounter_count INTEGER NOT NULL DEFAULT 0;
CREATE TRIGGER encounters_summary_insert AFTER INSERT ON encounters BEGIN {_ON_INSERT} END;
CREATE TRIGGER encounters_summary_update AFTER UPDATE OF patient_id, status, admit_time, encounter_nbr ON encounters BEGIN {_REFRESH.format(p="NEW.patient_id")} {_REFRESH.format(p="OLD.patient_id")} END;
CREATE TRIGGER encounters_summary_delete AFTER DELETE ON encounters BEGIN {_REFRESH.format(p="OLD.patient_id")} END;
{_REFRESH.format(p="patients.id").replace(" WHERE id = patients.id;", ";")}
"""

# v5: what the clinical features need: X-ray studies (image bytes live inside the encrypted store, never
# as loose files), recommended interventions, alerts, waiting admissions, and locally trained models.
V5 = """
CREATE TABLE xray_studies (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    encounter_id INTEGER REFERENCES encounters(id),
    taken_at TEXT,
    source_name TEXT NOT NULL DEFAULT '',
    format TEXT NOT NULL CHECK (format IN ('png','jpeg','dicom')),
    image BLOB NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    results TEXT,
    model_version TEXT,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX xray_studies_patient ON xray_studies(patient_id);
CREATE TABLE interventions (
    id INTEGER PRIMARY KEY,
    encounter_id INTEGER NOT NULL REFERENCES encounters(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL CHECK (status IN ('recommended','done','declined')) DEFAULT 'recommended',
    created_at TEXT NOT NULL,
    done_at TEXT,
    done_by TEXT,
    note TEXT NOT NULL DEFAULT '',
    UNIQUE (encounter_id, kind)
);
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL,
    acknowledged_at TEXT,
    acknowledged_by TEXT
);
CREATE INDEX alerts_open ON alerts(acknowledged_at);
CREATE TABLE waiting_admissions (
    id INTEGER PRIMARY KEY,
    patient_id INTEGER NOT NULL REFERENCES patients(id),
    requested_at TEXT NOT NULL,
    ward_type TEXT NOT NULL,
    needs_isolation INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('waiting','assigned','cancelled')) DEFAULT 'waiting',
    assigned_bed_id INTEGER REFERENCES beds(id),
    note TEXT NOT NULL DEFAULT ''
);
CREATE TABLE model_versions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    onnx BLOB NOT NULL,
    sidecars TEXT NOT NULL DEFAULT '{}',
    card TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('candidate','active','retired')),
    parent_version TEXT,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    UNIQUE (name, version)
);
"""

# v6: diagnosis-code search without a lookup per diagnosis row. patient_codes holds each (code, patient)
# pair once, kept by triggers: inserts (bulk import) take the cheap path, every other change recomputes
# the one patient concerned. (search_name, mrn) is the list's order, so a name-ordered walk needs no sort.
_CODES_REFRESH = """DELETE FROM patient_codes WHERE patient_id = {p};
  INSERT INTO patient_codes (code, patient_id) SELECT d.code, e.patient_id FROM encounters e
    JOIN diagnoses d ON d.encounter_id = e.id WHERE e.patient_id = {p} AND true ON CONFLICT DO NOTHING;"""
_ENC_OF = "(SELECT patient_id FROM encounters WHERE id = {e})"
V6 = f"""
CREATE TABLE patient_codes (
    code TEXT NOT NULL,
    patient_id INTEGER NOT NULL REFERENCES patients(id) ON DELETE CASCADE,
    PRIMARY KEY (code, patient_id)
) WITHOUT ROWID;
CREATE INDEX patient_codes_patient ON patient_codes(patient_id);
INSERT INTO patient_codes (code, patient_id) SELECT d.code, e.patient_id FROM diagnoses d JOIN encounters e ON e.id = d.encounter_id WHERE true ON CONFLICT DO NOTHING;
CREATE TRIGGER diagnoses_codes_insert AFTER INSERT ON diagnoses BEGIN INSERT INTO patient_codes (code, patient_id) SELECT NEW.code, patient_id FROM encounters WHERE id = NEW.encounter_id AND true ON CONFLICT DO NOTHING; END;
CREATE TRIGGER diagnoses_codes_delete AFTER DELETE ON diagnoses BEGIN {_CODES_REFRESH.format(p=_ENC_OF.format(e="OLD.encounter_id"))} END;
CREATE TRIGGER diagnoses_codes_update AFTER UPDATE OF code, encounter_id ON diagnoses BEGIN {_CODES_REFRESH.format(p=_ENC_OF.format(e="NEW.encounter_id"))} {_CODES_REFRESH.format(p=_ENC_OF.format(e="OLD.encounter_id"))} END;
CREATE TRIGGER encounters_codes_delete AFTER DELETE ON encounters BEGIN {_CODES_REFRESH.format(p="OLD.patient_id")} END;
CREATE TRIGGER encounters_codes_update AFTER UPDATE OF patient_id ON encounters WHEN OLD.patient_id IS NOT NEW.patient_id BEGIN {_CODES_REFRESH.format(p="NEW.patient_id")} {_CODES_REFRESH.format(p="OLD.patient_id")} END;
DROP INDEX patients_search_name;
CREATE INDEX patients_name_mrn ON patients(search_name, mrn);
"""


# v7: signatures (services.store.signing): each account's public signing key, the administrator's signature over
# its role and key, and signatures over settings, model versions and every audit row (who signed it, and how).
V7 = """
ALTER TABLE users ADD COLUMN sign_pub TEXT;
ALTER TABLE users ADD COLUMN box_pub TEXT;
ALTER TABLE users ADD COLUMN role_sig TEXT;
ALTER TABLE users ADD COLUMN key_sig TEXT;
ALTER TABLE settings ADD COLUMN sig TEXT;
ALTER TABLE model_versions ADD COLUMN sig TEXT;
ALTER TABLE audit_log ADD COLUMN signer TEXT;
ALTER TABLE audit_log ADD COLUMN sig TEXT;
ALTER TABLE users ADD COLUMN must_change INTEGER NOT NULL DEFAULT 0;
CREATE TABLE retired_keys (
    username TEXT NOT NULL,
    sign_pub TEXT NOT NULL,
    to_row INTEGER NOT NULL,
    sig TEXT NOT NULL,
    PRIMARY KEY (username, sign_pub)
);
"""

# v8: identifying fields under the identity key (services.store.identity). The sealed blob per patient; a generation
# counter that triggers bump on every change of a patient's identifying columns, so a session's in-memory directory
# knows when to reload, and a sealed snapshot of that directory for the next login; the (name, number) index goes:
# the order comes from the directory now.
_BUMP = "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'identity_gen';"
V8 = f"""
ALTER TABLE patients ADD COLUMN ident BLOB;
INSERT INTO meta(key, value) VALUES ('identity_gen', '0');
CREATE TRIGGER patients_identity_insert AFTER INSERT ON patients BEGIN {_BUMP} END;
CREATE TRIGGER patients_identity_update AFTER UPDATE OF mrn, ident, given_name, family_name, birth_date ON patients
BEGIN {_BUMP} END;
CREATE TRIGGER patients_identity_delete AFTER DELETE ON patients BEGIN {_BUMP} END;
DROP INDEX patients_name_mrn;
CREATE TABLE identity_cache (id INTEGER PRIMARY KEY CHECK (id = 1), gen INTEGER NOT NULL, blob BLOB NOT NULL);
"""

# v9: beds out of service (a reason, or NULL when in use) and a ward's capacity kept by triggers as its beds in
# service, so that every writer (demo, administration, a restore of an older layout) keeps the two in step.
_CAPACITY = ("UPDATE wards SET capacity = (SELECT count(*) FROM beds WHERE ward_id = {w} AND out_of_service IS NULL) "
             "WHERE id = {w};")
V9 = f"""
ALTER TABLE beds ADD COLUMN out_of_service TEXT;
CREATE TRIGGER beds_capacity_insert AFTER INSERT ON beds BEGIN {_CAPACITY.format(w="NEW.ward_id")} END;
CREATE TRIGGER beds_capacity_delete AFTER DELETE ON beds BEGIN {_CAPACITY.format(w="OLD.ward_id")} END;
CREATE TRIGGER beds_capacity_update AFTER UPDATE OF out_of_service, ward_id ON beds
BEGIN {_CAPACITY.format(w="NEW.ward_id")} {_CAPACITY.format(w="OLD.ward_id")} END;
UPDATE wards SET capacity = (SELECT count(*) FROM beds WHERE ward_id = wards.id AND out_of_service IS NULL);
"""


# v10: hospital records in (FHIR R4, HL7 v2 ADT): encounters of every class with the source's own status and a digest
# of what it last said (so importing the same file again changes nothing), identifiers with their system (blind
# indexes: a visit number or a second hospital number identifies as much as the mrn), diagnoses of any code system with
# their title, present-on-admission flag and a second coding (SNOMED CT with its ICD-10-CM), procedures, medication
# orders with their RxNorm codes, labs with LOINC code and reference range, and the ADT messages applied (their
# digest, so a message sent twice applies once).
# diagnoses is rebuilt (its CHECK allowed ICD-9 and ICD-10 only), with its index and triggers.
# Triggers that name diagnoses are dropped first and made again after: SQLite checks every trigger when a table is renamed.
_DIAG_TRIGGERS = [f"CREATE TRIGGER {t.split('CREATE TRIGGER ', 1)[1]}" for t in V6.split(" END;")
                  if "CREATE TRIGGER" in t and "diagnoses" in t.split("CREATE TRIGGER", 1)[1]]
_DIAG_TRIGGERS = [t.strip() + " END;" for t in _DIAG_TRIGGERS]
V10 = f"""
ALTER TABLE encounters ADD COLUMN class TEXT NOT NULL DEFAULT 'inpatient'
    CHECK (class IN ('inpatient','emergency','ambulatory','other'));
ALTER TABLE encounters ADD COLUMN source_status TEXT;
ALTER TABLE encounters ADD COLUMN source_digest TEXT;
ALTER TABLE patients ADD COLUMN deceased INTEGER NOT NULL DEFAULT 0;
ALTER TABLE patients ADD COLUMN source_digest TEXT;
CREATE TABLE identifiers (
    kind TEXT NOT NULL CHECK (kind IN ('patient','encounter')),
    system TEXT NOT NULL,
    value_key TEXT NOT NULL,
    ref INTEGER NOT NULL,
    PRIMARY KEY (kind, system, value_key)
) WITHOUT ROWID;
CREATE INDEX identifiers_ref ON identifiers(kind, ref);
CREATE TABLE diagnoses_v10 (
    id INTEGER PRIMARY KEY,
    encounter_id INTEGER NOT NULL REFERENCES encounters(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    code TEXT NOT NULL,
    system TEXT NOT NULL CHECK (length(system) BETWEEN 1 AND 200),
    title TEXT NOT NULL DEFAULT '',
    present_on_admission TEXT,
    also_code TEXT,
    also_system TEXT,
    UNIQUE (encounter_id, position)
);
DROP TRIGGER encounters_codes_delete;
DROP TRIGGER encounters_codes_update;
INSERT INTO diagnoses_v10 (id, encounter_id, position, code, system) SELECT id, encounter_id, position, code, system
    FROM diagnoses;
DROP TABLE diagnoses;
ALTER TABLE diagnoses_v10 RENAME TO diagnoses;
CREATE INDEX diagnoses_code ON diagnoses(code);
{chr(10).join(_DIAG_TRIGGERS)}
CREATE TABLE procedures (
    id INTEGER PRIMARY KEY,
    encounter_id INTEGER NOT NULL REFERENCES encounters(id) ON DELETE CASCADE,
    code TEXT NOT NULL,
    system TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    performed_at TEXT
);
CREATE INDEX procedures_encounter ON procedures(encounter_id);
CREATE TABLE medication_orders (
    id INTEGER PRIMARY KEY,
    encounter_id INTEGER NOT NULL REFERENCES encounters(id) ON DELETE CASCADE,
    code TEXT NOT NULL,
    system TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT '',
    authored_at TEXT
);
CREATE INDEX medication_orders_encounter ON medication_orders(encounter_id);
ALTER TABLE lab_results ADD COLUMN code TEXT;
ALTER TABLE lab_results ADD COLUMN system TEXT;
ALTER TABLE lab_results ADD COLUMN ref_low REAL;
ALTER TABLE lab_results ADD COLUMN ref_high REAL;
CREATE TABLE adt_messages (
    digest TEXT PRIMARY KEY,
    trigger_event TEXT NOT NULL,
    event_time TEXT NOT NULL,
    encounter_id INTEGER,
    outcome TEXT NOT NULL,
    applied_at TEXT NOT NULL
) WITHOUT ROWID;
"""

# Several desks (or a desk and the command line) may edit the same record: a save names the version it read and is
# refused when someone saved in between (services.records.patients; the server store's twin is server_schema).
V11 = """
ALTER TABLE patients ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE patients ADD COLUMN updated_by TEXT NOT NULL DEFAULT '';
ALTER TABLE encounters ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE encounters ADD COLUMN updated_by TEXT NOT NULL DEFAULT '';
"""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema: patients, encounters, diagnoses, medications, labs, wards, users, audit", V1),
    Migration(2, "patient search: folded names and search indexes", V2),
    Migration(3, "per-site settings table", V3),
    Migration(4, "patient list summary columns kept by triggers", V4),
    Migration(5, "x-ray studies, interventions, alerts, waiting admissions, local model versions", V5),
    Migration(6, "patient-level diagnosis codes and a (name, number) index for fast search", V6),
    Migration(7, "signatures over roles, account keys, settings, model versions and audit rows", V7),
    Migration(8, "identifying fields sealed under the identity key; a generation counter for the directory", V8),
    Migration(9, "beds out of service; a ward's capacity kept as its beds in service", V9),
    Migration(10, "records from FHIR and HL7 v2: encounter classes, identifiers, any code system, procedures, "
                  "medication orders, lab codes and ranges, ADT messages applied", V10),
    Migration(11, "a version and the last saver on patients and stays: a save over someone else's is refused", V11),
)
LATEST = MIGRATIONS[-1].version


def current_version(conn) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


class MigrationFailed(StoreDamaged):
    """An upgrade failed; the store was rolled back to the version it had."""


def pending(conn, target: int | None = None) -> list[int]:
    """The migrations opening this store would apply (refuses a store newer than this WardLens)."""
    target = LATEST if target is None else target
    have = current_version(conn)
    if have > LATEST:
        raise StoreDamaged(f"This store is at schema version {have}, newer than this WardLens ({LATEST}). "
                           "Update the application.")
    return [m.version for m in MIGRATIONS if have < m.version <= target]


def migrate(conn, target: int | None = None) -> list[int]:
    """Apply every migration above the store's version up to `target` (default: latest), all or none."""
    todo = pending(conn, target)
    if not todo:
        return []
    have = current_version(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        for m in MIGRATIONS:
            if m.version in todo:
                for stmt in _statements(m.sql):
                    conn.execute(stmt)
                conn.execute(f"PRAGMA user_version = {int(m.version)}")
    except BaseException as exc:
        conn.execute("ROLLBACK")
        if isinstance(exc, Exception):
            raise MigrationFailed(f"The store could not be upgraded from schema version {have} to {todo[-1]} "
                                  f"({exc.__class__.__name__}: {exc}); it was left exactly as it was.") from exc
        raise
    conn.execute("COMMIT")
    return todo


def _statements(script: str) -> list[str]:
    """Split a script into statements; triggers contain ';' inside BEGIN ... END."""
    out, buf = [], []
    for line in script.strip().splitlines():
        if line.strip().startswith("--") or not line.strip():
            continue
        buf.append(line)
        joined = "\n".join(buf)
        if joined.rstrip().endswith(";") and (" BEGIN " not in joined or joined.rstrip().endswith("END;")):
            out.append(joined)
            buf = []
    if buf:
        out.append("\n".join(buf))
    return out
