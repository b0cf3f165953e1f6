"""Model management (admin): registry of models with cards, local retrain / recalibration on the demo
store, the promotion gate, rollback, integrity checks on store-held models, roles, audit, the view-model
with progress and cancel, and the view offscreen. Tiny XGBoost settings keep it fast."""
from __future__ import annotations

import datetime as dt
import json
import time

import numpy as np
import pytest

from tests.conftest import make_active

from services.core.errors import PermissionDenied
from services.desk import open_desk
from services.inference.onnx_runtime import ModelIntegrityError
from services.modelops import local_training as lt
from services.modelops.registry import ModelRegistryError, load_stored

TINY = lt.TrainingConfig(max_rounds=20, n_boot_gate=200, n_boot_card=30)


@pytest.fixture
def admin(demo_store):
    """The admin's Desk: the session with its façades, opened as the GUI and the CLI open it."""
    s = open_desk(demo_store, "admin", "wardlens-admin")
    yield s
    if not s.locked:
        s.lock()


def _actions(desk) -> list[tuple[str, str]]:
    return [(e.action, e.detail) for e in desk.session.audit.recent(200)]


def _versions(desk) -> dict[str, str]:
    return dict(desk.session.db.conn.execute("SELECT version, status FROM model_versions").fetchall())


def _store_degraded_active(desk) -> str:
    """Construct a clearly worse 'active' model: the bundled trees with the calibration slope negated
    (it ranks patients backwards), stored in the store and made active the way a promotion would."""
    bundled = desk.risk.model.get()
    version, onnx, meta, trees, _ = lt._package(lt.recalibrate_onnx(bundled.model_bytes(), -bundled.cal_a, bundled.cal_b),
                                                bundled.trees, -bundled.cal_a, bundled.cal_b, 0.2,
                                                [{"name": "low", "min": 0.0}, {"name": "medium", "min": 0.1},
                                                 {"name": "high", "min": 0.2}], "readmission-degraded", "test")
    reg = desk.models.registry
    vid = reg.add_candidate(version, onnx, meta, trees, {"name": "readmission", "kind": "retrain", "title": "degraded"},
                            bundled.version, "model retrain", "test: deliberately degraded")
    make_active(desk, vid)
    assert desk.models.activate().version == version
    assert desk.risk.model.get().version == version
    return version


# ----- services -----------------------------------------------------------------------------------

def test_registry_lists_models_with_cards_and_checked_hashes(admin) -> None:
    entries = {e.key: e for e in admin.models.registry.entries()}
    readm = entries["readmission:bundled"]
    assert readm.in_use and readm.sha256_ok and readm.status == "in use"
    assert readm.sha256 == admin.risk.model.get().bundle.sha256
    assert "intended_use" in readm.card and "metrics" in readm.card and "Model card" in readm.card_markdown
    assert entries["los:bundled"].sha256_ok
    assert "xray:bundled" in entries  # listed even where its bundle is not installed


