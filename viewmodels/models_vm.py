"""The admin's Models page: every model in use with its card, and local retraining of the readmission model.

refresh() lists the models off the GUI thread (services.modelops.registry.ModelRegistry.entries). retrain()
and recalibrate() run services.modelops.local_training off the GUI thread with progress and cancel; the result
is a stored candidate whose gate verdict the card pane shows. promote(), rollback() and discard() act on
the selection (quick, on the GUI thread). Errors arrive as user sentences in `error`.
"""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from models.domain import Permission
from services.modelops import local_training
from services.core.errors import Cancelled
from services.inference.model_cards import readable_card_markdown
from services.modelops.registry import ModelEntry
from services.inference.onnx_runtime import ModelIntegrityError
from services.desk import Desk
from viewmodels.background import BackgroundRunner, Task
from viewmodels.base import StatusViewModel
from viewmodels.observable import set_if_changed
from viewmodels.session_vm import user_message
from viewmodels.table_model import Column, ListTableModel

_ORIGIN = {"bundled": "bundled with WardLens", "local": "this hospital (in the store)"}
_KIND = {"bundled": "bundled", "retrain": "local retrain", "recalibration": "local recalibration"}
_MODEL_WORDS = {"readmission": "readmission model", "los": "length-of-stay model", "xray": "chest X-ray model"}
_METRIC_LABELS = {"roc_auc": "ROC AUC", "pr_auc": "PR AUC", "brier": "Brier score", "ece": "Calibration error (ECE)",
                  "calibration_slope": "Calibration slope", "calibration_intercept": "Calibration intercept"}


def short_version(e: ModelEntry) -> str:
    """The version without the model's name in front ("readmission-4cdbfaa703dc" -> "4cdbfaa703dc")."""
    return e.version[len(e.name) + 1:] if e.version.startswith(e.name + "-") else e.version


def model_label(e: ModelEntry) -> str:
    """"readmission model, version 4cdbfaa703dc (bundled)": how the page names a model in sentences."""
    return f"{_MODEL_WORDS.get(e.name, e.name + ' model')}, version {short_version(e)} ({_KIND.get(e.kind, e.kind)})"


MODEL_COLUMNS: list[Column[ModelEntry]] = [
    Column("Model", lambda e: _MODEL_WORDS.get(e.name, e.name).removesuffix(" model")),
    Column("Version", short_version),
    Column("Source", lambda e: _KIND.get(e.kind, e.kind)),
    Column("Status", lambda e: e.status, tooltip="in use: the model scoring patients now"),
    Column("sha256", lambda e: (e.sha256[:8] + ("" if e.sha256_ok else " ✗ refused")) if e.sha256 else "",
           tooltip="First characters of the model file's sha256, checked when it was loaded or listed"),
]


def _message(exc: BaseException) -> str:
    if isinstance(exc, ModelIntegrityError):
        return f"Refused: {exc}"
    return user_message(exc)


def _ci(v: dict[str, float], digits: int = 3, signed: bool = False) -> str:
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    if not v or v.get("n_boot", 1) == 0:
        return f.format(v.get("value", float("nan"))) if v else "—"
    return f"{f.format(v['value'])} ({f.format(v['ci_low'])} to {f.format(v['ci_high'])})"


