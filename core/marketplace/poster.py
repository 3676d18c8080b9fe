"""The printable poster for the reception desk: the salon's name, its offer in one line, a QR code
per client channel with its label, and how it works.

Print-ready: A5 or A4 portrait at 300 dpi (PAPERS), as PNG (with its dpi recorded) or as a
one-page PDF of that size. The page is laid out to fill the sheet: a coloured band with the
name and the offer on top, the codes as large as the space allows in the middle (the grid of
columns that gives the largest codes), a tinted band with the three steps at the bottom; what
height is left is shared out between the gaps, so no empty band is left anywhere.

Salon names are usually Cyrillic, so the text needs a font that has it: DejaVu Sans from
Debian's fonts-dejavu-core (the Makefile's system-deps step and the Dockerfile install it).
Without it the poster still renders, with Pillow's built-in font and a warning in the log.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import qrcode
from PIL import Image, ImageDraw, ImageFont

from core.i18n import _, gettext, ngettext, pick_locale
from core.models import Company

log = logging.getLogger(__name__)

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT = FONT_DIR / "DejaVuSans.ttf"
FONT_BOLD = FONT_DIR / "DejaVuSans-Bold.ttf"

DPI = 300
Paper = Literal["a5", "a4"]
Format = Literal["png", "pdf"]
# Pixels at 300 dpi: A4 210 × 297 mm, A5 148 × 210 mm.
PAPERS: dict[str, tuple[int, int]] = {"a4": (2480, 3508), "a5": (1748, 2480)}

WHITE = (255, 255, 255)
INK = (24, 24, 27)
MUTED = (82, 82, 91)
ACCENT = (15, 118, 110)
TINT = (236, 246, 245)
# The most white between two parts of the poster, as a share of its height.
MAX_GAP = 0.035

_SCAN = _("Scan the code with your phone's camera and write to us")
_HOW = _("How it works")
_STEP_JOIN = _("Scan the code and write to the salon's chat: joining is free.")
_STEP_EARN = _("After every visit {percent} of its cost comes back to you as bonuses.")
_STEP_PAY = _(
    "Pay up to {percent} of a bill with bonuses: show your code in the chat at the reception."
)
_STEP_CODE = _("Show your code from the chat at the reception: the staff will find your card.")
_OFFER = _("{percent} of every visit back as bonuses")
_OFFER_AND_WELCOME = _("{offer}, and {welcome} as a welcome gift")
_WELCOME_ONLY = _("{welcome} as a welcome gift")
_NO_OFFER = _("Your visits and bonuses in one chat")


@dataclass(frozen=True, slots=True)
class Offer:
    """The salon's loyalty rules as the poster states them."""

    accrual_percent: int
    welcome_bonus: int
    max_redeem_percent: int

    @classmethod
    def of(cls, company: Company) -> Offer:
        return cls(company.accrual_percent, company.welcome_bonus, company.max_redeem_percent)


def percent(value: int, locale: str) -> str:
    """`5 %` in Russian (a no-break space, as Russian typography has it), `5%` in English."""
    return f"{value}%" if pick_locale(locale) == "en" else f"{value}\u00a0%"


def offer_line(offer: Offer, locale: str) -> str:
    """The offer in one line: the accrual, and the welcome bonus when there is one."""
    welcome = ""
    if offer.welcome_bonus > 0:
        welcome = ngettext(locale, "{n} bonus", "{n} bonuses", offer.welcome_bonus)
        welcome = welcome.format(n=offer.welcome_bonus)
    if offer.accrual_percent > 0:
        line = gettext(locale, _OFFER).format(percent=percent(offer.accrual_percent, locale))
        if welcome:
            line = gettext(locale, _OFFER_AND_WELCOME).format(offer=line, welcome=welcome)
        return line
    if welcome:
        return gettext(locale, _WELCOME_ONLY).format(welcome=welcome)
    return gettext(locale, _NO_OFFER)


def how_it_works(offer: Offer, locale: str) -> list[str]:
    steps = [gettext(locale, _STEP_JOIN)]
    if offer.accrual_percent > 0:
        steps.append(
            gettext(locale, _STEP_EARN).format(percent=percent(offer.accrual_percent, locale))
        )
    if offer.max_redeem_percent > 0:
        steps.append(
            gettext(locale, _STEP_PAY).format(percent=percent(offer.max_redeem_percent, locale))
        )
    else:
        steps.append(gettext(locale, _STEP_CODE))
    return steps


Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@lru_cache(maxsize=64)
def poster_font(bold: bool, size: int) -> Font:
    path = FONT_BOLD if bold else FONT
    if not path.exists():
        path = FONT
    try:
        return ImageFont.truetype(str(path), size)
    except OSError:
        log.warning("poster font %s not found (apt-get install fonts-dejavu-core)", path)
        return ImageFont.load_default(size)


