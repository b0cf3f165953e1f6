"""A hostile insider with nothing but their own password, the store, its key file and Python: every change they make
outside WardLens to roles, settings, model versions or the audit log is refused or detected, and `verify` names it."""
from __future__ import annotations

import shutil

import pytest

from models.domain import Role
from services.desk import open_desk
from services.site.accounts import RoleNotSigned, unlock
from services.store import audit, signing
from services.store.database import connect_raw
from services.store.keyfile import KeyFile, key_file_path
from services.store.keyring import Keyring
from tests.conftest import DEMO_PASSWORDS
from tests.security.conftest import as_user, cli


def file_in_hand(store, user: str):
    """What the insider has: a raw connection with the data key from her own key-file entry, and her keyring."""
    keys = KeyFile.load(key_file_path(store))
    ring = Keyring.from_payload(keys.unwrap(f"user:{user}", DEMO_PASSWORDS[user].encode()))
    conn = connect_raw(store, ring.data_key)
    conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    return conn, ring


def admin_verify(store):
    desk = open_desk(store, "admin", DEMO_PASSWORDS["admin"])
    try:
        return desk.site.verify(), desk.warnings
    finally:
        desk.lock()


def _rechain(conn, from_id: int, signer: str | None = None, key=None) -> None:
    """Recompute every hash from `from_id` on (and the head), re-signing with the insider's own key if given."""
    prev = conn.execute("SELECT hash FROM audit_log WHERE id = ?", (from_id - 1,)).fetchone()
    prev_hash = prev[0] if prev else audit.GENESIS
    store_id = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0]
    for id_, ts, user, action, entity, entity_id, detail in conn.execute(
            "SELECT id, ts, username, action, entity, entity_id, detail FROM audit_log WHERE id >= ? ORDER BY id",
            (from_id,)).fetchall():
        h = audit.row_hash(prev_hash, id_, ts, user, action, entity, entity_id, detail)
        sig = signing.sign(key, signing.AUDIT, store_id, h) if key else None
        conn.execute("UPDATE audit_log SET prev_hash = ?, hash = ?, signer = coalesce(?, signer), sig = coalesce(?, sig) "
                     "WHERE id = ?", (prev_hash, h, signer, sig, id_))
        prev_hash = h
    last = conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    conn.execute("UPDATE meta SET value = ? WHERE key = 'audit_head'", (f"{last[0]}:{last[1]}" if last else "0:",))


def test_an_analyst_who_makes_herself_admin_is_refused_at_login(demo_store):
    """Before: an analyst set her own role to admin in the file and logged in as one."""
    conn, _ = file_in_hand(demo_store, "analyst.demo")
    conn.execute("UPDATE users SET role = 'admin' WHERE username = 'analyst.demo'")
    conn.close()
    with pytest.raises(RoleNotSigned, match="not signed by an administrator"):
        unlock(demo_store, "analyst.demo", DEMO_PASSWORDS["analyst.demo"])
    r = cli("verify", "--db", str(demo_store), env=as_user("analyst.demo", DEMO_PASSWORDS["analyst.demo"]))
    assert r.returncode == 1 and "not signed by an administrator" in r.stderr and "Traceback" not in r.stderr
    report, _ = admin_verify(demo_store)
    assert any("'analyst.demo' (admin, active) is not signed" in p for p in report.problems), report.problems


def test_a_nurse_who_makes_herself_a_clinician_is_refused_and_others_are_not_affected(demo_store):
    desk = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    desk.site.accounts.add_user("locum", "locum-password", Role.NURSE)
    desk.lock()
    conn, _ = file_in_hand(demo_store, "nurse.demo")
    conn.execute("UPDATE users SET role = 'clinician' WHERE username = 'nurse.demo'")
    conn.close()
    with pytest.raises(RoleNotSigned):
        unlock(demo_store, "nurse.demo", DEMO_PASSWORDS["nurse.demo"])
    unlock(demo_store, "locum", "locum-password").lock()   # other accounts are untouched


def test_an_edited_audit_row_with_its_chain_recomputed_is_detected(demo_store):
    """Before: an analyst edited audit rows, recomputed the chain and its head, and verify printed 'intact'."""
    admin_verify(demo_store)  # some history: the admin's login, verify and lock
    conn, ring = file_in_hand(demo_store, "analyst.demo")
    target = conn.execute("SELECT id FROM audit_log WHERE username = 'admin' AND action = 'verify'").fetchone()[0]
    conn.execute("UPDATE audit_log SET detail = 'nothing to see' WHERE id = ?", (target,))
    _rechain(conn, target)
    conn.close()
    report, _ = admin_verify(demo_store)
    assert any(f"audit row {target}'s signature does not verify" in p for p in report.problems), report.problems


