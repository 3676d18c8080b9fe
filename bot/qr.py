"""QR images of client codes, for staff to scan at the reception."""

from __future__ import annotations

import io
from functools import lru_cache

import qrcode
from qrcode.constants import ERROR_CORRECT_M


@lru_cache(maxsize=1024)
def qr_png(text: str) -> bytes:
    """A PNG of `text` as a QR code. Cached: a client asks for the same code again and again.

    The mask is fixed: choosing the "best" of eight takes most of the time of making a code,
    and any mask reads fine with a phone's camera.
    """
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=10, border=4, mask_pattern=0)
    qr.add_data(text)
    qr.make(fit=True)
    buffer = io.BytesIO()
    qr.make_image().save(buffer)
    return buffer.getvalue()
