"""The images of a CD or USB stick (its DICOMDIR), to pick the chest radiographs to add to the patient in view."""
from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget


class DicomdirDialog(QDialog):
    def __init__(self, entries, patient_label: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Images on this medium")
        self.resize(760, 480)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"Tick the chest radiographs to add to the record of <b>{escape(patient_label)}</b>. "
                             "Radiographs (CR, DX) come first; each film is checked before it is kept (whose it is, "
                             "what its header says, whether it is a chest film).", wordWrap=True))
        self.list = QListWidget()
        self.list.setAccessibleName("Images on the medium")
        for e in entries:
            who = " ".join(x for x in (e.patient_name.replace("^", " "), f"({e.patient_id})" if e.patient_id else "") if x)
            item = QListWidgetItem(f"{e.label}\n{who}")
            item.setData(Qt.ItemDataRole.UserRole, str(e.path))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
            if not e.radiograph:
                item.setForeground(Qt.GlobalColor.gray)
                item.setToolTip("Not a radiograph (its modality is " + (e.modality or "unknown") + ")")
            self.list.addItem(item)
        lay.addWidget(self.list, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.add = buttons.addButton("&Add the ticked films", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)

    def chosen(self) -> list[str]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())
                if self.list.item(i).checkState() == Qt.CheckState.Checked]
