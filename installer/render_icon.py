"""Render resources/icons/wardlens.svg to a square PNG with Qt (used by installer/build.sh).

    python installer/render_icon.py SRC.svg OUT.png [SIZE]

Runs offscreen; needs only PySide6 (QtGui + QtSvg) from the build environment.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication, QImage, QPainter  # noqa: E402
from PySide6.QtSvg import QSvgRenderer  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    src, out = argv[1], argv[2]
    size = int(argv[3]) if len(argv) == 4 else 256
    app = QGuiApplication.instance() or QGuiApplication(argv[:1])  # noqa: F841 - QImage painting needs it
    renderer = QSvgRenderer(src)
    if not renderer.isValid():
        print(f"render_icon: {src} is not a valid SVG", file=sys.stderr)
        return 1
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    if not image.save(out, "PNG"):
        print(f"render_icon: could not write {out}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
