"""The Models page (admin): the models in use with their cards, local retraining and recalibration of the
readmission model with progress and cancel, and promote / roll back / discard of stored versions."""
from __future__ import annotations

from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QMessageBox, QProgressBar,
                               QPushButton, QSplitter, QTableView, QTextBrowser, QVBoxLayout, QWidget)
from PySide6.QtCore import Qt

from ui.model_card_dialog import ModelCardDialog
from viewmodels.models_vm import ModelsViewModel


class ModelsView(QWidget):
    def __init__(self, vm: ModelsViewModel, parent: QWidget | None = None, confirm=None) -> None:
        super().__init__(parent)
        self.vm = vm
        self._confirm = confirm or self._ask
        lay = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(QLabel("Models", objectName="PageTitle"))
        top.addStretch(1)
        self.card_button = QPushButton("&Open card…")
        self.card_button.setToolTip("The selected model's card in a window of its own")
        top.addWidget(self.card_button)
        self.refresh_button = QPushButton("&Refresh")
        top.addWidget(self.refresh_button)
        lay.addLayout(top)
        self.status = QLabel(objectName="Subtitle", wordWrap=True)
        lay.addWidget(self.status)
        self.error = QLabel(objectName="ErrorLabel", wordWrap=True)
        self.error.setVisible(False)
        lay.addWidget(self.error)

        actions = QHBoxLayout()
        self.retrain_button = QPushButton("Re&train on local data…")  # not #Primary: its style hides the disabled state
        self.retrain_button.setToolTip("Train a new readmission model on this hospital's encounters with a known "
                                       "30-day outcome; it is stored as a candidate and compared with the model in use")
        self.recalibrate_button = QPushButton("Re&calibrate…")
        self.recalibrate_button.setToolTip("Keep the model in use, refit only its calibration on local outcomes")
        self.promote_button = QPushButton("&Promote")
        self.promote_button.setToolTip("Put the selected candidate in use (only if its comparison shows it is better)")
        self.rollback_button = QPushButton("Roll &back")
        self.rollback_button.setToolTip("Return to the model the current local version replaced")
        self.discard_button = QPushButton("&Discard candidate")
        self.cancel_button = QPushButton("Cancel")
        for b in (self.retrain_button, self.recalibrate_button, self.promote_button, self.rollback_button,
                  self.discard_button):
            actions.addWidget(b)
        actions.addStretch(1)
        self.progress = QProgressBar(maximumWidth=260)
        self.progress.setVisible(False)
        self.progress_text = QLabel(objectName="Subtitle")
        actions.addWidget(self.progress_text)
        actions.addWidget(self.progress)
        actions.addWidget(self.cancel_button)
        lay.addLayout(actions)

        split = QSplitter(Qt.Orientation.Horizontal)
        self.table = QTableView()
        self.table.setAccessibleName("Models")
        self.table.setModel(vm.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        split.addWidget(self.table)
        self.card = QTextBrowser()
        self.card.setAccessibleName("Model card")
        self.card.setOpenExternalLinks(False)
        split.addWidget(self.card)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setSizes([600, 700])
        lay.addWidget(split, 1)

        self.refresh_button.clicked.connect(vm.refresh)
        self.card_button.clicked.connect(self.open_card)
        self.retrain_button.clicked.connect(self._retrain)
        self.recalibrate_button.clicked.connect(self._recalibrate)
        self.promote_button.clicked.connect(self._promote)
        self.rollback_button.clicked.connect(self._rollback)
        self.discard_button.clicked.connect(self._discard)
        self.cancel_button.clicked.connect(vm.cancel)
        self.table.selectionModel().currentRowChanged.connect(lambda cur, _prev: vm.select(cur.row()))
        vm.model.modelReset.connect(self._reselect)
        vm.cardChanged.connect(self._show_card)
        vm.statusChanged.connect(self.status.setText)
        vm.errorChanged.connect(self._show_error)
        vm.progressChanged.connect(self._progress)
        vm.busyChanged.connect(self._busy)
        vm.actionsChanged.connect(self._actions)
        self._busy(vm.busy)
        self._show_card(vm.card)

    # --- binding ----------------------------------------------------------------------------------
    def showEvent(self, event) -> None:  # noqa: N802 - Qt name
        super().showEvent(event)
        if self.vm.model.total == 0 and not self.vm.busy:
            self.vm.refresh()

    def _reselect(self) -> None:
        e = self.vm.selected
        for i in range(self.vm.model.total):
            if e is not None and self.vm.model.row(i).key == e.key:
                sel = self.table.selectionModel()
                sel.blockSignals(True)
                self.table.selectRow(i)
                sel.blockSignals(False)
                return

    def _show_card(self, md: str) -> None:
        self.card.setMarkdown(md or "Select a model to see its card.")
        self.card_button.setEnabled(bool(md))
        self._reselect()

    def open_card(self) -> ModelCardDialog | None:
        e = self.vm.selected
        if e is None or not self.vm.card:
            return None
        dialog = ModelCardDialog(self.vm.card, self, f"Model card: {e.title}")
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.open()  # window-modal, returns at once; Close or Esc dismisses it
        return dialog

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.setVisible(bool(text))

    def _progress(self, done: int, total: int, message: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress_text.setText(message)

    def _busy(self, busy: bool) -> None:
        training = self.vm.training
        self.progress.setVisible(training)
        self.progress_text.setVisible(training)
        self.cancel_button.setVisible(training)
        if not training:
            self.progress.reset()
        self._actions()

    def _actions(self) -> None:
        self.retrain_button.setEnabled(self.vm.can_train)
        self.recalibrate_button.setEnabled(self.vm.can_train)
        self.promote_button.setEnabled(self.vm.can_promote)
        self.discard_button.setEnabled(self.vm.can_discard)
        self.rollback_button.setEnabled(self.vm.can_rollback)

    # --- commands ---------------------------------------------------------------------------------
    def _ask(self, title: str, text: str) -> bool:
        return QMessageBox.question(self, title, text) == QMessageBox.StandardButton.Yes

    def _retrain(self) -> None:
        if self._confirm("Retrain on local data", "Train a new readmission model on this hospital's encounters with a "
                         "known 30-day outcome? It is stored inside the encrypted store as a candidate; the model in "
                         "use does not change until you promote it."):
            self.vm.retrain()

    def _recalibrate(self) -> None:
        if self._confirm("Recalibrate", "Refit the calibration of the model in use on local outcomes? The result is "
                         "stored as a candidate and compared with the model in use."):
            self.vm.recalibrate()

    def _promote(self) -> None:
        e = self.vm.selected
        if e and self._confirm("Promote", f"Put {e.version} in use for every user of this store? The current model "
                               "stays available for roll back."):
            self.vm.promote()

    def _rollback(self) -> None:
        if self._confirm("Roll back", "Retire the local model in use and return to the model it replaced?"):
            self.vm.rollback()

    def _discard(self) -> None:
        e = self.vm.selected
        if e and self._confirm("Discard candidate", f"Delete candidate {e.version} from the store?"):
            self.vm.discard()
