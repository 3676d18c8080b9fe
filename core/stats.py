"""A salon's figures for its admins (`/stats` and the weekly digest): what the bot did for it.

Every figure is one aggregate query over the salon's rows (GROUP BY or conditional sums), never
a loop over clients, so a salon with many thousand clients costs the same few queries:

- clients who joined in the period, by the channel they use (`Client.last_channel`; a card made
  from a YClients record, with no chat yet, is counted under None);
- visits completed (records with status completed whose visit time falls in the period);
- bonuses awarded (visit accruals and welcome bonuses, less reversals), redeemed, and what
  clients hold now (the sum of cached balances);
- reminders sent and what clients answered (`ScheduledMessage` of the reminder kinds;
  answer "confirmed", or "cancelled": a cancellation the reminder caught in time);
- after-visit ratings: the average, how many, and the low ones with their comments;
- eight weeks of visits and bonuses awarded, for the chart (`chart_png`).

The period is the seven days before `now`; the chart's weeks are the seven-day spans before it,
the last one being the period itself, so the chart and the text agree.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

from PIL import Image, ImageDraw, ImageFont
from tortoise.expressions import Case, F, Q, When
from tortoise.functions import Count, Sum

from core.i18n import _, gettext
from core.models import (
    Booking,
    BookingStatus,
    Client,
    Company,
    LedgerEntry,
    LedgerKind,
    ScheduledMessage,
    ScheduledStatus,
    VisitReview,
)
from core.visits import answers as visit_answers
from core.visits import kinds

log = logging.getLogger(__name__)

WEEKS = 8
PERIOD = timedelta(days=7)
# ScheduledMessage kinds that remind a client of a visit (the visit loop plans them).
REMINDER_KINDS = (kinds.DAY_BEFORE, kinds.HOURS_BEFORE)
# A rating at or below this is shown to the admins with its comment.
LOW_RATING = 3
LOW_SHOWN = 5


@dataclass(frozen=True, slots=True)
class LowRating:
    rating: int
    comment: str
    client_name: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Week:
    start: datetime
    visits: int
    awarded: int


@dataclass(frozen=True, slots=True)
class Figures:
    since: datetime
    until: datetime
    # channel name (None: no chat yet) -> clients who joined in the period
    joined: dict[str | None, int]
    visits: int
    awarded: int
    redeemed: int
    outstanding: int
    reminders_sent: int
    reminders_confirmed: int
    cancellations_caught: int
    rating_average: float | None
    rating_count: int
    low_ratings: list[LowRating]
    weeks: list[Week]

    @property
    def joined_total(self) -> int:
        return sum(self.joined.values())


def _int(value: Any) -> int:
    return int(value or 0)


def _spans(now: datetime) -> list[tuple[datetime, datetime]]:
    """The WEEKS seven-day spans before `now`, oldest first."""
    return [(now - PERIOD * (WEEKS - i), now - PERIOD * (WEEKS - 1 - i)) for i in range(WEEKS)]


def _by_span(
    field: str, spans: list[tuple[datetime, datetime]], *, total: str | None = None
) -> dict[str, Any]:
    """One aggregate per span (`w0` … `w7`) over the rows whose `field` falls in it: the sum
    of the column `total`, or (without one) how many rows."""
    found: dict[str, Any] = {}
    for i, (a, b) in enumerate(spans):
        bounds: dict[str, Any] = {f"{field}__gte": a, f"{field}__lt": b}
        within = Q(**bounds)
        # (Tortoise's stubs want a column name here; a CASE expression is what it runs.)
        if total is None:
            counted: Any = Case(When(within, then=F("id")))
            found[f"w{i}"] = Count(counted)
        else:
            summed: Any = Case(When(within, then=F(total)), default=cast(Any, 0))
            found[f"w{i}"] = Sum(summed)
    return found


async def _weeks(company_id: int, spans: list[tuple[datetime, datetime]]) -> list[Week]:
    first, last = spans[0][0], spans[-1][1]
    visits = (
        await Booking.filter(
            company_id=company_id,
            status=BookingStatus.COMPLETED,
            deleted=False,
            visit_at__gte=first,
            visit_at__lt=last,
        )
        .annotate(**_by_span("visit_at", spans))
        .values(*(f"w{i}" for i in range(WEEKS)))
    )
    awarded = (
        await LedgerEntry.filter(
            company_id=company_id,
            kind__in=[LedgerKind.ACCRUAL, LedgerKind.WELCOME, LedgerKind.REVERSAL],
            created_at__gte=first,
            created_at__lt=last,
        )
        .annotate(**_by_span("created_at", spans, total="amount"))
        .values(*(f"w{i}" for i in range(WEEKS)))
    )
    v, a = (visits or [{}])[0], (awarded or [{}])[0]
    return [
        Week(start, _int(v.get(f"w{i}")), _int(a.get(f"w{i}")))
        for i, (start, _end) in enumerate(spans)
    ]


async def figures(company: Company, now: datetime) -> Figures:
    """The salon's figures for the seven days before `now`, and the eight weeks' chart data."""
    since = now - PERIOD
    joined_rows = (
        await Client.filter(company_id=company.id, created_at__gte=since, created_at__lt=now)
        .annotate(n=Count("id"))
        .group_by("last_channel")
        .values_list("last_channel", "n")
    )
    visits = await Booking.filter(
        company_id=company.id,
        status=BookingStatus.COMPLETED,
        deleted=False,
        visit_at__gte=since,
        visit_at__lt=now,
    ).count()
    ledger_rows = (
        await LedgerEntry.filter(company_id=company.id, created_at__gte=since, created_at__lt=now)
        .annotate(total=Sum("amount"))
        .group_by("kind")
        .values_list("kind", "total")
    )
    by_kind = {str(kind): _int(total) for kind, total in ledger_rows}
    outstanding = (
        await Client.filter(company_id=company.id)
        .annotate(total=Sum("balance"))
        .values_list("total", flat=True)
    )
    reminder_rows = (
        await ScheduledMessage.filter(
            company_id=company.id,
            kind__in=REMINDER_KINDS,
            status=ScheduledStatus.SENT,
            sent_at__gte=since,
            sent_at__lt=now,
        )
        .annotate(n=Count("id"))
        .group_by("answer")
        .values_list("answer", "n")
    )
    answers = {answer: _int(n) for answer, n in reminder_rows}
    reviews = VisitReview.filter(company_id=company.id, created_at__gte=since, created_at__lt=now)
    # A sum and a count, not AVG: Tortoise reads an aggregate back as the column's type
    # (a whole number here), which would round the average.
    rating = await reviews.annotate(total=Sum("rating"), n=Count("id")).values("total", "n")
    low = (
        await reviews.filter(rating__lte=LOW_RATING)
        .select_related("client")
        .order_by("rating", "-created_at")
        .limit(LOW_SHOWN)
    )
    count = _int(rating[0]["n"]) if rating else 0
    return Figures(
        since=since,
        until=now,
        joined={channel: _int(n) for channel, n in joined_rows},
        visits=visits,
        awarded=sum(by_kind.get(k, 0) for k in ("accrual", "welcome", "reversal")),
        redeemed=-by_kind.get("redemption", 0),
        outstanding=_int(outstanding[0]) if outstanding else 0,
        reminders_sent=sum(answers.values()),
        reminders_confirmed=answers.get(visit_answers.CONFIRMED, 0),
        cancellations_caught=answers.get(visit_answers.CANCELLED, 0),
        rating_average=_int(rating[0]["total"]) / count if count else None,
        rating_count=count,
        low_ratings=[
            LowRating(r.rating, r.comment, r.client.name if r.client else "", r.created_at)
            for r in low
        ],
        weeks=await _weeks(company.id, _spans(now)),
    )


# --- the chart ---

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
# Portrait 4:5, the shape a phone shows widest; two panels so each bar is tall enough to read.
WIDTH, HEIGHT = 1080, 1350
MARGIN = 56
INK = (24, 24, 27)
MUTED = (110, 110, 120)
GRID = (228, 228, 232)
VISITS_COLOUR = (64, 115, 223)
BONUS_COLOUR = (232, 140, 48)

_VISITS_TITLE = _("Visits completed, by week")
_BONUS_TITLE = _("Bonuses awarded, by week")


@lru_cache(maxsize=16)
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = FONT_DIR / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
    try:
        return ImageFont.truetype(str(path), size)
    except OSError:
        log.warning("chart font %s not found (apt-get install fonts-dejavu-core)", path)
        return ImageFont.load_default(size)


def _centred(
    draw: ImageDraw.ImageDraw, x: float, y: float, text: str, font: Any, fill: Any
) -> None:
    width = draw.textlength(text, font=font)
    draw.text((x - width / 2, y), text, font=font, fill=fill)


def _panel(
    draw: ImageDraw.ImageDraw,
    top: int,
    bottom: int,
    title: str,
    values: list[int],
    labels: list[str],
    colour: tuple[int, int, int],
) -> None:
    draw.text((MARGIN, top), title, font=_font(40, bold=True), fill=INK)
    chart_top, chart_bottom = top + 110, bottom - 60
    left, right = MARGIN, WIDTH - MARGIN
    draw.line((left, chart_bottom, right, chart_bottom), fill=GRID, width=3)
    peak = max([*values, 1])
    slot = (right - left) / len(values)
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        centre = left + slot * (i + 0.5)
        height = (chart_bottom - chart_top) * max(value, 0) / peak
        bar_left, bar_right = centre - slot * 0.32, centre + slot * 0.32
        if height > 0:
            draw.rectangle((bar_left, chart_bottom - height, bar_right, chart_bottom), fill=colour)
        _centred(
            draw,
            centre,
            chart_bottom - height - 46,
            f"{value:,}".replace(",", " "),
            _font(32, bold=True),
            INK,
        )
        _centred(draw, centre, chart_bottom + 14, label, _font(26), MUTED)


def chart_png(weeks: list[Week], locale: str, tz: ZoneInfo | None = None) -> bytes:
    """Two bar charts, visits above and bonuses below, one bar per week labelled with the
    week's first day (salon-local), large enough to read on a phone."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    labels = [(w.start.astimezone(tz) if tz else w.start).strftime("%d.%m") for w in weeks]
    half = HEIGHT // 2
    _panel(
        draw,
        MARGIN,
        half,
        gettext(locale, _VISITS_TITLE),
        [w.visits for w in weeks],
        labels,
        VISITS_COLOUR,
    )
    _panel(
        draw,
        half + MARGIN // 2,
        HEIGHT - MARGIN // 2,
        gettext(locale, _BONUS_TITLE),
        [w.awarded for w in weeks],
        labels,
        BONUS_COLOUR,
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
