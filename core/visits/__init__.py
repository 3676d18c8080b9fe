"""The visit loop's rows: what is planned when a booking changes (planning), and their states
from claimed to sent, with the client's answers (store). The texts and the sending are the
bot's (bot/visits/)."""

from __future__ import annotations

from core.visits import kinds
from core.visits.planning import (
    Visit,
    out_of_quiet,
    plan_bookings,
    plan_digests,
    replan_company,
)
from core.visits.store import (
    Due,
    answer,
    due_messages,
    mark_dropped,
    mark_failed,
    mark_retry,
    mark_sent,
    note_own_change,
    reminders_of_visit,
    reopen,
)

__all__ = [
    "Due",
    "Visit",
    "answer",
    "due_messages",
    "kinds",
    "mark_dropped",
    "mark_failed",
    "mark_retry",
    "mark_sent",
    "note_own_change",
    "out_of_quiet",
    "plan_bookings",
    "plan_digests",
    "reminders_of_visit",
    "reopen",
    "replan_company",
]
