"""Attacks found by a review of the first version of the signatures (each failed against it)."""
from __future__ import annotations

import json
import shutil

import pytest

from services.core.errors import StoreDamaged, WrongPassword
from services.core.outputs import OutputRefused, check_output
from services.desk import open_desk
from services.inference.manifest import ModelIntegrityError, read_bundle
from services.inference.onnx_runtime import MODELS_DIR
from services.site.accounts import unlock
from services.site.rotation import rotate_data_key
from services.store.keyfile import key_file_path
from tests.conftest import DEMO_PASSWORDS
from tests.security.test_insider_integrity import admin_verify, file_in_hand


def test_an_account_switched_back_on_in_the_file_gets_no_key_at_a_rotation(demo_store, tmp_path):
    kept = tmp_path / "kept.keys"
    shutil.copy(key_file_path(demo_store), kept)
    admin = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    admin.site.accounts.deactivate_user("nurse.demo")
    admin.lock()
    conn, _ = file_in_hand(demo_store, "analyst.demo")
    conn.execute("UPDATE users SET active = 1 WHERE username = 'nurse.demo'")
    conn.close()
    keys = json.loads(key_file_path(demo_store).read_text())
    keys["entries"]["user:nurse.demo"] = json.loads(kept.read_text())["entries"]["user:nurse.demo"]
    key_file_path(demo_store).write_text(json.dumps(keys))
    admin = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        result = rotate_data_key(admin.session)
    finally:
        admin.lock()
    assert "nurse.demo" not in result.granted
    assert "user:nurse.demo" not in json.loads(key_file_path(demo_store).read_text()).get("grants", {})


def test_a_half_true_active_flag_does_not_log_a_deactivated_user_in(demo_store, tmp_path):
    kept = tmp_path / "kept.keys"
    shutil.copy(key_file_path(demo_store), kept)
    admin = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    admin.site.accounts.deactivate_user("nurse.demo")
    admin.lock()
    conn, _ = file_in_hand(demo_store, "analyst.demo")
    conn.execute("UPDATE users SET active = 0.5 WHERE username = 'nurse.demo'")
    conn.close()
    shutil.copy(kept, key_file_path(demo_store))
    with pytest.raises(WrongPassword):
        unlock(demo_store, "nurse.demo", DEMO_PASSWORDS["nurse.demo"])


def test_stripping_every_signature_is_detected(demo_store):
    admin_verify(demo_store)
    conn, _ = file_in_hand(demo_store, "analyst.demo")
    conn.execute("UPDATE audit_log SET signer = NULL, sig = NULL")
    conn.close()
    report, _ = admin_verify(demo_store)
    assert any("is not signed (added or stripped" in p for p in report.problems), report.problems


def test_a_truncation_during_a_colleagues_session_is_not_anchored_by_their_lock(demo_store):
    admin = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])   # her session is open
    conn, _ = file_in_hand(demo_store, "analyst.demo")
    conn.execute("DELETE FROM audit_log WHERE id > 3")
    conn.close()
    admin.lock()   # her lock must not seal the shortened log as what she saw
    _, warnings = admin_verify(demo_store)
    assert any("not the one seen before" in w for w in warnings), warnings


@pytest.mark.parametrize("plant", ["grant", "admin_pub_blob", "anchor_huge", "head_garbage", "role_sig_blob"])
def test_crafted_store_or_key_file_content_never_gives_a_traceback(demo_store, plant):
    if plant == "grant":
        keys = json.loads(key_file_path(demo_store).read_text())
        keys["grants"] = {"user:admin": {"epoch": 1, "eph": "a", "nonce": "b", "ct": "c", "sig": 1}}
        key_file_path(demo_store).write_text(json.dumps(keys))
    else:
        conn, _ = file_in_hand(demo_store, "analyst.demo")
        if plant == "admin_pub_blob":
            conn.execute("UPDATE meta SET value = X'00' WHERE key = 'admin_pub'")
        elif plant == "head_garbage":
            conn.execute("UPDATE meta SET value = 'x:y' WHERE key = 'audit_head'")
        elif plant == "role_sig_blob":
            conn.execute("UPDATE users SET role_sig = X'00' WHERE username = 'nurse.demo'")
        conn.close()
    if plant == "anchor_huge":
        from services.site import anchors
        admin_verify(demo_store)
        path = anchors._path(json.loads(key_file_path(demo_store).read_text())["store_id"])
        data = json.loads(path.read_text())
        data["admin"]["seq"] = 10**30
        path.write_text(json.dumps(data))
    report, _ = admin_verify(demo_store)   # opens, verifies and locks without raising
    assert isinstance(report.problems, list)


def test_a_signed_bundle_of_another_model_is_not_loaded_in_its_place(tmp_path):
    dst = tmp_path / "readmission"
    shutil.copytree(MODELS_DIR / "los", dst)   # release-signed, but the LOS model
    with pytest.raises(ModelIntegrityError, match="holds the signed 'los' model"):
        read_bundle(dst)


def test_a_link_beside_the_store_is_refused(demo_store, tmp_path):
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    (demo_store.parent / (demo_store.name + "-wal")).symlink_to(target)
    with pytest.raises(StoreDamaged, match="is a link"):
        unlock(demo_store, "admin", DEMO_PASSWORDS["admin"])


def test_a_csv_never_replaces_a_script_or_a_settings_file(tmp_path):
    for name in (".bashrc", "anchors.json", "run.sh"):
        (tmp_path / name).write_text("echo hi\n")
        with pytest.raises(OutputRefused):
            check_output(tmp_path / name, "csv")