def entry_markdown(e: ModelEntry) -> str:
    """The card pane: the card as people read it (use, limits, headline metrics), the comparison with the
    active model for a local version, then where it came from, its sha256 check, and every detail."""
    if not e.card:
        return e.card_markdown  # not installed, refused or damaged: the service wrote the reason
    lines: list[str] = []
    if e.problem:
        lines += [f"> **Problem:** {e.problem}", ""]
    gate = e.gate if e.origin == "local" else {}
    if gate:
        verdict = "Better — may be promoted" if gate.get("better") else "Not shown to be better — cannot be promoted"
        t = gate.get("test", {})
        lines += ["### Comparison with the active model", "",
                  f"**{verdict}.** Against `{gate.get('against', {}).get('version', '?')}` on the same "
                  f"{t.get('encounters', '?')} local test encounters ({t.get('readmitted', '?')} readmitted, "
                  f"{t.get('patients', '?')} patients). Rule: the 95% patient-bootstrap interval of the "
                  f"{'ROC-AUC difference must lie above 0' if gate.get('criterion') == 'roc_auc' else 'Brier difference must lie below 0'}.",
                  "", gate.get("reason", ""), "",
                  "| metric | this candidate (95% CI) | active model (95% CI) | difference (95% CI) |",
                  "| --- | --- | --- | --- |"]
        diffs = gate.get("difference_candidate_minus_active", {})
        for k, label in _METRIC_LABELS.items():
            c, a = gate.get("candidate", {}).get(k), gate.get("active", {}).get(k)
            if c is None or a is None:
                continue
            d = diffs.get(k)
            lines.append(f"| {label} | {_ci(c)} | {_ci(a)} | {_ci(d, signed=True) if d else ''} |")
        lines.append("")
    lines += ["### Origin and integrity", "", f"- **status**: {e.status}", f"- **version**: `{e.version}`",
              f"- **source**: {_ORIGIN.get(e.origin, e.origin)}"]
    if e.created_at:
        lines.append(f"- **made**: {e.created_at} by {e.created_by}"
                     + (f"; derived from / replaces `{e.parent_version}`" if e.parent_version else ""))
    if e.sha256:
        check = "matched its recorded value" if e.sha256_ok else "**does not match its recorded value: refused**"
        lines.append(f"- **sha256**: `{e.sha256}` — {check} ({'at load' if e.origin == 'bundled' else 'when listed'})")
    lines.append("")
    source = f"{_KIND.get(e.kind, e.kind)} · **{e.status}**"
    return readable_card_markdown(e.card, short_version(e), source, before_details=lines)


