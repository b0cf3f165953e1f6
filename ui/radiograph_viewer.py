"""A radiograph one can zoom and pan: the wheel (or + and -) zooms about the pointer, dragging pans, a double click or
0 fits the film to the pane again. An empty pane says what goes there."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QKeyEvent, QPainter, QPixmap, QWheelEvent
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QLabel, QStackedWidget, QWidget

MAX_ZOOM = 16.0


class _FilmView(QGraphicsView):
    zoomed = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.item = QGraphicsPixmapItem()
        self.item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self.scene().addItem(self.item)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setBackgroundBrush(Qt.GlobalColor.black)
        self.setAccessibleName("Radiograph")
        self.setToolTip("Wheel or + / − to zoom, drag to move, double-click or 0 to fit")
        self._fitted = True

    @property
    def zoom(self) -> float:
        """Magnification relative to the film fitted to the pane (1 = fitted)."""
        fit = self._fit_scale()
        return self.transform().m11() / fit if fit else 1.0

    def _fit_scale(self) -> float:
        r = self.item.boundingRect()
        if r.isEmpty():
            return 0.0
        vp = self.viewport().rect()
        return min(vp.width() / r.width(), vp.height() / r.height())

    def set_pixmap(self, pix: QPixmap, keep_view: bool) -> None:
        same_size = not self.item.pixmap().isNull() and self.item.pixmap().size() == pix.size()
        self.item.setPixmap(pix)
        self.scene().setSceneRect(self.item.boundingRect())
        if not (keep_view and same_size) or self._fitted:
            self.fit()

    def fit(self) -> None:
        self.resetTransform()
        s = self._fit_scale()
        if s:
            self.scale(s, s)
        self.centerOn(self.item)
        self._fitted = True
        self.zoomed.emit(1.0)

    def zoom_by(self, factor: float) -> None:
        target = min(max(self.zoom * factor, 1.0), MAX_ZOOM)
        if abs(target - 1.0) < 1e-3:
            self.fit()
            return
        step = target / self.zoom
        self.scale(step, step)
        self._fitted = False
        self.zoomed.emit(self.zoom)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt name
        self.zoom_by(1.25 if event.angleDelta().y() > 0 else 0.8)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802 - Qt name
        self.fit()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt name
        key = event.key()
        if key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom_by(1.25)
        elif key == Qt.Key.Key_Minus:
            self.zoom_by(0.8)
        elif key == Qt.Key.Key_0:
            self.fit()
        else:
            super().keyPressEvent(event)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt name
        super().resizeEvent(event)
        if self._fitted:
            self.fit()


class RadiographViewer(QStackedWidget):
    """The film (zoom and pan) or, when there is none, a sentence saying what goes there."""

    def __init__(self, empty_text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(200, 200)
        self.message = QLabel(alignment=Qt.AlignmentFlag.AlignCenter, wordWrap=True)
        self.view = _FilmView()
        self.addWidget(self.message)
        self.addWidget(self.view)
        self._empty = empty_text
        self.show_empty()

    @property
    def zoom(self) -> float:
        return self.view.zoom

    def show_empty(self) -> None:
        self.setText(self._empty)

    def setText(self, text: str) -> None:  # noqa: N802 - as QLabel's, which this pane replaced
        self.view.item.setPixmap(QPixmap())
        self.message.setText(text)
        self.setCurrentWidget(self.message)

    def pixmap(self) -> QPixmap | None:
        pix = self.view.item.pixmap()
        return None if pix.isNull() else pix

    def text(self) -> str:
        return self.message.text() if self.currentWidget() is self.message else ""

    def set_image(self, image: QImage, keep_view: bool = True) -> None:
        """A new rendering of the same film (another window, the heat map) keeps the zoom and position."""
        self.setCurrentWidget(self.view)
        self.view.set_pixmap(QPixmap.fromImage(image), keep_view)
