"""The weekly digest for a salon's admins: the `/stats` figures and chart, sent unasked.

The visit loop plans one `digest` ScheduledMessage per salon at its `digest_at` and hands each
claimed row (core.visits.Due) to the handler its kind registry holds: `register` puts
`digest_handler` there, for the salon's admins. The figures are those of the seven days before
the row's due time, read once when the digest is composed and rendered in each admin's
language.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from bot.dialog.owner import stats_replies
from bot.dialog.replies import Reply
from bot.outbound import Compose
from bot.visits import Audience, Kinds
from core import stats
from core.i18n import gettext
from core.models import Company
from core.visits import Due, kinds


async def compose_digest(company: Company, now: datetime) -> Compose:
    """The digest of the seven days before `now`, ready to render in any language."""
    figures = await stats.figures(company, now)

    def compose(locale: str) -> Sequence[Reply]:
        replies = stats_replies(company, figures, locale)
        head = gettext(locale, "The week at the salon, in figures:")
        first = replies[0]
        return [Reply(f"{head}\n{first.text}"), *replies[1:]]

    return compose


async def digest_handler(due: Due) -> Compose:
    """The handler of a `digest` row: the week up to the row's due time."""
    at = due.row.due_at
    return await compose_digest(due.company, at if at.tzinfo else at.replace(tzinfo=UTC))


def register(registry: Kinds) -> None:
    registry.register(kinds.DIGEST, digest_handler, audience=Audience.ADMINS)