_MEASURE = ImageDraw.Draw(Image.new("RGB", (1, 1)))


def text_width(text: str, font: Font) -> float:
    return _MEASURE.textlength(text, font=font)


def _line_height(font: Font) -> int:
    ascent, descent = font.getmetrics() if isinstance(font, ImageFont.FreeTypeFont) else (10, 3)
    return int((ascent + descent) * 1.18)


def _wrap(text: str, font: Font, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if line and text_width(candidate, font) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def wrapped(text: str, font: Font, width: int, max_lines: int) -> list[str]:
    """`text` wrapped to `width`, at most `max_lines` lines (the last cut with an ellipsis)."""
    lines = _wrap(text, font, width)
    if len(lines) <= max_lines:
        return lines
    last = " ".join(lines[max_lines - 1 :])
    while last and text_width(last + "…", font) > width:
        last = last[:-1]
    return [*lines[: max_lines - 1], last.rstrip() + "…"]


def _fitted(text: str, bold: bool, size: int, width: int, max_lines: int) -> tuple[Font, list[str]]:
    """The largest font from `size` down whose wrapping of `text` takes at most `max_lines`
    lines of `width`, each fitting (a single long word is shrunk too)."""
    while True:
        font = poster_font(bold, size)
        lines = _wrap(text, font, width)
        if size <= 12 or (
            len(lines) <= max_lines and all(text_width(line, font) <= width for line in lines)
        ):
            return font, lines
        size = int(size * 0.92)


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


@dataclass(frozen=True, slots=True)
class _Block:
    """Lines of one font, drawn centred (or from `left`)."""

    lines: tuple[str, ...]
    font: Font
    fill: tuple[int, int, int]

    @property
    def height(self) -> int:
        return _line_height(self.font) * len(self.lines)

    def draw(self, draw: ImageDraw.ImageDraw, y: int, width: int, left: int | None = None) -> int:
        step = _line_height(self.font)
        for line in self.lines:
            x = left if left is not None else (width - text_width(line, self.font)) / 2
            draw.text((x, y), line, font=self.font, fill=self.fill)
            y += step
        return y


def _link_lines(url: str, points: int, width: int) -> tuple[list[str], Font]:
    """The link as printed under its code: without the scheme, broken before the query when
    too wide, and in a smaller font if it still does not fit."""
    shown = url.removeprefix("https://")
    lines = [shown]
    if text_width(shown, poster_font(False, points)) > width and "?" in shown:
        path, query = shown.split("?", 1)
        lines = [path, f"?{query}"]
    while points > 10 and any(text_width(x, poster_font(False, points)) > width for x in lines):
        points = int(points * 0.9)
    return lines, poster_font(False, points)


def _grid(count: int, width: int, height: int, gap: int, extra: int) -> tuple[int, int]:
    """(columns, code size) giving the largest codes: `extra` is the height each row needs
    besides its code (label, link), `gap` the space between codes."""
    best = (1, 0)
    for columns in range(1, count + 1):
        rows = math.ceil(count / columns)
        by_width = (width - gap * (columns - 1)) // columns
        by_height = (height - gap * (rows - 1)) // rows - extra
        size = min(by_width, by_height)
        if size > best[1]:
            best = (columns, size)
    return best


def render_poster(
    title: str,
    links: Sequence[tuple[str, str]],
    locale: str,
    offer: Offer,
    *,
    paper: Paper = "a5",
    fmt: Format = "png",
) -> bytes:
    """The poster: one labelled QR code per `(label, url)`, on `paper` at 300 dpi."""
    return _render(title or "—", tuple(links), locale, offer, paper, fmt)


# A salon prints a few sizes at once; each PNG is a few hundred KB, a PDF under a MB.
@lru_cache(maxsize=16)
def _render(
    title: str,
    links: tuple[tuple[str, str], ...],
    locale: str,
    offer: Offer,
    paper: str,
    fmt: str,
) -> bytes:
    width, height = PAPERS[paper]
    unit = width / 100  # every measure scales with the sheet: A5 is A4 shrunk by √2
    margin = int(8 * unit)
    inner = width - 2 * margin
    image = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(image)

    name_font, name_lines = _fitted(title, True, int(7.2 * unit), inner, 2)
    offer_font, offer_lines = _fitted(offer_line(offer, locale), True, int(4.2 * unit), inner, 1)
    name = _Block(tuple(name_lines), name_font, WHITE)
    offer_block = _Block(tuple(offer_lines), offer_font, WHITE)
    pad = int(5 * unit)
    header = pad + name.height + int(1.5 * unit) + offer_block.height + pad

    how_font = poster_font(False, int(2.9 * unit))
    how_title = _Block((gettext(locale, _HOW),), poster_font(True, int(3.4 * unit)), ACCENT)
    number_width = int(5 * unit)
    steps = [
        _Block(tuple(_wrap(step, how_font, inner - number_width)), how_font, INK)
        for step in how_it_works(offer, locale)
    ]
    step_gap = int(1.2 * unit)
    footer = (
        pad
        + how_title.height
        + step_gap
        + sum(s.height for s in steps)
        + step_gap * (len(steps) - 1)
        + pad
    )

    scan = _Block(
        tuple(_wrap(gettext(locale, _SCAN), poster_font(False, int(3.2 * unit)), inner)),
        poster_font(False, int(3.2 * unit)),
        MUTED,
    )
    label_points = int(4 * unit)
    label_font = poster_font(True, label_points)
    url_points = int(2.2 * unit)
    url_line = _line_height(poster_font(False, url_points))
    gap = int(4 * unit)
    min_gap = int(3 * unit)
    middle = height - header - footer
    shown = list(links)[:4]
    columns, size = 1, 0
    row_extra = _line_height(label_font) + int(1 * unit) + url_line
    for url_lines in (1, 2):
        # A long link breaks before its query: then every row keeps room for two lines.
        row_extra = _line_height(label_font) + int(1 * unit) + url_lines * url_line
        if not shown:
            break
        available = middle - scan.height - 3 * min_gap
        columns, size = _grid(len(shown), inner, available, gap, row_extra)
        # No code wider than a good third of the sheet's height: the rest goes to the gaps.
        size = max(0, min(size, int(height * 0.4)))
        if all(len(_link_lines(url, url_points, size)[0]) <= url_lines for _l, url in shown):
            break
    rows = math.ceil(len(shown) / columns) if shown else 0
    grid_height = rows * (size + row_extra) + gap * max(0, rows - 1)
    # Whatever height is left goes to the gaps of the middle, each up to MAX_GAP of the
    # sheet; past that the coloured bands grow (their text centred), so no white band opens.
    spare = max(0, middle - scan.height - grid_height)
    gaps = 3 if shown else 2
    space = min(spare // gaps, int(height * MAX_GAP))
    grow = spare - space * gaps
    header_grow, footer_grow = grow // 2, grow - grow // 2
    header += header_grow

    draw.rectangle((0, 0, width, header), fill=ACCENT)
    y = name.draw(draw, pad + header_grow // 2, width)
    offer_block.draw(draw, y + int(1.5 * unit), width)

    y = header + space
    y = scan.draw(draw, y, width)
    y += space
    # One size for every label, the largest at which the longest fits over its code.
    while any(text_width(label, label_font) > size for label, _url in shown) and label_points > 12:
        label_points = int(label_points * 0.9)
        label_font = poster_font(True, label_points)
    for row in range(rows):
        in_row = shown[row * columns : (row + 1) * columns]
        total = len(in_row) * size + gap * (len(in_row) - 1)
        x = (width - total) // 2
        for label, url in in_row:
            label_width = text_width(label, label_font)
            draw.text((x + (size - label_width) / 2, y), label, font=label_font, fill=INK)
            top = y + _line_height(label_font)
            image.paste(_qr(url, size), (x, top))
            lines, url_font = _link_lines(url, url_points, size)
            line_y = top + size + int(1 * unit)
            for line in lines:
                line_x = x + (size - text_width(line, url_font)) / 2
                draw.text((line_x, line_y), line, font=url_font, fill=MUTED)
                line_y += _line_height(url_font)
            x += size + gap
        y += size + row_extra + gap

    top = height - footer - footer_grow
    draw.rectangle((0, top, width, height), fill=TINT)
    y = how_title.draw(draw, top + pad + footer_grow // 2, width, left=margin) + step_gap
    number_font = poster_font(True, int(2.9 * unit))
    for index, step in enumerate(steps, start=1):
        draw.text((margin, y), f"{index}.", font=number_font, fill=ACCENT)
        y = step.draw(draw, y, width, left=margin + number_width) + step_gap
    return _encode(image, fmt)


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "pdf":
        # One page of the sheet's size; JPEG inside at high quality and no chroma subsampling,
        # so the codes' edges stay sharp.
        image.save(buffer, format="PDF", resolution=DPI, quality=95, subsampling=0)
    else:
        image.save(buffer, format="PNG", optimize=True, dpi=(DPI, DPI))
    return buffer.getvalue()
