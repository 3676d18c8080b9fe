"""The event loop `salonbot serve` runs on. A module of its own, importing nothing of the
app, so bench/baseline_server.py can run on the same loop without loading the rest."""

from __future__ import annotations

import asyncio


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed (every platform but Windows), asyncio's own elsewhere.
    bench/webhooks.py took 20–25% more webhooks per second on it; its baseline server runs on
    the same loop, so the ratio it reports compares the handlers, not the loops."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
