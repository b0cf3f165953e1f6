"""Wards and beds (administrators): each ward with its beds in service, and the changes the `wards` command makes."""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot

from models.domain import Permission
from services.capacity.wards import MAX_BEDS, WARD_TYPES, BedInfo, WardInfo
from services.desk import Desk
from viewmodels.background import BackgroundRunner
from viewmodels.base import ChangeViewModel
from viewmodels.session_vm import user_message
from viewmodels.table_model import Column, ListTableModel

__all__ = ["MAX_BEDS", "WardsViewModel"]   # what the view may use

WARD_COLUMNS: list[Column[WardInfo]] = [
    Column("Ward", lambda w: w.name),
    Column("Type", lambda w: w.ward_type),
    Column("Beds in service", lambda w: w.in_service, align_right=True),
    Column("Out of service", lambda w: w.closed, align_right=True),
    Column("Occupied", lambda w: w.occupied, align_right=True),
]
BED_COLUMNS: list[Column[BedInfo]] = [
    Column("Bed", lambda b: b.label),
    Column("Isolation", lambda b: "yes" if b.isolation else ""),
    Column("Single-sex bay", lambda b: b.sex_bay or ""),
    Column("Status", lambda b: b.status),
]


class WardsViewModel(ChangeViewModel):
    wardChanged = Signal(object)   # the ward shown in the bed table (a WardInfo), or None

    def __init__(self, session: Desk, runner: BackgroundRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.runner = session, runner
        self.wards: ListTableModel[WardInfo] = ListTableModel(WARD_COLUMNS, self)
        self.beds: ListTableModel[BedInfo] = ListTableModel(BED_COLUMNS, self)
        self.types = list(WARD_TYPES)
        self._ward: WardInfo | None = None

    @property
    def allowed(self) -> bool:
        return self.session.can(Permission.MANAGE_USERS)

    @property
    def ward(self) -> WardInfo | None:
        return self._ward

    @Slot()
    def refresh(self) -> None:
        self.runner.run("Reading wards", lambda p, c: self.session.capacity.wards.list(), on_success=self._loaded,
                        on_failure=lambda e: self._set_status(user_message(e)), owner=self)

    def _loaded(self, wards: list[WardInfo]) -> None:
        keep = self._ward.id if self._ward is not None else None
        self.wards.set_rows(wards)
        self._show(next((w for w in wards if w.id == keep), None))
        if not self.status:
            self._set_status(f"{len(wards)} wards, {sum(w.in_service for w in wards)} beds in service")

    @Slot(int)
    def select_ward(self, row: int) -> None:
        self._show(self.wards.row(row) if 0 <= row < self.wards.rowCount() else None)

    def _show(self, ward: WardInfo | None) -> None:
        self.beds.set_rows(ward.beds if ward is not None else [])
        if ward != self._ward:
            self._ward = ward
            self.wardChanged.emit(ward)

    @Slot(str, str, int)
    def add_ward(self, name: str, ward_type: str, beds: int) -> None:
        self._change(f"Adding ward {name.strip()}", lambda: self.session.capacity.wards.add_ward(name, ward_type, beds))

    @Slot(int, str)
    def rename_ward(self, ward_id: int, name: str) -> None:
        self._change(f"Renaming to {name.strip()}", lambda: self.session.capacity.wards.rename_ward(ward_id, name))

    @Slot(int, int)
    def set_beds(self, ward_id: int, total: int) -> None:
        self._change(f"Setting {total} beds", lambda: self.session.capacity.wards.set_beds(ward_id, total))

    @Slot(int, str)
    def bed_out(self, bed_id: int, reason: str) -> None:
        self._change("Taking the bed out of service",
                     lambda: self.session.capacity.wards.set_out_of_service(bed_id, reason))

    @Slot(int)
    def bed_in(self, bed_id: int) -> None:
        self._change("Putting the bed back in service",
                     lambda: self.session.capacity.wards.set_out_of_service(bed_id, None))
