"""The Telegram channel: aiogram 3 routers that translate updates into dialog calls and the
dialog's replies into Bot API messages. No loyalty logic lives here."""