def test_re_signing_other_peoples_rows_with_her_own_key_is_detected(demo_store):
    admin_verify(demo_store)
    conn, ring = file_in_hand(demo_store, "analyst.demo")
    target = conn.execute("SELECT id FROM audit_log WHERE username = 'admin' AND action = 'verify'").fetchone()[0]
    conn.execute("UPDATE audit_log SET detail = 'nothing to see' WHERE id = ?", (target,))
    _rechain(conn, target, "analyst.demo", ring.user_sign)   # every later row re-signed, as herself
    conn.close()
    report, _ = admin_verify(demo_store)
    assert any(f"audit row {target} names 'admin' but was signed by 'analyst.demo'" in p for p in report.problems)


def test_a_forged_row_appended_is_detected(demo_store):
    conn, ring = file_in_hand(demo_store, "analyst.demo")
    last_id, last_hash = conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    h = audit.row_hash(last_hash, last_id + 1, "2026-12-01T00:00:00", "dr.demo", "export", "encounters", "", "all")
    conn.execute("INSERT INTO audit_log (id, ts, username, action, entity, entity_id, detail, prev_hash, hash) "
                 "VALUES (?,?,?,?,?,?,?,?,?)", (last_id + 1, "2026-12-01T00:00:00", "dr.demo", "export", "encounters",
                                                "", "all", last_hash, h))
    conn.execute("UPDATE meta SET value = ? WHERE key = 'audit_head'", (f"{last_id + 1}:{h}",))
    conn.close()
    report, _ = admin_verify(demo_store)
    assert any(f"audit row {last_id + 1} is not signed" in p for p in report.problems), report.problems


@pytest.mark.parametrize("keep", [5, 0], ids=["truncated", "emptied"])
def test_a_truncated_or_emptied_log_is_detected_at_the_next_login(demo_store, keep):
    """Before: truncation with the head updated, and deleting everything, passed verify."""
    admin_verify(demo_store)   # the admin has seen the log up to here: her keyring and this desk remember it
    conn, _ = file_in_hand(demo_store, "analyst.demo")
    conn.execute("DELETE FROM audit_log WHERE id > ?", (keep,))
    _rechain(conn, keep + 1)
    conn.close()
    report, warnings = admin_verify(demo_store)
    assert any("not the one seen before" in w and "ends before row" in w for w in warnings), warnings
    assert any("ends before row" in p for p in report.problems), report.problems


def test_an_old_copy_put_back_with_its_own_key_file_is_detected_on_this_computer(demo_store, tmp_path):
    """Before: restoring an old backup by hand silently rewound history."""
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(demo_store, old / "s.db")
    shutil.copy(key_file_path(demo_store), old / "s.db.keys")
    for _ in range(2):
        admin_verify(demo_store)   # history the old copy lacks, seen at this desk
    shutil.copy(old / "s.db", demo_store)
    shutil.copy(old / "s.db.keys", key_file_path(demo_store))   # both files: the keyrings' anchors are rewound too
    report, warnings = admin_verify(demo_store)
    assert any("(on this computer)" in w for w in warnings), warnings
    assert any("(on this computer)" in p for p in report.problems), report.problems


def test_a_nurse_cannot_slip_in_an_active_model(demo_store):
    """Before: a nurse inserted an 'active' model version (her own sha256) and a clinician's risk fell to 0.003."""
    desk = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    bundled = desk.risk.model.get()
    desk.lock()
    from services.modelops import local_training as lt
    from services.modelops.registry import pack_sidecars, sha256_hex
    version, onnx, meta, trees, _ = lt._package(lt.recalibrate_onnx(bundled.model_bytes(), 0.01, -8.0), bundled.trees,
                                                0.01, -8.0, 0.2, [{"name": "low", "min": 0.0}, {"name": "high",
                                                                                                 "min": 0.2}],
                                                "readmission-quiet", "nurse")
    conn, _ = file_in_hand(demo_store, "nurse.demo")
    conn.execute("INSERT INTO model_versions (name, version, onnx, sidecars, card, sha256, status, created_at, "
                 "created_by) VALUES ('readmission', ?, ?, ?, '{}', ?, 'active', '2026-12-01', 'admin')",
                 (version, onnx, pack_sidecars(meta, trees), sha256_hex(onnx)))
    conn.close()
    clinician = open_desk(demo_store, "dr.demo", DEMO_PASSWORDS["dr.demo"])
    try:
        assert clinician.active_model.origin == "bundled"
        assert clinician.risk.model.get().version == bundled.version
        assert any("not signed by an administrator" in w for w in clinician.warnings)
    finally:
        clinician.lock()
    report, _ = admin_verify(demo_store)
    assert any("readmission-quiet" in p and "not signed" in p for p in report.problems), report.problems


