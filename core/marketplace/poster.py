"""The printable poster for the reception desk: the salon's name and a QR code per chat link.

Rendered with qrcode + Pillow as an A5-portrait PNG at 150 dpi. Salon names are usually
Cyrillic, so the text needs a font that has it: DejaVu Sans from Debian's fonts-dejavu-core
(the Makefile's system-deps step and the Dockerfile install it). Without it the poster still
renders, with Pillow's built-in font and a warning in the log.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import qrcode
from PIL import Image, ImageDraw, ImageFont

from core.i18n import _, gettext

log = logging.getLogger(__name__)

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT = FONT_DIR / "DejaVuSans.ttf"
FONT_BOLD = FONT_DIR / "DejaVuSans-Bold.ttf"

WIDTH, HEIGHT = 874, 1240  # A5 at 150 dpi
MARGIN = 60
INK = (24, 24, 27)
MUTED = (90, 90, 100)

_HEADLINE = _("Bonuses for every visit")
_SUBTITLE = _("Scan the code with your phone's camera and write to us")


@lru_cache(maxsize=16)
def _font(bold: bool, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = FONT_BOLD if bold else FONT
    if not path.exists():
        path = FONT
    try:
        return ImageFont.truetype(str(path), size)
    except OSError:
        log.warning("poster font %s not found (apt-get install fonts-dejavu-core)", path)
        return ImageFont.load_default(size)


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: object, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if line and draw.textlength(candidate, font=font) > width:  # type: ignore[arg-type]
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def _centered(
    draw: ImageDraw.ImageDraw, y: int, text: str, font: object, fill: tuple[int, int, int]
) -> int:
    """Draw wrapped, centred text from `y`; returns the y below it."""
    for line in _wrap(draw, text, font, WIDTH - 2 * MARGIN):
        left, top, right, bottom = draw.textbbox((0, 0), line, font=font)  # type: ignore[arg-type]
        draw.text(((WIDTH - (right - left)) / 2, y), line, font=font, fill=fill)  # type: ignore[arg-type]
        y += int((bottom - top) * 1.35) + 4
    return y


def _qr(url: str, size: int) -> Image.Image:
    """The code at the largest whole number of pixels per module that fits `size`, centred
    (whole modules print crisply; a fractional scale makes uneven ones)."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=2)
    code.add_data(url)
    code.make(fit=True)
    code.box_size = max(1, size // (code.modules_count + 2 * code.border))
    drawn = code.make_image(fill_color="black", back_color="white").get_image().convert("RGB")
    canvas = Image.new("RGB", (size, size), "white")
    offset = (size - drawn.size[0]) // 2
    canvas.paste(drawn, (offset, offset))
    return canvas


def render_poster(title: str, links: Sequence[tuple[str, str]], locale: str) -> bytes:
    """A PNG with the salon's name and one labelled QR code per `(label, url)`."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    y = _centered(draw, MARGIN, title or "—", _font(True, 54), INK)
    y = _centered(draw, y + 10, gettext(locale, _HEADLINE), _font(True, 34), INK)
    y = _centered(draw, y, gettext(locale, _SUBTITLE), _font(False, 24), MUTED)
    y += 20
    # Telegram, WhatsApp and MAX side by side at most.
    shown = list(links)[:3]
    if not shown:
        return _png(image)
    columns = len(shown)
    gap = 40
    size = min(520, (WIDTH - 2 * MARGIN - gap * (columns - 1)) // columns)
    label_font = _font(True, 34)
    url_font = _font(False, {1: 22, 2: 18}.get(columns, 14))
    total = columns * size + gap * (columns - 1)
    x = (WIDTH - total) // 2
    # The codes sit in the middle of the space left below the heading.
    block = 34 + 24 + size + 36 + 24
    y = max(y, y + (HEIGHT - MARGIN - y - block) // 2)
    for label, url in shown:
        left, top, right, bottom = draw.textbbox((0, 0), label, font=label_font)
        draw.text((x + (size - (right - left)) / 2, y), label, font=label_font, fill=INK)
        image.paste(_qr(url, size), (x, int(y + (bottom - top) + 24)))
        shown_url = url.removeprefix("https://")
        lines = [shown_url]
        if draw.textlength(shown_url, font=url_font) > size and "?" in shown_url:
            # Too wide for a narrow column: the query on a line of its own.
            path, query = shown_url.split("?", 1)
            lines = [path, f"?{query}"]
        line_y = y + (bottom - top) + 36 + size
        for line in lines:
            left, _top, right, _bottom = draw.textbbox((0, 0), line, font=url_font)
            draw.text((x + (size - (right - left)) / 2, line_y), line, font=url_font, fill=MUTED)
            line_y += 20
        x += size + gap
    return _png(image)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
