"""QR images of client codes, for staff to scan at the reception.

The image carries the code in text under the QR (staff can type it when a scanner fails) and
the salon's name under that (a client of two salons knows which card it is). The text is drawn
with the poster's font (core.marketplace.poster: DejaVu Sans, Cyrillic included).
"""

from __future__ import annotations

import io
from functools import lru_cache

import qrcode
from PIL import Image, ImageDraw
from qrcode.constants import ERROR_CORRECT_M

from core.marketplace.poster import INK, MUTED, poster_font, text_width, wrapped

_BOX = 10
_BORDER = 4


@lru_cache(maxsize=1024)
def qr_png(text: str, salon: str = "") -> bytes:
    """A PNG of `text` as a QR code, with `text` and `salon` written under it. Cached: a
    client asks for the same code again and again.

    The mask is fixed: choosing the "best" of eight takes most of the time of making a code,
    and any mask reads fine with a phone's camera.
    """
    qr = qrcode.QRCode(
        error_correction=ERROR_CORRECT_M, box_size=_BOX, border=_BORDER, mask_pattern=0
    )
    qr.add_data(text)
    qr.make(fit=True)
    code = qr.make_image().get_image().convert("L")
    width = code.size[0]
    inner = width - _BOX * _BORDER
    size = 40
    while text_width(text, poster_font(True, size)) > inner and size > 12:
        size = int(size * 0.9)
    code_font = poster_font(True, size)
    salon_font = poster_font(False, 26)
    salon_lines = wrapped(salon, salon_font, inner, max_lines=2) if salon else []
    # The code's white border is its quiet zone: the text starts just below it.
    top = width - _BOX * (_BORDER - 1)
    height = top + 56 + 34 * len(salon_lines) + _BOX * 2
    image = Image.new("L", (width, height), 255)
    image.paste(code, (0, 0))
    draw = ImageDraw.Draw(image)
    draw.text(((width - text_width(text, code_font)) / 2, top), text, font=code_font, fill=INK[0])
    y = top + 56
    for line in salon_lines:
        draw.text(
            ((width - text_width(line, salon_font)) / 2, y), line, font=salon_font, fill=MUTED[0]
        )
        y += 34
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
