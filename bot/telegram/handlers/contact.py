"""The phone, shared with Telegram's contact button: only the sender's own contact counts."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.types import Message
from aiogram.utils.i18n import gettext as _

from bot.dialog import Dialog, Reply, Session
from bot.telegram.filters import HasContact
from bot.telegram.render import send_replies


async def contact_handler(message: Message, session: Session, dialog: Dialog, bot: Bot) -> None:
    contact = message.contact
    sender = message.from_user
    if contact is None or sender is None or contact.user_id != sender.id:
        # Someone else's card (or a typed one) proves nothing about the sender's number.
        refusal = Reply(_("Please share your own phone number with the button below."))
        await send_replies(bot, message.chat.id, [refusal, *dialog.ask_phone(session)])
        return
    replies = await dialog.contact(session, contact.phone_number)
    await send_replies(bot, message.chat.id, replies)


def get_router() -> Router:
    router = Router(name="contact")
    router.message.register(contact_handler, HasContact())
    return router