def test_a_setting_changed_in_the_file_is_not_used(demo_store):
    conn, _ = file_in_hand(demo_store, "analyst.demo")
    conn.execute("INSERT INTO settings (key, value, updated_at, updated_by) VALUES ('alert_risk_threshold', '0.99', "
                 "'2026-12-01', 'admin') ON CONFLICT(key) DO UPDATE SET value = '0.99'")
    conn.execute("INSERT INTO settings (key, value, updated_at, updated_by) VALUES ('idle_lock_minutes', '0', "
                 "'2026-12-01', 'admin') ON CONFLICT(key) DO UPDATE SET value = '0'")
    conn.close()
    nurse = open_desk(demo_store, "nurse.demo", DEMO_PASSWORDS["nurse.demo"])
    try:
        assert nurse.site.settings.value("alert_risk_threshold") is None   # the default, not 0.99
        assert nurse.session.idle_seconds == 600                              # the idle lock still applies
    finally:
        nurse.lock()
    report, _ = admin_verify(demo_store)
    assert any("'alert_risk_threshold' is not signed" in p for p in report.problems), report.problems


def test_a_swapped_administrator_key_in_the_store_does_not_fool_existing_users(demo_store):
    """The insider makes her own 'administrator' key, puts it in the store and signs herself admin with it."""
    conn, _ = file_in_hand(demo_store, "analyst.demo")
    fake = signing.new_key()
    store_id = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0]
    conn.execute("UPDATE meta SET value = ? WHERE key = 'admin_pub'", (signing.b64(signing.public_raw(fake)),))
    conn.execute("UPDATE users SET role = 'admin', role_sig = ? WHERE username = 'analyst.demo'",
                 (signing.sign(fake, signing.USER_ROLE, store_id, "analyst.demo", "admin", 1),))
    conn.close()
    with pytest.raises(RoleNotSigned):
        unlock(demo_store, "analyst.demo", DEMO_PASSWORDS["analyst.demo"])   # her keyring trusts the real key
    report, warnings = admin_verify(demo_store)
    assert any("different administrator key" in w for w in warnings)
    assert any("'analyst.demo' (admin, active) is not signed" in p for p in report.problems)


def test_removing_the_administrator_key_from_the_store_does_not_turn_the_checks_off(demo_store):
    """The store 'looks unsigned' if its admin_pub row is deleted; every keyring that knows the key still checks."""
    conn, _ = file_in_hand(demo_store, "analyst.demo")
    conn.execute("DELETE FROM meta WHERE key = 'admin_pub'")
    conn.execute("UPDATE users SET role = 'admin' WHERE username = 'analyst.demo'")
    conn.close()
    with pytest.raises(RoleNotSigned):
        unlock(demo_store, "analyst.demo", DEMO_PASSWORDS["analyst.demo"])
    report, _ = admin_verify(demo_store)   # the administrator's login does not re-sign the store "as found"
    assert any("'analyst.demo' (admin, active) is not signed" in p for p in report.problems), report.problems


