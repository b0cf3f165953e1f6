"""People from the command line and the unlock screen: accounts with one-time passwords, roles (signed), resets, and
the JSON that scripts read (`stats --json`, `census --json`)."""
from __future__ import annotations

import json
import re

import pytest

from models.domain import Role
from services.core.errors import LoginThrottled, PasswordChangeRequired, ValidationError, WrongPassword
from services.desk import open_desk
from services.site.accounts import unlock
from tests.conftest import DEMO_PASSWORDS
from tests.security.conftest import as_user, cli

ADMIN = as_user("admin", DEMO_PASSWORDS["admin"])


def _one_time(stdout: str) -> str:
    return re.search(r"One-time password for \S+: (\S+)", stdout).group(1)


def test_a_new_account_must_choose_its_own_password_at_first_login(demo_store):
    r = cli("users", "add", "--db", str(demo_store), "nurse2", "--role", "nurse", "--display-name", "Nurse Two", env=ADMIN)
    assert r.returncode == 0, r.stderr
    otp = _one_time(r.stdout)
    r = cli("census", "--db", str(demo_store), "--json", env=as_user("nurse2", otp))
    assert r.returncode == 1 and "choose a new password" in r.stderr and "users passwd" in r.stderr
    r = cli("users", "passwd", "--db", str(demo_store), env={**as_user("nurse2", otp), "WARDLENS_NEW_PASSWORD": "short"})
    assert r.returncode == 1 and "at least 8" in r.stderr
    r = cli("users", "passwd", "--db", str(demo_store),
            env={**as_user("nurse2", otp), "WARDLENS_NEW_PASSWORD": "nurse2-own-password"})
    assert r.returncode == 0, r.stderr
    with pytest.raises(WrongPassword):
        unlock(demo_store, "nurse2", otp)   # the one-time password is used up
    s = unlock(demo_store, "nurse2", "nurse2-own-password")
    assert s.user.role is Role.NURSE
    s.lock()


def test_roles_change_signed_and_an_administrator_is_made_with_a_new_keyring(demo_store):
    admin = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        accounts = admin.site.accounts
        accounts.set_role("nurse.demo", Role.CLINICIAN)
        with pytest.raises(ValidationError, match="one-time password"):
            accounts.set_role("dr.demo", Role.ADMIN)
        accounts.set_role("dr.demo", Role.ADMIN, "dr-one-time-pw")
        with pytest.raises(ValidationError, match="cannot be demoted"):
            accounts.set_role("dr.demo", Role.NURSE)
        assert admin.site.verify().ok
    finally:
        admin.lock()
    assert unlock(demo_store, "nurse.demo", DEMO_PASSWORDS["nurse.demo"]).user.role is Role.CLINICIAN
    new_admin = open_desk(demo_store, "dr.demo", "dr-one-time-pw", new_password="dr-admin-password")
    try:   # the new administrator holds the administrator key: her own account changes are signed
        new_admin.site.accounts.add_user("locum", "locum-password", Role.NURSE)
        assert new_admin.site.verify().ok
    finally:
        new_admin.lock()
    unlock(demo_store, "locum", "locum-password").lock()


def test_a_reset_keeps_the_old_audit_rows_verifying_and_the_old_keyring_useless(demo_store, tmp_path):
    import shutil
    from services.store.keyfile import key_file_path
    nurse = open_desk(demo_store, "nurse.demo", DEMO_PASSWORDS["nurse.demo"])
    nurse.records.patients.search("a")   # rows signed with her current key
    nurse.lock()
    shutil.copy(key_file_path(demo_store), tmp_path / "old.keys")
    admin = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        admin.site.accounts.reset_password("nurse.demo", "nurse-one-time")
        report = admin.site.verify()
        assert report.ok, report.problems   # her earlier rows verify with her retired key
    finally:
        admin.lock()
    with pytest.raises(WrongPassword):
        unlock(demo_store, "nurse.demo", DEMO_PASSWORDS["nurse.demo"])
    with pytest.raises(PasswordChangeRequired):
        unlock(demo_store, "nurse.demo", "nurse-one-time")
    unlock(demo_store, "nurse.demo", "nurse-one-time", new_password="nurse-new-password").lock()


def test_deactivate_reactivate_and_unlock_a_locked_out_account(demo_store):
    for _ in range(3):
        with pytest.raises(WrongPassword):
            unlock(demo_store, "dr.demo", "guess")
    with pytest.raises(LoginThrottled):
        unlock(demo_store, "dr.demo", DEMO_PASSWORDS["dr.demo"])   # locked out for now, even with the right one
    r = cli("users", "list", "--db", str(demo_store), "--json", env=ADMIN)
    people = {p["username"]: p for p in json.loads(r.stdout)}
    assert people["dr.demo"]["failed_logins"] == 3 and all(p["signed"] for p in people.values())
    assert cli("users", "unlock", "--db", str(demo_store), "dr.demo", env=ADMIN).returncode == 0
    unlock(demo_store, "dr.demo", DEMO_PASSWORDS["dr.demo"]).lock()   # no wait left
    assert cli("users", "deactivate", "--db", str(demo_store), "dr.demo", env=ADMIN).returncode == 0
    with pytest.raises(WrongPassword):
        unlock(demo_store, "dr.demo", DEMO_PASSWORDS["dr.demo"])
    r = cli("users", "reactivate", "--db", str(demo_store), "dr.demo", env=ADMIN)
    assert r.returncode == 0, r.stderr
    unlock(demo_store, "dr.demo", _one_time(r.stdout), new_password="dr-demo-back-again").lock()
    r = cli("users", "add", "--db", str(demo_store), "x2", "--role", "nurse",
            env=as_user("nurse.demo", DEMO_PASSWORDS["nurse.demo"]))
    assert r.returncode == 1 and "may not manage users" in r.stderr


