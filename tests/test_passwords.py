"""Password strength: the rule in the service (every way a password is set), the meter, and a user changing their
own password from the File menu's dialog, checked against the store with the old and the new password."""
from __future__ import annotations

import pytest

from models.domain import Role
from services.core.errors import ValidationError, WrongPassword
from services.site.accounts import unlock
from services.site.passwords import MIN_LENGTH, strength
from services.desk import open_desk
from tests.conftest import DEMO_PASSWORDS


@pytest.mark.parametrize("weak", ["password1", "qwertyuiop", "12345678", "nurse.demo2024", "wardlens1", "aaaaaaaaaa",
                                  "Smith1985!"])
def test_common_and_guessable_passwords_are_refused(weak):
    verdict = strength(weak, ("nurse.demo", "Jo Smith"))
    assert not verdict.acceptable and verdict.problem and verdict.score < 3


def test_short_passwords_are_refused_whatever_their_score():
    verdict = strength("x#9Lq!v", ())
    assert len("x#9Lq!v") < MIN_LENGTH and not verdict.acceptable and str(MIN_LENGTH) in verdict.problem


def test_uncommon_word_sequences_are_accepted():
    assert strength("tulip-ledger-basalt", ()).acceptable
    assert strength("tulip-ledger-basalt", ()).score >= 3


def test_the_service_refuses_a_weak_password_for_every_way_one_is_set(desks, demo_store):
    admin = desks("admin")
    with pytest.raises(ValidationError) as e:
        admin.site.accounts.add_user("nurse9", "password1", Role.NURSE)
    assert "password" in e.value.fields
    with pytest.raises(ValidationError):
        admin.site.accounts.change_password(DEMO_PASSWORDS["admin"], "qwertyuiop")
    with pytest.raises(ValidationError):   # a one-time password replaced at first login by a weak one
        admin.site.accounts.add_user("nurse9", "tulip-ledger-basalt", Role.NURSE, must_change=True)
        unlock(demo_store, "nurse9", "tulip-ledger-basalt", new_password="nurse9nurse9")
    with pytest.raises(ValidationError):   # nor by the same one
        unlock(demo_store, "nurse9", "tulip-ledger-basalt", new_password="tulip-ledger-basalt")
    unlock(demo_store, "admin", DEMO_PASSWORDS["admin"]).lock()   # the refusals changed nothing


def test_the_meter_notifies_only_when_the_verdict_changes(qtbot, owner):
    from viewmodels.password_strength import PasswordStrengthViewModel
    vm = PasswordStrengthViewModel(("nurse.demo",), owner)
    seen = []
    vm.strengthChanged.connect(seen.append)
    vm.set_password("")
    assert seen == []
    vm.set_password("password1")
    vm.set_password("password1")
    assert len(seen) == 1 and not seen[0].acceptable
    vm.set_password("tulip-ledger-basalt")
    assert seen[-1].acceptable and seen[-1].label in ("strong", "very strong")


def _dialog(qtbot, desk, owner):
    from ui.password_widgets import ChangePasswordDialog
    from viewmodels.background import BackgroundRunner
    from viewmodels.password_vm import ChangePasswordViewModel
    vm = ChangePasswordViewModel(desk, BackgroundRunner(owner), owner)
    dialog = ChangePasswordDialog(vm)
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog, vm


def test_a_nurse_changes_her_own_password_in_the_dialog(qtbot, desks, owner):
    dialog, vm = _dialog(qtbot, desks("nurse.demo"), owner)
    dialog.current.setText(DEMO_PASSWORDS["nurse.demo"])
    dialog.new.setText("password1")
    assert "Not accepted" in dialog.meter.text.text()
    dialog.repeat.setText("password1")
    dialog.buttons.accepted.emit()
    assert "New password" in vm.status and not vm.busy      # refused before any work
    dialog.new.setText("heron-quarry-velvet")
    assert "Strength: " in dialog.meter.text.text() and "Not accepted" not in dialog.meter.text.text()
    dialog.repeat.setText("heron-quarry-velvet")
    with qtbot.waitSignal(vm.changed, timeout=30_000):
        dialog.buttons.accepted.emit()
    assert not dialog.isVisible()
    with pytest.raises(WrongPassword):
        open_desk(desks.store, "nurse.demo", DEMO_PASSWORDS["nurse.demo"])
    s = open_desk(desks.store, "nurse.demo", "heron-quarry-velvet")
    try:
        assert s.user.role is Role.NURSE
    finally:
        s.lock()


def test_a_wrong_current_password_changes_nothing(qtbot, desks, demo_store, owner):
    dialog, vm = _dialog(qtbot, desks("dr.demo"), owner)
    dialog.current.setText("not-my-password")
    dialog.new.setText("heron-quarry-velvet")
    dialog.repeat.setText("heron-quarry-velvet")
    with qtbot.waitSignal(vm.busyChanged, timeout=30_000, check_params_cb=lambda busy: not busy):
        dialog.buttons.accepted.emit()
    assert "not right" in vm.status and dialog.isVisible() and dialog.current.text() == ""
    unlock(demo_store, "dr.demo", DEMO_PASSWORDS["dr.demo"]).lock()
    with pytest.raises(WrongPassword):
        unlock(demo_store, "dr.demo", "heron-quarry-velvet")


def test_long_passphrases_and_names_of_the_account():
    assert strength("correct horse battery staple " * 4, ()).acceptable     # 116 characters: no crash
    assert not strength("jsmith2024!", ("j.smith", "Jo Smith")).acceptable   # the user's own name, a year
    assert strength("tulip-ledger-basalt", ("j.smith", "Jo Smith")).acceptable
