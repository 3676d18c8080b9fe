"""One router per feature, each from a `get_router()` factory so every dispatcher (and every
test) gets fresh ones; bot.telegram.dispatcher includes them in order."""
