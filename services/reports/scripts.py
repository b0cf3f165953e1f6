"""Names in any script on a printed report: CJK characters drawn with a CJK font, Arabic and Hebrew shaped and laid
out right to left. ReportLab draws characters one by one from one font in logical order: a Chinese name printed as
empty boxes, an Arabic one as reversed, unjoined letters. Here each run of such characters is prepared before it is
drawn: arabic-reshaper joins the letters (contextual forms, lam-alef), python-bidi (the Unicode bidirectional
algorithm) puts the run in visual order, and CJK runs switch to the CJK font (DroidSansFallback from the system's
fonts-droid-fallback package, or Noto Sans CJK), both only where present (a CJK name then prints as boxes and the
report says so nowhere: the deb and CI install the font)."""
from __future__ import annotations

import re
import threading
from pathlib import Path

CJK_FONT_FILES = (Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),
                  Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
                  Path("/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc"))
CJK_FONT = "WL-CJK"
_CJK = re.compile(r"[\u2e80-\u2fdf\u3000-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
                  r"\uff00-\uffef]+")
_RTL_CHAR = r"\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc"
_RTL = re.compile(rf"[{_RTL_CHAR}]")
# a right-to-left run: its letters with the spaces and punctuation between them ("عبد الله, محمد"), never the
# numbers or Latin text around it, which keep their places on the line
_RTL_RUN = re.compile(rf"[{_RTL_CHAR}](?:[{_RTL_CHAR}\s,.'\-]*[{_RTL_CHAR}])?")
_lock = threading.Lock()
_cjk: str | None | bool = False   # False: not looked for yet; None: no CJK font here


def cjk_font() -> str | None:
    """The registered CJK font's name, or None where no CJK font is installed."""
    global _cjk
    with _lock:
        if _cjk is False:
            _cjk = None
            from reportlab.pdfbase import pdfmetrics
            from reportlab.pdfbase.ttfonts import TTFont
            for path in CJK_FONT_FILES:
                if path.is_file():
                    try:
                        pdfmetrics.registerFont(TTFont(CJK_FONT, str(path), subfontIndex=0))
                        _cjk = CJK_FONT
                        break
                    except Exception:   # a damaged font file must not stop printing
                        continue
        return _cjk


_reshaper = None


def visual(text: str) -> str:
    """Plain text with Arabic letters joined and each right-to-left run in visual order (the bidirectional
    algorithm on the run alone: a patient number or a bed beside an Arabic name stays where it was). A name is one
    run and short; a run broken across two lines would read in the wrong order."""
    global _reshaper
    if not _RTL.search(text):
        return text
    from arabic_reshaper import ArabicReshaper
    from bidi import get_display
    if _reshaper is None:   # the Allah ligature (U+FDF2) is not in DejaVu Sans: the letters are joined instead
        _reshaper = ArabicReshaper(configuration={"ARABIC LIGATURE ALLAH": False})
    return _RTL_RUN.sub(lambda m: get_display(_reshaper.reshape(m.group(0)), base_dir="R"), text)


def markup(escaped: str) -> str:
    """Paragraph markup (already XML-escaped, already in visual order) with CJK runs in the CJK font."""
    out = escaped
    font = cjk_font() if _CJK.search(out) else None
    return _CJK.sub(lambda m: f'<font name="{font}">{m.group(0)}</font>', out) if font else out


def runs(text: str, font: str) -> list[tuple[str, str]]:
    """(text, font) pieces of a plain line for drawing on a canvas: CJK runs in the CJK font, RTL runs laid out."""
    text = visual(text)
    cjk = cjk_font() if _CJK.search(text) else None
    if not cjk:
        return [(text, font)]
    out, at = [], 0
    for m in _CJK.finditer(text):
        if m.start() > at:
            out.append((text[at:m.start()], font))
        out.append((m.group(0), cjk))
        at = m.end()
    return out + ([(text[at:], font)] if at < len(text) else [])