class ModelsViewModel(StatusViewModel):
    busyChanged = Signal(bool)
    progressChanged = Signal(int, int, str)
    errorChanged = Signal(str)
    cardChanged = Signal(str)
    actionsChanged = Signal()
    trainingFinished = Signal(object)   # TrainingResult, or None when cancelled or failed

    def __init__(self, session: Desk, runner: BackgroundRunner, parent: QObject | None = None,
                 config: local_training.TrainingConfig | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.runner = runner
        self.registry = session.models.registry
        self.config = config or local_training.TrainingConfig()
        self.model: ListTableModel[ModelEntry] = ListTableModel(MODEL_COLUMNS, self)
        self._busy = False
        self._training = False
        self._error = ""
        self._card = ""
        self._selected: ModelEntry | None = None
        self._task: Task | None = None
        self._generation = 0

    # --- state ------------------------------------------------------------------------------------
    @property
    def allowed(self) -> bool:
        return self.session.can(Permission.MANAGE_MODELS)

    @property
    def busy(self) -> bool:
        return self._busy

    @property
    def training(self) -> bool:
        return self._training


    @property
    def error(self) -> str:
        return self._error

    @property
    def card(self) -> str:
        return self._card

    @property
    def selected(self) -> ModelEntry | None:
        return self._selected

    @property
    def can_promote(self) -> bool:
        e = self._selected
        return (not self._busy and e is not None and e.origin == "local" and e.status == "candidate" and e.sha256_ok
                and bool(e.gate.get("better")))  # the service enforces the gate again

    @property
    def can_discard(self) -> bool:
        e = self._selected
        return not self._busy and e is not None and e.origin == "local" and e.status == "candidate"

    @property
    def can_rollback(self) -> bool:
        return not self._busy and any(self.model.row(i).origin == "local" and self.model.row(i).status in ("in use", "active")
                                      for i in range(self.model.total))

    @property
    def can_train(self) -> bool:
        return not self._busy and self.allowed

    def _set_busy(self, v: bool) -> None:
        if set_if_changed(self, "_busy", v, "busyChanged"):
            self.actionsChanged.emit()

    def _set_error(self, v: str) -> None:
        set_if_changed(self, "_error", v, "errorChanged")

    # --- commands ---------------------------------------------------------------------------------
    @Slot()
    def refresh(self) -> None:
        self._refresh(self._selected.key if self._selected else None)

    def _refresh(self, keep: str | None, announce: bool = True) -> None:
        self._generation += 1
        gen = self._generation
        self.runner.run("Listing models", lambda p, c: self.registry.entries(),
                        on_success=lambda rows: self._listed(gen, rows, keep, announce),
                        on_failure=lambda e: self._set_error(_message(e)), owner=self)

    def _listed(self, gen: int, rows: list[ModelEntry], keep: str | None, announce: bool) -> None:
        if gen != self._generation:
            return
        self.model.set_rows(rows)
        keys = [r.key for r in rows]
        self.select(keys.index(keep) if keep in keys else 0)
        in_use = "; ".join(model_label(r) for r in rows if r.in_use)
        candidates = sum(1 for r in rows if r.status == "candidate")
        if announce and not self._training:
            self._set_status(f"In use: {in_use or 'none'}" + (f" · {candidates} candidate(s) stored" if candidates else ""))
        self.actionsChanged.emit()

    @Slot(int)
    def select(self, row: int) -> None:
        self._selected = self.model.row(row) if 0 <= row < self.model.total else None
        set_if_changed(self, "_card", entry_markdown(self._selected) if self._selected else "", "cardChanged")
        self.actionsChanged.emit()

    def select_key(self, key: str) -> None:
        for i in range(self.model.total):
            if self.model.row(i).key == key:
                self.select(i)
                return

    @Slot()
    def retrain(self) -> None:
        self._train("Retraining the readmission model on this hospital's data", self.session.models.retrain)

    @Slot()
    def recalibrate(self) -> None:
        self._train("Recalibrating the readmission model on this hospital's data", self.session.models.recalibrate)

    def _train(self, label: str, fn: Any) -> None:
        if self._busy:
            return
        self._set_error("")
        self._training = True
        self._set_busy(True)
        self._set_status(label + "…")
        config = self.config
        self._task = self.runner.run(label, lambda p, c: fn(p, c, config),
                                     on_success=self._trained, on_failure=self._train_failed,
                                     on_progress=self.progressChanged.emit, owner=self)

    def _trained(self, result: local_training.TrainingResult) -> None:
        self._training, self._task = False, None
        self._set_busy(False)
        self._set_status(result.message)
        self._refresh(f"readmission:{result.version_id}", announce=False)  # show the new candidate's card and verdict
        self.trainingFinished.emit(result)

    def _train_failed(self, exc: BaseException) -> None:
        self._training, self._task = False, None
        self._set_busy(False)
        if isinstance(exc, Cancelled):
            self._set_status("Cancelled; nothing was stored.")
        else:
            self._set_status("")
            self._set_error(_message(exc))
        self.trainingFinished.emit(None)

    @Slot()
    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._set_status("Cancelling…")

    def _act(self, fn, *args) -> bool:
        self._set_error("")
        try:
            msg = fn(*args)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.refresh()
            self._set_error(_message(exc))
            return False
        self._set_status(msg)
        self._refresh(self._selected.key if self._selected else None, announce=False)
        return True

    @Slot()
    def promote(self) -> bool:
        e = self._selected
        if e is None or e.version_id is None:
            self._set_error("Select a stored candidate to promote.")
            return False
        return self._act(self.registry.promote, e.version_id)

    @Slot()
    def rollback(self) -> bool:
        return self._act(self.registry.rollback)

    @Slot()
    def discard(self) -> bool:
        e = self._selected
        if e is None or e.version_id is None:
            self._set_error("Select a stored candidate to discard.")
            return False
        return self._act(self.registry.discard, e.version_id)