def test_stats_json_is_the_documented_object(demo_store):
    r = cli("stats", "--db", str(demo_store), "--json", env=as_user("analyst.demo", DEMO_PASSWORDS["analyst.demo"]))
    assert r.returncode == 0, r.stderr
    stats = json.loads(r.stdout)
    assert list(stats) == ["patients", "encounters", "encounters_by_class", "diagnoses", "medications", "labs",
                           "images", "users"]
    assert set(stats["encounters_by_class"]) == {"inpatient", "emergency", "ambulatory", "other"}
    assert sum(stats["encounters_by_class"].values()) == stats["encounters"] > stats["patients"] > 0
    assert stats["users"] == 4


def test_census_json_names_patients_for_the_care_team_and_pseudonyms_for_analysts(demo_store):
    care = json.loads(cli("census", "--db", str(demo_store), "--json",
                          env=as_user("nurse.demo", DEMO_PASSWORDS["nurse.demo"])).stdout)
    assert care and {"patient_number", "name", "ward", "bed", "admitted", "expected_discharge"} <= set(care[0])
    assert all("," in p["name"] for p in care)                 # Family, Given
    r = cli("census", "--db", str(demo_store), "--json", "--ward", care[0]["ward"],
            env=as_user("analyst.demo", DEMO_PASSWORDS["analyst.demo"]))
    analyst = json.loads(r.stdout)
    assert analyst and {p["ward"] for p in analyst} == {care[0]["ward"]}
    numbers = {p["patient_number"] for p in care}
    assert all(p["patient_number"] not in numbers and p["name"].startswith("Patient P-") for p in analyst)


def test_the_unlock_screen_asks_for_a_new_password_after_a_one_time_one(qtbot, demo_store, owner):
    from ui.unlock_view import UnlockView
    from viewmodels.background import BackgroundRunner
    from viewmodels.session_vm import SessionViewModel
    admin = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    admin.site.accounts.reset_password("nurse.demo", "nurse-one-time")
    admin.lock()
    vm = SessionViewModel(demo_store, BackgroundRunner(owner), build_demo_if_missing=False, parent=owner)
    view = UnlockView(vm)
    qtbot.addWidget(view)
    view.show()
    assert not view.new_password.isVisible()
    view.user.setText("nurse.demo")
    view.password.setText("nurse-one-time")
    with qtbot.waitSignal(vm.passwordChangeRequiredChanged, timeout=20_000):
        view.unlock_button.click()
    assert view.new_password.isVisible() and view.repeat.isVisible() and "Change password" in view.unlock_button.text()
    assert view.password.text() == "nurse-one-time"   # kept: only the new password is to be typed
    view.new_password.setText("nurse-chosen-pw")
    view.repeat.setText("nurse-chosen-px")
    view.unlock_button.click()
    assert "same new password twice" in view.error.text()
    view.new_password.setText("nurse-chosen-pw")
    view.repeat.setText("nurse-chosen-pw")
    with qtbot.waitSignal(vm.sessionChanged, timeout=20_000) as opened:
        view.unlock_button.click()
    assert opened.args[0].user.username == "nurse.demo"
    vm.lock()
    unlock(demo_store, "nurse.demo", "nurse-chosen-pw").lock()


def test_a_new_recovery_key_from_the_command_line_is_printed_once_and_the_old_one_stops(empty_store):
    from services.site.accounts import unlock_with_recovery
    r = cli("users", "recovery-key", "--db", str(empty_store.path), env=as_user("admin", "admin-password"))
    assert r.returncode == 0, r.stderr
    new_key = re.search(r"\n\s+(\S+)\n", r.stdout).group(1)
    with pytest.raises(WrongPassword):
        unlock_with_recovery(empty_store.path, empty_store.recovery_key)
    unlock_with_recovery(empty_store.path, new_key).lock()
    r = cli("users", "recovery-key", "--db", str(empty_store.path), env=as_user("admin", "wrong"))
    assert r.returncode == 1


def test_a_reset_while_the_user_is_logged_in_elsewhere_survives_their_lock(demo_store):
    """Her open session must not write its stale keyring back over the entry the reset made."""
    nurse = unlock(demo_store, "nurse.demo", DEMO_PASSWORDS["nurse.demo"])
    admin = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        admin.site.accounts.reset_password("nurse.demo", "nurse-one-time")
        with pytest.raises(ValidationError, match="your own"):
            admin.site.accounts.reset_password("admin", "admin-one-time")
        assert admin.site.accounts.set_role("dr.demo", Role.CLINICIAN) is False   # no change, nothing signed
    finally:
        admin.lock()
    nurse.lock()
    unlock(demo_store, "nurse.demo", "nurse-one-time", new_password="nurse-after-reset").lock()


def test_no_grant_survives_a_deactivation_or_a_reset(demo_store):
    import json as _json
    from services.site.rotation import rotate_data_key
    from services.store.keyfile import key_file_path
    admin = open_desk(demo_store, "admin", DEMO_PASSWORDS["admin"])
    try:
        rotate_data_key(admin.session)   # grants for everyone, not yet taken
        admin.site.accounts.deactivate_user("nurse.demo")
        admin.site.accounts.reset_password("analyst.demo", "analyst-one-time")
    finally:
        admin.lock()
    grants = _json.loads(key_file_path(demo_store).read_text()).get("grants", {})
    assert "user:nurse.demo" not in grants and "user:analyst.demo" not in grants and "user:dr.demo" in grants
