"""The MAX channel: updates in (channel.py), replies rendered as MAX messages (render.py),
balance notices (notifier.py). Only translates: the conversation is bot.dialog's."""