def test_a_key_written_into_the_file_for_another_user_does_not_make_forgeries_pass(demo_store):
    conn, ring = file_in_hand(demo_store, "analyst.demo")
    store_id = conn.execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0]
    conn.execute("UPDATE users SET sign_pub = ?, key_sig = NULL WHERE username = 'dr.demo'", (ring.user_pub,))
    last_id, last_hash = conn.execute("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    ts = "2026-12-01T00:00:00"
    h = audit.row_hash(last_hash, last_id + 1, ts, "dr.demo", "export", "encounters", "", "all")
    conn.execute("INSERT INTO audit_log (id, ts, username, action, entity, entity_id, detail, prev_hash, hash, signer, "
                 "sig) VALUES (?,?,?,?,?,?,?,?,?,?,?)", (last_id + 1, ts, "dr.demo", "export", "encounters", "", "all",
                                                         last_hash, h, "dr.demo",
                                                         signing.sign(ring.user_sign, signing.AUDIT, store_id, h)))
    conn.close()
    report, _ = admin_verify(demo_store)
    assert any("cannot be told from forgeries" in p and "'dr.demo'" in p for p in report.problems), report.problems
    with pytest.raises(RoleNotSigned):   # her account record is not the one an administrator last signed
        open_desk(demo_store, "dr.demo", DEMO_PASSWORDS["dr.demo"])


@pytest.fixture
def demoted(demo_store, tmp_path):
    """dr.demo was made a nurse by an administrator; she kept a copy of the store from before."""
    import shutil
    shutil.copy(demo_store, tmp_path / "before.db")
    admin = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    admin.site.accounts.set_role("dr.demo", Role.NURSE)
    admin.site.settings.set("alert_risk_threshold", "0.2")
    admin.lock()
    return tmp_path / "before.db"


def test_an_older_signed_role_put_back_is_refused(demo_store, demoted):
    """Replay: her clinician role row from before, with its then valid signature, put back into the live store."""
    old = connect_raw(demoted, file_in_hand(demo_store, "dr.demo")[1].data_key)
    role, sig = old.execute("SELECT role, role_sig FROM users WHERE username = 'dr.demo'").fetchone()
    old.close()
    conn, _ = file_in_hand(demo_store, "dr.demo")
    conn.execute("UPDATE users SET role = ?, role_sig = ? WHERE username = 'dr.demo'", (role, sig))
    conn.close()
    with pytest.raises(RoleNotSigned):
        unlock(demo_store, "dr.demo", DEMO_PASSWORDS["dr.demo"])
    report, warnings = admin_verify(demo_store)
    assert any("user:dr.demo" in p for p in report.problems), report.problems
    assert any("altered outside WardLens" in w for w in warnings)


def test_a_deleted_or_older_setting_is_not_used_silently(demo_store, demoted):
    conn, _ = file_in_hand(demo_store, "dr.demo")
    conn.execute("DELETE FROM settings WHERE key = 'alert_risk_threshold'")
    conn.close()
    report, _ = admin_verify(demo_store)
    assert any("setting:alert_risk_threshold" in p for p in report.problems), report.problems


def test_a_retired_model_put_back_active_with_its_old_signature_is_not_loaded(demo_store):
    from tests.conftest import make_active
    admin = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    bundled = admin.risk.model.get()
    from services.modelops import local_training as lt
    version, onnx, meta, trees, _ = lt._package(lt.recalibrate_onnx(bundled.model_bytes(), 1.0, 0.0), bundled.trees,
                                                1.0, 0.0, 0.2, [{"name": "low", "min": 0.0}, {"name": "high", "min": 0.2}],
                                                "readmission-old", "test")
    vid = admin.models.registry.add_candidate(version, onnx, meta, trees, {"name": "readmission"}, bundled.version,
                                              "model retrain", "test")
    make_active(admin, vid)
    active_sig = admin.session.db.conn.execute("SELECT sig FROM model_versions WHERE id = ?", (vid,)).fetchone()[0]
    admin.models.registry.rollback()   # retired, re-signed as retired
    admin.lock()
    conn, _ = file_in_hand(demo_store, "nurse.demo")
    conn.execute("UPDATE model_versions SET status = 'active', sig = ? WHERE id = ?", (active_sig, vid))
    conn.close()
    clinician = open_desk(demo_store, "dr.demo", DEMO_PASSWORDS["dr.demo"])
    try:
        assert clinician.active_model.origin == "bundled"
    finally:
        clinician.lock()


def test_a_store_rewound_past_its_last_backup_is_detected_even_with_a_fresh_desk(demo_store, tmp_path, monkeypatch):
    """Both files put back from an old copy, on a desk that never saw the store (no desk anchor): the backup made
    since carries a signed head that the rewound log lacks."""
    import shutil
    from services.site.backup import backup
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(demo_store, old / "s.db")
    shutil.copy(key_file_path(demo_store), old / "s.db.keys")
    admin = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    admin.records.patients.search("a")
    backup(admin.session, tmp_path / "nightly.db")
    admin.lock()
    shutil.copy(old / "s.db", demo_store)
    shutil.copy(old / "s.db.keys", key_file_path(demo_store))
    monkeypatch.setenv("WARDLENS_HOME", str(tmp_path / "another-desk"))
    report, warnings = admin_verify(demo_store)
    assert any("the backup nightly.db" in w for w in warnings), warnings
    assert any("the backup nightly.db" in p for p in report.problems)
