"""A thin Qt item-model adapter over a plain Python list (napari's habit: pure data, thin Qt shell).

Rows are handed to the view in batches through canFetchMore/fetchMore, so a list of 100,000 patients
costs the view only what is scrolled into sight.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, Sequence, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

T = TypeVar("T")
Index = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class Column(Generic[T]):
    header: str
    value: Callable[[T], Any]
    align_right: bool = False
    tooltip: str = ""                                # the header's tooltip
    cell_tooltip: Callable[[T], str] | None = None   # a cell's tooltip, e.g. the full text of an elided cell


class ListTableModel(QAbstractTableModel, Generic[T]):
    BATCH = 500

    def __init__(self, columns: Sequence[Column[T]], parent=None) -> None:
        super().__init__(parent)
        self._columns = list(columns)
        self._rows: list[T] = []
        self._shown = 0

    # --- data in --------------------------------------------------------------------------------
    def set_rows(self, rows: Sequence[T]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self._shown = min(len(self._rows), self.BATCH)
        self.endResetModel()

    def row(self, r: int) -> T:
        return self._rows[r]

    @property
    def total(self) -> int:
        return len(self._rows)

    @property
    def headers(self) -> list[str]:
        return [c.header for c in self._columns]

    def display_rows(self) -> list[list[str]]:
        """Every row (not only the fetched ones) as the view shows it, for export."""
        return [["" if (v := c.value(r)) is None else str(v) for c in self._columns] for r in self._rows]

    # --- Qt -------------------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else self._shown

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._columns)

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:
        return not parent.isValid() and self._shown < len(self._rows)

    def fetchMore(self, parent: Index = QModelIndex()) -> None:
        if parent.isValid():
            return
        n = min(self.BATCH, len(self._rows) - self._shown)
        if n <= 0:
            return
        self.beginInsertRows(QModelIndex(), self._shown, self._shown + n - 1)
        self._shown += n
        self.endInsertRows()

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= self._shown:
            return None
        col = self._columns[index.column()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            v = col.value(self._rows[index.row()])
            return "" if v is None else str(v)
        if role == Qt.ItemDataRole.TextAlignmentRole and col.align_right:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and col.cell_tooltip is not None:
            return col.cell_tooltip(self._rows[index.row()]) or None
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(self._columns):
            if role == Qt.ItemDataRole.DisplayRole:
                return self._columns[section].header
            if role == Qt.ItemDataRole.ToolTipRole and self._columns[section].tooltip:
                return self._columns[section].tooltip
        return None
