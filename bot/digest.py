"""The weekly digest for a salon's admins: the `/stats` figures and chart, sent unasked.

The visit loop plans one `digest` ScheduledMessage per salon at its `digest_at` and hands each
claimed row to the handler its kind registry holds; `digest_handler` is the digest's (register
it for the admins: `registry.register(kinds.DIGEST, digest_handler, audience=Audience.ADMINS)`).
It takes the loop's claimed row as it comes (anything with the `row` and its `company`, as
core.visits.Due has them). The figures are read once, when the digest is composed, and rendered
in each admin's language (bot.outbound.Outbound.to_admins).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from bot.dialog.owner import stats_replies
from bot.dialog.replies import Reply
from bot.outbound import Compose
from core import stats
from core.i18n import gettext
from core.models import Company, ScheduledMessage

KIND = "digest"


async def compose_digest(company: Company, now: datetime) -> Compose:
    """The digest of the seven days before `now`, ready to render in any language."""
    figures = await stats.figures(company, now)

    def compose(locale: str) -> Sequence[Reply]:
        replies = stats_replies(company, figures, locale)
        head = gettext(locale, "The week at the salon, in figures:")
        first = replies[0]
        return [Reply(f"{head}\n{first.text}"), *replies[1:]]

    return compose


class DueDigest(Protocol):
    """What the digest needs of a claimed row (core.visits.Due on the visit loop's side)."""

    @property
    def row(self) -> ScheduledMessage: ...

    @property
    def company(self) -> Company: ...


async def digest_handler(due: DueDigest) -> Compose:
    """The handler of a `digest` row: the week up to the row's due time."""
    at = due.row.due_at
    return await compose_digest(due.company, at if at.tzinfo else at.replace(tzinfo=UTC))