def test_retrain_stores_candidate_inside_store_and_gate_refuses_when_not_better(admin, demo_store) -> None:
    files_before = sorted(p.name for p in demo_store.parent.iterdir())
    seen: list[tuple[int, str]] = []
    res = admin.models.retrain(lambda d, t, m="": seen.append((d, m)), config=TINY)
    assert seen and seen[-1][0] == 100
    card = res.card
    n = card["data"]["encounters_with_known_outcome"]
    assert 1000 < n < 3000 and card["data"]["readmitted_within_30_days"] >= lt.MIN_EVENTS
    parts = card["split"]["parts"]
    assert sum(p["encounters"] for p in parts.values()) == n
    for k in ("roc_auc", "pr_auc", "brier", "ece", "calibration_slope", "calibration_intercept"):
        m = card["metrics"]["test_chosen_model"][k]
        assert m["ci_low"] <= m["ci_high"]
    assert card["intended_use"] and card["limits"]
    assert card["model"]["onnx_vs_native_max_abs_margin_diff"] < 1e-4
    gate = card["comparison"]
    assert gate["against"]["version"] == admin.risk.model.get().version
    assert {"roc_auc", "brier"} <= set(gate["difference_candidate_minus_active"])
    # small local data does not beat the bundled model with an interval that says so
    assert res.gate.better is False and not gate["better"]
    assert _versions(admin) == {res.version: "candidate"}
    row = admin.session.db.conn.execute("SELECT length(onnx), sha256 FROM model_versions").fetchone()
    assert row[0] > 1000 and len(row[1]) == 64
    assert sorted(p.name for p in demo_store.parent.iterdir()) == files_before  # no loose model files
    with pytest.raises(ModelRegistryError, match="Not promoted"):
        admin.models.registry.promote(res.version_id)
    assert _versions(admin) == {res.version: "candidate"}
    assert admin.risk.model.get().version != res.version
    actions = [a for a, _ in _actions(admin)]
    assert "model retrain" in actions and "model promote refused" in actions
    # the stored candidate loads from its bytes and scores like the training run measured
    svc = load_stored(admin.session.db.conn, res.version_id)
    assert svc.version == res.version and svc.bundle.sha256 == row[1]
    # a tampered ONNX blob or sidecar is refused
    blob = bytearray(admin.session.db.conn.execute("SELECT onnx FROM model_versions WHERE id = ?", (res.version_id,)).fetchone()[0])
    blob[len(blob) // 2] ^= 0x01  # one flipped bit
    admin.session.db.conn.execute("UPDATE model_versions SET onnx = ? WHERE id = ?", (bytes(blob), res.version_id))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        load_stored(admin.session.db.conn, res.version_id)
    entry = next(e for e in admin.models.registry.entries() if e.version_id == res.version_id)
    assert entry.status == "refused" and not entry.sha256_ok


def test_promote_when_clearly_better_then_rollback(admin) -> None:
    degraded = _store_degraded_active(admin)
    res = admin.models.retrain(config=TINY)
    assert res.gate.against == degraded
    assert res.gate.better, res.gate.reason
    assert res.gate.differences["roc_auc"]["ci_low"] > 0
    reg = admin.models.registry
    msg = reg.promote(res.version_id)
    assert res.version in msg
    assert _versions(admin) == {degraded: "retired", res.version: "active"}
    assert admin.risk.model.get().version == res.version  # the app scores with it now
    with pytest.raises(ModelRegistryError, match="candidate"):
        reg.promote(res.version_id)  # already active
    # rollback restores the previous active version, then the bundled model
    reg.rollback()
    assert _versions(admin) == {degraded: "active", res.version: "retired"}
    assert admin.risk.model.get().version == degraded
    reg.rollback()
    assert "active" not in _versions(admin).values()
    bundled = admin.risk.model.get()
    assert bundled.version not in (degraded, res.version)
    with pytest.raises(ModelRegistryError, match="nothing to roll back"):
        reg.rollback()
    actions = [a for a, _ in _actions(admin)]
    assert actions.count("model rollback") == 2 and "model promote" in actions
    # a candidate compared with another model than the one active now is not promoted
    with admin.session.db.transaction() as c:
        c.execute("UPDATE model_versions SET status = 'candidate' WHERE version = ?", (res.version,))
    with pytest.raises(ModelRegistryError, match="compared with"):
        reg.promote(res.version_id)
    # a tampered active version is refused at activation: the bundled model is used, and that is audited
    with admin.session.db.transaction() as c:
        c.execute("UPDATE model_versions SET status = 'active' WHERE version = ?", (degraded,))
        c.execute("UPDATE model_versions SET sidecars = replace(sidecars, '\"meta.json\": \"', '\"meta.json\": \"AA') "
                  "WHERE version = ?", (degraded,))
    act = admin.models.activate()
    assert act.origin == "bundled" and "refusing" in act.warning
    assert admin.risk.model.get().version == bundled.version
    assert "model refused" in [a for a, _ in _actions(admin)]


def test_recalibration_keeps_trees_and_reports_calibration(admin) -> None:
    res = admin.models.recalibrate(config=TINY)
    card = res.card
    assert card["kind"] == "recalibration" and res.gate.criterion == "brier"
    before_after = card["calibration"]["before_after_on_test"]
    assert set(before_after) == {"ece", "brier", "calibration_slope", "calibration_intercept"}
    for v in before_after.values():
        assert {"active", "candidate"} <= set(v)
    assert "ci_low" in res.gate.differences["brier"]
    # A monotone recalibration keeps the ranking; float32 sigmoid outputs can still tie a few neighbours.
    assert abs(res.gate.differences["roc_auc"]["value"]) < 1e-4
    svc = load_stored(admin.session.db.conn, res.version_id)
    bundled = admin.risk.model.get()
    assert np.array_equal(svc.trees.feature, bundled.trees.feature) and np.allclose(svc.trees.mean, bundled.trees.mean)
    assert (svc.cal_a, svc.cal_b) == pytest.approx((card["model"]["calibration"]["a"], card["model"]["calibration"]["b"]))
    assert _versions(admin) == {res.version: "candidate"}
    assert "model recalibrate" in [a for a, _ in _actions(admin)]
    if not res.gate.better:
        with pytest.raises(ModelRegistryError, match="Not promoted"):
            admin.models.registry.promote(res.version_id)
    # discard removes a candidate, audited
    admin.models.registry.discard(res.version_id)
    assert _versions(admin) == {}
    assert "model discard" in [a for a, _ in _actions(admin)]


def test_too_few_outcomes_gives_a_clear_message_and_stores_nothing(admin) -> None:
    with pytest.raises(lt.InsufficientData, match=r"Only \d+ encounters with a known 30-day outcome; at least 300"):
        admin.models.retrain(config=TINY, today=dt.date(1990, 1, 1))
    with pytest.raises(lt.InsufficientData, match="at least 200 are needed to recalibrate"):
        admin.models.recalibrate(config=TINY, today=dt.date(1990, 1, 1))
    assert _versions(admin) == {}
    assert any(a == "model retrain" and "nothing stored" in d for a, d in _actions(admin))


def test_non_admins_are_refused(demo_store) -> None:
    s = open_desk(demo_store, "dr.demo", "wardlens-clinician")
    reg = s.models.registry
    for call in (reg.entries, reg.rollback, lambda: reg.promote(1), lambda: reg.discard(1),
                 lambda: s.models.retrain(config=TINY), lambda: s.models.recalibrate(config=TINY)):
        with pytest.raises(PermissionDenied):
            call()
    assert sum(1 for e in s.session.audit.recent(50) if e.action == "denied") >= 6
    # every role still gets the active model installed at unlock
    assert s.active_model is not None and s.active_model.origin == "bundled"
    assert s.models.activate().origin == "bundled"
    s.lock()


# ----- view-model and view ------------------------------------------------------------------------

def _wait(qtbot, cond, timeout=60_000) -> None:
    qtbot.waitUntil(cond, timeout=timeout)


def test_vm_retrain_with_progress_cancel_and_result(admin, owner, qtbot) -> None:
    from viewmodels.background import BackgroundRunner
    from viewmodels.models_vm import ModelsViewModel

    runner = BackgroundRunner(owner)
    vm = ModelsViewModel(admin, runner, owner, config=TINY)
    vm.refresh()
    _wait(qtbot, lambda: vm.model.total >= 3)
    assert "sha256" in vm.card and not vm.can_promote

    progress: list[tuple[int, int, str]] = []
    vm.progressChanged.connect(lambda d, t, m: (progress.append((d, t, m)), vm.cancel()))
    with qtbot.waitSignal(vm.trainingFinished, timeout=60_000) as blocker:
        vm.retrain()
        assert vm.busy and not vm.can_train
    assert blocker.args == [None]
    assert progress and vm.status == "Cancelled; nothing was stored."
    assert _versions(admin) == {}
    assert any(a == "model retrain" and "Cancelled" in d for a, d in _actions(admin))
    vm.progressChanged.disconnect()

    seen: list[int] = []
    vm.progressChanged.connect(lambda d, t, m: seen.append(d))
    with qtbot.waitSignal(vm.trainingFinished, timeout=90_000) as blocker:
        vm.retrain()
    result = blocker.args[0]
    assert result is not None and max(seen) == 100
    _wait(qtbot, lambda: vm.selected is not None and vm.selected.version_id == result.version_id)
    assert "Comparison with the active model" in vm.card and result.version in vm.card
    assert vm.can_discard and vm.can_promote == bool(result.gate.better)
    if not result.gate.better:  # the button is off, and the service refuses anyway
        assert vm.promote() is False and "Not promoted" in vm.error
    _wait(qtbot, lambda: not runner.busy)


def test_models_view_renders_offscreen(admin, owner, qtbot, qt_settings, tmp_path) -> None:
    from ui.models_view import ModelsView
    from viewmodels.background import BackgroundRunner
    from viewmodels.models_vm import ModelsViewModel

    runner = BackgroundRunner(owner)
    vm = ModelsViewModel(admin, runner, owner, config=TINY)
    view = ModelsView(vm, confirm=lambda *a: True)
    qtbot.addWidget(view)
    view.resize(1300, 800)
    view.show()
    _wait(qtbot, lambda: vm.model.total >= 3 and not runner.busy)
    assert view.table.model().rowCount() >= 3
    text = view.card.toPlainText()
    # people first: what it is for and its limits, then the headline metrics in words, then the details
    assert text.index("What it is for") < text.index("Limits") < text.index("How well it did") < text.index("Details")
    assert "Ranking (ROC AUC)" in text and "95% interval" in text and "sha256" in text
    assert vm.status.startswith("In use: readmission model, version ") and "(bundled)" in vm.status
    assert "readmission readmission-" not in vm.status and "length-of-stay model, version" in vm.status
    assert not view.promote_button.isEnabled() and not view.rollback_button.isEnabled()
    assert view.retrain_button.isEnabled() and not view.cancel_button.isVisible()
    shot = tmp_path / "models_view.png"
    assert view.grab().save(str(shot)) and shot.stat().st_size > 10_000
    dialog = view.open_card()
    assert dialog is not None and dialog.isVisible() and "What it is for" in dialog.view.toPlainText()
    dialog.buttons.button(dialog.buttons.StandardButton.Close).click()
    assert not dialog.isVisible()
    view.table.selectRow(1)
    _wait(qtbot, lambda: vm.selected is not None and vm.selected.name == "los")
    text = view.card.toPlainText()
    assert "Length of stay" in text and "Typical error: 1.9" in text and "80% interval coverage" in text


@pytest.mark.parametrize("name", ["readmission", "los", "xray"])
def test_readable_card_puts_use_and_limits_before_figures_in_words(name) -> None:
    from services.inference.model_cards import readable_card_markdown
    from services.inference.onnx_runtime import MODELS_DIR
    path = MODELS_DIR / name / "card.json"
    if not path.exists():
        pytest.skip(f"no bundled {name} card")
    card = json.loads(path.read_text(encoding="utf-8"))
    md = readable_card_markdown(card, source="bundled with WardLens")
    heads = [md.index(h) for h in ("### What it is for", "### Limits", "### How well it did", "### Details")]
    assert heads == sorted(heads) and card["intended_use"] in md and all(x in md for x in card["limits"])
    # each headline figure in words with its 95% interval, e.g. "Typical error: 1.92 days (95% interval 1.90 to 1.95 days)"
    figures = [line for line in md.splitlines() if line.startswith("- **") and "95% interval" in line]
    assert figures and all(": " in f and " to " in f for f in figures)
    assert "intended_use" not in md.split("### Details")[1]  # not repeated among the details


def test_xray_card_says_what_a_flag_means_per_finding() -> None:
    """The X-ray card for people tabulates each finding's test sensitivity, specificity and PPV before the details,
    from the card's operating points (the numbers a clinician weighs a flag by)."""
    from services.inference.model_cards import readable_card_markdown
    from services.inference.onnx_runtime import MODELS_DIR
    path = MODELS_DIR / "xray" / "card.json"
    if not path.exists():
        pytest.skip("no bundled xray card")
    card = json.loads(path.read_text(encoding="utf-8"))
    md = readable_card_markdown(card)
    assert md.index("### How well it did") < md.index("### What a flag means") < md.index("### Details")
    rows = [line for line in md.split("### What a flag means")[1].split("###")[0].splitlines()
            if line.startswith("| ") and not line.startswith(("| Finding", "| ---"))]
    # only the findings the model may flag are tabulated (the others are named as not assessed reliably)
    points = [p for p in card["operating_points_test"] if p.get("flaggable") and p["class"] != "No Finding"]
    assert points and len(rows) == len(points)
    for row, p in zip(rows, points):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == p["class"].replace("_", " ") and cells[2] == f"{100 * p['sensitivity']:.0f}%"
        assert cells[3] == f"{100 * p['specificity']:.0f}%"
    readmission = json.loads((MODELS_DIR / "readmission" / "card.json").read_text(encoding="utf-8"))
    assert "### What a flag means" not in readable_card_markdown(readmission)  # no per-finding flags there
