"""What a scheduled message is for (`ScheduledMessage.kind`), and how its key is made.

A key is unique per purpose: a replayed change, or two appliers of one record, plan nothing
twice. Per-visit rows (the reminders and the silent-client alert) carry the visit's instant in
their key, so a visit moved to another time gets rows of its own and the old ones are dropped;
a notice carries the fingerprint of the booking's state it tells about.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

NOTICE_CREATED = "notice_created"
NOTICE_MOVED = "notice_moved"
NOTICE_CANCELLED = "notice_cancelled"
DAY_BEFORE = "day_before"
HOURS_BEFORE = "hours_before"
SILENT_ALERT = "silent_alert"
REVIEW = "review"
DIGEST = "digest"

NOTICES = (NOTICE_CREATED, NOTICE_MOVED, NOTICE_CANCELLED)
REMINDERS = (DAY_BEFORE, HOURS_BEFORE)
# Rows that belong to one visit time of a booking.
PER_VISIT = (DAY_BEFORE, HOURS_BEFORE, SILENT_ALERT)
# Sent to the salon's admins, not to the client.
TO_ADMINS = (SILENT_ALERT, DIGEST)
# What a client who turned reminders off does not get (booking notices still go).
REMINDERS_OFF = (DAY_BEFORE, HOURS_BEFORE, REVIEW)


def epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def per_visit_key(kind: str, booking_id: int, visit_at: datetime) -> str:
    return f"{kind}:{booking_id}:{epoch(visit_at)}"


def visit_of_key(key: str) -> int | None:
    """The visit instant (epoch seconds) a per-visit key names."""
    tail = key.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else None


def notice_key(kind: str, booking_id: int, fingerprint: str) -> str:
    return f"{kind}:{booking_id}:{fingerprint}"


def review_key(booking_id: int) -> str:
    return f"{REVIEW}:{booking_id}"


def digest_key(company_id: int, iso_year: int, iso_week: int) -> str:
    return f"{DIGEST}:{company_id}:{iso_year}-W{iso_week:02d}"


def fingerprint(visit_at: datetime | None, staff_name: str, service_ids: tuple[str, ...]) -> str:
    """A short digest of what a notice tells: when, with whom, what."""
    text = "|".join((str(epoch(visit_at)) if visit_at else "-", staff_name, ",".join(service_ids)))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
