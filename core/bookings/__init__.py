"""Bookings: YClients records matched to clients, applied as bookings and bonuses; the webhook
events that bring them (dedupe key, handler) and the sync that catches up on what they missed."""

from __future__ import annotations

from core.bookings.apply import (
    ApplyStats,
    apply_record_by_id,
    apply_records,
    booking_status,
    visit_value,
)
from core.bookings.events import (
    RECORD_BATCH,
    YCLIENTS,
    dedupe_key_for_yclients,
    handle_yclients,
    register,
)
from core.bookings.matching import codes_in, match_clients

__all__ = [
    "RECORD_BATCH",
    "YCLIENTS",
    "ApplyStats",
    "apply_record_by_id",
    "apply_records",
    "booking_status",
    "codes_in",
    "dedupe_key_for_yclients",
    "handle_yclients",
    "match_clients",
    "register",
    "visit_value",
]
