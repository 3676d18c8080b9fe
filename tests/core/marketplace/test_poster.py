"""The reception poster and the client's code image: print sizes at 300 dpi, every code
readable by a real decoder, no empty band, the offer stated in words with correct plurals."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from bot.qr import qr_png
from core.marketplace import poster
from core.marketplace.poster import Offer, offer_line, render_poster
from tests.bot.test_end_to_end import zbarimg

LINKS = [
    ("Telegram", "https://t.me/salon_bonus_bot?start=salon-701"),
    ("WhatsApp", "https://wa.me/79001234567"),
    ("MAX", "https://max.ru/salon_bonus_bot?start=salon-701"),
    ("Web", "https://salonbot.example/c/701"),
]
SIZES = {"a5": (1748, 2480), "a4": (2480, 3508)}
# The longest run of wholly white pixel rows a poster may have, as a share of its height.
MAX_WHITE_BAND = 0.08


def decode_all(png: bytes, tmp_path: Path) -> set[str]:
    """Every QR code zbarimg finds in the image."""
    image = tmp_path / "decode.png"
    image.write_bytes(png)
    done = subprocess.run(
        [zbarimg(), "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", str(image)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return {line for line in done.stdout.splitlines() if line}


def longest_white_band(image: Image.Image) -> int:
    """The height in pixels of the tallest strip of rows that are white from edge to edge."""
    gray = image.convert("L")
    longest = run = 0
    for y in range(gray.height):
        darkest, _lightest = gray.crop((0, y, gray.width, y + 1)).getextrema()
        run = run + 1 if darkest == 255 else 0
        longest = max(longest, run)
    return longest


@pytest.mark.parametrize(
    ("paper", "channels"), [("a5", 1), ("a5", 2), ("a5", 3), ("a5", 4), ("a4", 3)]
)
def test_posters_are_print_sized_readable_and_without_empty_bands(
    paper: poster.Paper, channels: int, tmp_path: Path
) -> None:
    zbarimg()
    links = LINKS[:channels]
    png = render_poster("Салон красоты «Роза»", links, "ru", Offer(5, 300, 30), paper=paper)
    image = Image.open(io.BytesIO(png))
    assert image.size == SIZES[paper]
    assert tuple(round(v) for v in image.info["dpi"]) == (300, 300)
    band = longest_white_band(image)
    assert band < MAX_WHITE_BAND * image.height, f"a white band of {band} px"
    assert decode_all(png, tmp_path) == {url for _label, url in links}


def test_a_long_name_and_the_pdf() -> None:
    name = "Студия красоты и здоровья «Александра» на Большой Новодмитровской улице"
    pdf = render_poster(name, LINKS[:2], "ru", Offer(7, 0, 50), paper="a4", fmt="pdf")
    assert pdf.startswith(b"%PDF-") and b"/Width 2480" in pdf and b"/Height 3508" in pdf
    png = render_poster(name, LINKS[:2], "ru", Offer(7, 0, 50), paper="a4")
    image = Image.open(io.BytesIO(png))
    assert longest_white_band(image) < MAX_WHITE_BAND * image.height


def test_the_offer_in_one_line_with_its_plurals() -> None:
    nbsp = "\u00a0"
    assert offer_line(Offer(5, 0, 30), "ru") == f"5{nbsp}% от каждого визита — бонусами"
    assert offer_line(Offer(5, 1, 30), "ru") == (
        f"5{nbsp}% от каждого визита — бонусами и 1 бонус в подарок за подключение"
    )
    assert offer_line(Offer(5, 3, 30), "ru").endswith("и 3 бонуса в подарок за подключение")
    assert offer_line(Offer(5, 300, 30), "ru").endswith("и 300 бонусов в подарок за подключение")
    assert offer_line(Offer(0, 21, 30), "ru") == "21 бонус в подарок за подключение"
    assert offer_line(Offer(10, 500, 30), "en") == (
        "10% of every visit back as bonuses, and 500 bonuses as a welcome gift"
    )
    assert offer_line(Offer(0, 0, 30), "en") == "Your visits and bonuses in one chat"
    steps = poster.how_it_works(Offer(5, 0, 25), "ru")
    assert len(steps) == 3 and f"до 25{nbsp}% чека" in steps[2]


def test_the_clients_code_image_carries_the_code_and_the_salon(tmp_path: Path) -> None:
    zbarimg()
    png = qr_png("7KQ M2X 9PA", "Салон «Роза»")
    image = Image.open(io.BytesIO(png)).convert("L")
    plain = Image.open(io.BytesIO(qr_png("7KQ M2X 9PA"))).convert("L")
    assert decode_all(png, tmp_path) == {"7KQ M2X 9PA"}
    # Under the square code: a line of text (the code), and with a salon a line more.
    assert image.width == plain.width and image.height > plain.height > image.width
    code_text = plain.crop((0, plain.width, plain.width, plain.height))
    assert code_text.getextrema()[0] < 128
    salon_text = image.crop((0, plain.height - 20, image.width, image.height))
    assert salon_text.getextrema()[0] < 160
