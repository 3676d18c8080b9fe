"""Balance notices to clients in WhatsApp, through their salon's own number, in each client's
language.

Only clients who wrote to the salon there have a chat id, so a notice always continues a
conversation the client started. A salon that is not active says nothing new. Sending follows
the Outbox's manners; a failure is recorded there and never retried.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.whatsapp.outbox import Outbox, Outgoing
from core.i18n import pick_locale
from core.models import Client, Company, IntegrationStatus
from core.notifications import BalanceNotice, render

log = logging.getLogger(__name__)


class WhatsAppNotifier:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    async def deliver(
        self, client: Client, company: Company, notices: Sequence[BalanceNotice]
    ) -> None:
        if client.whatsapp_chat_id is None or company.whatsapp_session is None:
            log.info("notice for client %s: no WhatsApp chat", client.id)
            return
        if company.integration_status is not IntegrationStatus.ACTIVE:
            log.info("notice for client %s: salon %s is not active", client.id, company.id)
            return
        locale = pick_locale(client.locale, company.default_locale)
        self.outbox.notify(
            company.id,
            company.whatsapp_session,
            client.whatsapp_chat_id,
            [Outgoing(render(notice, locale)) for notice in notices],
        )
