"""The weekly digest for a salon's admins: the `/stats` figures and chart, sent unasked.

The visit loop plans one `digest` ScheduledMessage per salon at its `digest_at` and hands the
row to the handler registered for the kind; `digest_handler` is that handler. The figures are
read once, when the digest is composed, and rendered in each admin's language
(bot.outbound.Outbound.to_admins).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

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


async def digest_handler(row: ScheduledMessage) -> Compose:
    """The visit loop's handler of a `digest` row: the week up to the row's due time."""
    company = await Company.get(id=row.company_id)
    due = row.due_at if row.due_at.tzinfo is not None else row.due_at.replace(tzinfo=UTC)
    return await compose_digest(company, due)
