"""The data model. Money and points are integers (1 point = 1 rouble of bonus)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model


class IntegrationStatus(StrEnum):
    PENDING_WHATSAPP = "pending_whatsapp"
    ACTIVE = "active"
    FROZEN = "frozen"
    UNINSTALLED = "uninstalled"


class StaffRole(StrEnum):
    STAFF = "staff"
    ADMIN = "admin"


class BookingStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    COMPLETED = "completed"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"


class LedgerKind(StrEnum):
    ACCRUAL = "accrual"
    REDEMPTION = "redemption"
    REVERSAL = "reversal"
    MANUAL = "manual"
    WELCOME = "welcome"
    EXPIRY = "expiry"


class InboxStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    DEAD = "dead"


class Company(Model):
    id = fields.IntField(primary_key=True)
    yclients_id = fields.BigIntField(unique=True)
    title = fields.CharField(max_length=255, default="")
    timezone = fields.CharField(max_length=64, default="Europe/Moscow")
    integration_status = fields.CharEnumField(
        IntegrationStatus, max_length=32, default=IntegrationStatus.PENDING_WHATSAPP
    )
    marketplace_user_id = fields.BigIntField(null=True)
    marketplace_user_name = fields.CharField(max_length=255, null=True)
    marketplace_user_email = fields.CharField(max_length=255, null=True)
    marketplace_user_phone = fields.CharField(max_length=32, null=True)
    # When the marketplace user above was bound as the salon's owner: the first signed user
    # YClients confirmed (core.marketplace.registration). Unset, the user fields are
    # informational only.
    marketplace_owner_bound_at = fields.DatetimeField(null=True)
    # sha256 hex of the salon's api key; the key itself is shown once and never stored.
    api_key_hash = fields.CharField(max_length=64, null=True, unique=True)
    hook_token = fields.CharField(max_length=64, unique=True)
    bookform_url = fields.CharField(max_length=512, null=True)
    # A salon set up by hand may bring its own user token (records need one); None means
    # YCLIENTS_USER_TOKEN, or the partner token alone.
    yclients_user_token = fields.CharField(max_length=255, null=True)
    # Services and masters from YClients, for the bot's booking menu (refreshed by the sync).
    catalogue: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    whatsapp_session = fields.CharField(max_length=64, null=True, unique=True)
    whatsapp_connected = fields.BooleanField(default=False)
    whatsapp_phone = fields.CharField(max_length=32, null=True)
    accrual_percent = fields.SmallIntField(default=5)
    welcome_bonus = fields.IntField(default=0)
    max_redeem_percent = fields.SmallIntField(default=30)
    default_locale = fields.CharField(max_length=8, default="ru")
    # The visit loop and the weekly digest, per salon (validated and changed only through
    # core.salon_settings, which documents each key; "off" turns a time off).
    reminder_day_before_at = fields.CharField(max_length=5, default="18:00")
    reminder_hours_before = fields.SmallIntField(default=2)
    quiet_hours = fields.CharField(max_length=11, default="21:00-09:00")
    silent_alert_hours_before = fields.SmallIntField(default=3)
    # None: no after-visit question.
    review_delay_hours = fields.SmallIntField(null=True, default=2)
    review_url = fields.CharField(max_length=512, default="")
    digest_at = fields.CharField(max_length=9, default="mon 10:00")
    # The WhatsApp watchdog (core.whatsapp.watchdog): when it restarted the session lately (epoch
    # seconds; WhatsApp refuses links for hours after too many attempts, so restarts are
    # capped), and when it told the salon's admins the session is down (None while it works).
    whatsapp_restarts: fields.JSONField[list[float]] = fields.JSONField(default=list)
    whatsapp_alerted_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "company"


class Client(Model):
    id = fields.IntField(primary_key=True)
    company: fields.ForeignKeyRelation[Company] = fields.ForeignKeyField(
        "models.Company", related_name="clients", on_delete=fields.CASCADE
    )
    company_id: int
    phone = fields.CharField(max_length=16, null=True)
    name = fields.CharField(max_length=255, default="")
    email = fields.CharField(max_length=255, null=True)
    yclients_client_id = fields.BigIntField(null=True)
    telegram_user_id = fields.BigIntField(null=True)
    whatsapp_chat_id = fields.CharField(max_length=64, null=True)
    # The MAX user id (bot.max): tied when the person shares a phone MAX vouches for.
    max_user_id = fields.BigIntField(null=True)
    locale = fields.CharField(max_length=8, null=True)
    code = fields.CharField(max_length=9, unique=True)
    # Cached sum of the client's ledger entries: changes only together with an entry.
    balance = fields.IntField(default=0)
    last_channel = fields.CharField(max_length=16, null=True)
    # The client's say (core.salon_settings has the salon's): no reminders or after-visit
    # questions; nothing unasked at all (booking and balance notices included).
    reminders_off = fields.BooleanField(default=False)
    messages_off = fields.BooleanField(default=False)
    # Channel name -> when delivery there failed for good (blocked bot, chat gone); bot.outbound
    # skips those channels until the client writes there again. The one record of it (a
    # Telegram block included: `telegram_unreachable_at` moved in here, migration 0010).
    unreachable: fields.JSONField[dict[str, str]] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "client"
        # NULLs never collide in a UNIQUE constraint (SQLite and PostgreSQL alike),
        # so these hold exactly "where set".
        unique_together = (
            ("company", "phone"),
            ("company", "telegram_user_id"),
            ("company", "whatsapp_chat_id"),
            ("company", "max_user_id"),
        )
        constraints = (CheckConstraint(check="balance >= 0", name="client_balance_nonnegative"),)


class Staff(Model):
    id = fields.IntField(primary_key=True)
    company: fields.ForeignKeyRelation[Company] = fields.ForeignKeyField(
        "models.Company", related_name="staff", on_delete=fields.CASCADE
    )
    company_id: int
    telegram_user_id = fields.BigIntField(null=True)
    phone = fields.CharField(max_length=16, null=True)
    name = fields.CharField(max_length=255, default="")
    role = fields.CharEnumField(StaffRole, max_length=16, default=StaffRole.STAFF)
    active = fields.BooleanField(default=True)
    # Guessing codes is bounded: the times (epoch seconds) of recent wrong codes, and until when
    # code entry is locked after too many of them (core.staff).
    code_failures: fields.JSONField[list[float]] = fields.JSONField(default=list)
    locked_until = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "staff"
        unique_together = (("company", "telegram_user_id"), ("company", "phone"))


class WhatsAppChat(Model):
    """One person's WhatsApp chat with one salon's number: where their conversation stands
    (the dialog's flow state and data, what the last answer offered) and the phone WhatsApp
    vouches for, when it shows one (a `…@c.us` sender, or a hidden `…@lid` one it maps)."""

    id = fields.IntField(primary_key=True)
    company: fields.ForeignKeyRelation[Company] = fields.ForeignKeyField(
        "models.Company", related_name="whatsapp_chats", on_delete=fields.CASCADE
    )
    company_id: int
    # Exactly as WhatsApp gave it (`79001234567@c.us` or `…@lid`): answers go to this id.
    chat_id = fields.CharField(max_length=64)
    phone = fields.CharField(max_length=16, null=True)
    state = fields.CharField(max_length=64, null=True)
    data: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    # The numbered choices and the confirmation the last answer offered (bot.whatsapp).
    offered: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    # When the gateway was last asked for the phone behind a hidden `@lid` id.
    lid_checked_at = fields.DatetimeField(null=True)
    # The last send that failed (never retried blindly: kept here and in the log and metrics).
    send_failed_at = fields.DatetimeField(null=True)
    send_error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "whatsapp_chat"
        unique_together = (("company", "chat_id"),)


class MaxChat(Model):
    """One person's dialog with the MAX bot (one Salonbot bot for every salon, so not per
    salon): where their conversation stands (the dialog's flow state and data, the salon it is
    bound to among them) and the phone MAX vouched for (a shared contact whose hash verified
    and which is the sender's own), by which staff are known."""

    id = fields.IntField(primary_key=True)
    user_id = fields.BigIntField(unique=True)
    phone = fields.CharField(max_length=16, null=True)
    state = fields.CharField(max_length=64, null=True)
    data: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "max_chat"


class StaffInvite(Model):
    """A single-use, expiring link for joining a salon's staff in Telegram (`staff-<token>`).

    A random token rather than a JWT: Telegram's start parameter holds at most 64 characters.
    Only the token's sha256 is stored.
    """

    id = fields.IntField(primary_key=True)
    company: fields.ForeignKeyRelation[Company] = fields.ForeignKeyField(
        "models.Company", related_name="staff_invites", on_delete=fields.CASCADE
    )
    company_id: int
    token_hash = fields.CharField(max_length=64, unique=True)
    role = fields.CharEnumField(StaffRole, max_length=16, default=StaffRole.STAFF)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    used_by: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="invites", null=True, on_delete=fields.SET_NULL
    )
    used_by_id: int | None
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "staff_invite"


class Booking(Model):
    id = fields.IntField(primary_key=True)
    company: fields.ForeignKeyRelation[Company] = fields.ForeignKeyField(
        "models.Company", related_name="bookings", on_delete=fields.CASCADE
    )
    company_id: int
    yclients_record_id = fields.BigIntField()
    client: fields.ForeignKeyNullableRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="bookings", null=True, on_delete=fields.SET_NULL
    )
    client_id: int | None
    visit_at = fields.DatetimeField(null=True)
    services: fields.JSONField[list[dict[str, Any]]] = fields.JSONField(default=list)
    staff_name = fields.CharField(max_length=255, default="")
    cost = fields.IntField(default=0)
    status = fields.CharEnumField(BookingStatus, max_length=16, default=BookingStatus.PENDING)
    attendance = fields.SmallIntField(default=0)
    deleted = fields.BooleanField(default=False)
    last_change_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "booking"
        unique_together = (("company", "yclients_record_id"),)


class LedgerEntry(Model):
    """Append-only: a correction is a new entry, never an update."""

    id = fields.BigIntField(primary_key=True)
    company: fields.ForeignKeyRelation[Company] = fields.ForeignKeyField(
        "models.Company", related_name="ledger", on_delete=fields.CASCADE
    )
    company_id: int
    client: fields.ForeignKeyRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="ledger", on_delete=fields.CASCADE
    )
    client_id: int
    kind = fields.CharEnumField(LedgerKind, max_length=16)
    amount = fields.IntField()
    balance_after = fields.IntField()
    booking: fields.ForeignKeyNullableRelation[Booking] = fields.ForeignKeyField(
        "models.Booking", related_name="ledger", null=True, on_delete=fields.SET_NULL
    )
    booking_id: int | None
    staff: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="ledger", null=True, on_delete=fields.SET_NULL
    )
    staff_id: int | None
    idempotency_key = fields.CharField(max_length=128, unique=True)
    reason = fields.TextField(default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "ledger_entry"
        indexes = (("client_id", "id"), ("booking_id",))


class InboxEvent(Model):
    """Every inbound webhook, stored before it is acted on."""

    id = fields.BigIntField(primary_key=True)
    source = fields.CharField(max_length=16)
    dedupe_key = fields.CharField(max_length=255)
    # No foreign key in the database: every stored webhook would take a KEY SHARE lock on its
    # salon's row, and with many concurrent webhooks of one salon those locks (multixacts)
    # cost more than the rest of the INSERT (bench/README.md). The inbox is a log of what
    # came in; handlers look the salon up and cope with one that is gone.
    company: fields.ForeignKeyNullableRelation[Company] = fields.ForeignKeyField(
        "models.Company",
        related_name="inbox",
        null=True,
        on_delete=fields.NO_ACTION,
        db_constraint=False,
    )
    company_id: int | None
    payload: fields.JSONField[dict[str, Any]] = fields.JSONField()
    status = fields.CharEnumField(InboxStatus, max_length=16, default=InboxStatus.PENDING)
    received_at = fields.DatetimeField(auto_now_add=True)
    next_attempt_at = fields.DatetimeField(null=True)
    processed_at = fields.DatetimeField(null=True)
    attempts = fields.IntField(default=0)
    last_error = fields.TextField(null=True)

    class Meta:
        table = "inbox_event"
        unique_together = (("source", "dedupe_key"),)
        indexes = (("status", "next_attempt_at"),)


class MarketplaceEvent(Model):
    """Audit log of a salon's marketplace lifecycle."""

    id = fields.BigIntField(primary_key=True)
    company: fields.ForeignKeyNullableRelation[Company] = fields.ForeignKeyField(
        "models.Company", related_name="marketplace_events", null=True, on_delete=fields.SET_NULL
    )
    company_id: int | None
    kind = fields.CharField(max_length=32)
    details: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "marketplace_event"


# A signed registration redirect seen for a salon: the signature's sha256 and when it was first
# used, so a replayed URL is recognised (core.marketplace.registration).
class RedirectUse(Model):
    id = fields.BigIntField(primary_key=True)
    signature_hash = fields.CharField(max_length=64)
    yclients_id = fields.BigIntField()
    first_used_at = fields.DatetimeField()

    class Meta:
        table = "marketplace_redirect_use"
        unique_together = (("signature_hash", "yclients_id"),)


# An api key sent to YClients whose receipt is unconfirmed (the callback's answer was lost, or
# YClients answered "already installed"). Each one authenticates until one is proven by a
# request; then it becomes the salon's key and the others go (core.companies).
class PendingApiKey(Model):
    id = fields.IntField(primary_key=True)
    company: fields.ForeignKeyRelation[Company] = fields.ForeignKeyField(
        "models.Company", related_name="pending_api_keys", on_delete=fields.CASCADE
    )
    company_id: int
    key_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "pending_api_key"


class SyncState(Model):
    id = fields.IntField(primary_key=True)
    company: fields.OneToOneRelation[Company] = fields.OneToOneField(
        "models.Company", related_name="sync_state", on_delete=fields.CASCADE
    )
    company_id: int
    changed_after = fields.DatetimeField(null=True)
    last_run_at = fields.DatetimeField(null=True)
    last_status = fields.CharField(max_length=16, default="never")
    last_error = fields.TextField(null=True)
    last_stats: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "sync_state"


class CronTick(Model):
    """The last tick of each cron job that ran, across replicas: a replica whose clock lags
    (or leads) fires the same tick again after the first one is done, and skips it here."""

    name = fields.CharField(max_length=64, primary_key=True)
    tick = fields.DatetimeField()

    class Meta:
        table = "cron_tick"


class SettingChange(Model):
    """The salon's audit log of its settings: who changed which key from what to what."""

    id = fields.BigIntField(primary_key=True)
    company: fields.ForeignKeyRelation[Company] = fields.ForeignKeyField(
        "models.Company", related_name="setting_changes", on_delete=fields.CASCADE
    )
    company_id: int
    # "cli", "staff:<id>", "owner-page", …
    actor = fields.CharField(max_length=64)
    key = fields.CharField(max_length=48)
    old_value = fields.TextField(default="")
    new_value = fields.TextField(default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "setting_change"


class ScheduledStatus(StrEnum):
    PENDING = "pending"
    # Claimed by a dispatcher; a row left here by a crash is never sent again (at most once).
    SENDING = "sending"
    SENT = "sent"
    # No longer wanted: the record moved or was cancelled, the client said stop, too late.
    DROPPED = "dropped"
    FAILED = "failed"


class ScheduledMessage(Model):
    """A message the salon sends unasked at `due_at`: a booking notice, a reminder, a
    silent-client alert, an after-visit question, a digest. Rows, not timers: they survive
    restarts and are claimed with FOR UPDATE SKIP LOCKED by one replica."""

    id = fields.BigIntField(primary_key=True)
    company: fields.ForeignKeyRelation[Company] = fields.ForeignKeyField(
        "models.Company", related_name="scheduled_messages", on_delete=fields.CASCADE
    )
    company_id: int
    booking: fields.ForeignKeyNullableRelation[Booking] = fields.ForeignKeyField(
        "models.Booking", related_name="scheduled_messages", null=True, on_delete=fields.CASCADE
    )
    booking_id: int | None
    client: fields.ForeignKeyNullableRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="scheduled_messages", null=True, on_delete=fields.CASCADE
    )
    client_id: int | None
    kind = fields.CharField(max_length=24)
    # Unique per purpose, e.g. "day_before:<booking id>": a replayed change plans nothing new.
    key = fields.CharField(max_length=128, unique=True)
    due_at = fields.DatetimeField()
    status = fields.CharEnumField(ScheduledStatus, max_length=16, default=ScheduledStatus.PENDING)
    attempts = fields.SmallIntField(default=0)
    claimed_at = fields.DatetimeField(null=True)
    sent_at = fields.DatetimeField(null=True)
    channel = fields.CharField(max_length=16, null=True)
    # What the client answered (confirmed, cancelled, move, a rating…), and when.
    answer = fields.CharField(max_length=16, null=True)
    answered_at = fields.DatetimeField(null=True)
    payload: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    last_error = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "scheduled_message"
        indexes = (("status", "due_at"), ("booking_id",))


class VisitReview(Model):
    """A client's answer to "how was it?" about one visit."""

    id = fields.BigIntField(primary_key=True)
    company: fields.ForeignKeyRelation[Company] = fields.ForeignKeyField(
        "models.Company", related_name="reviews", on_delete=fields.CASCADE
    )
    company_id: int
    booking: fields.OneToOneNullableRelation[Booking] = fields.OneToOneField(
        "models.Booking", related_name="review", null=True, on_delete=fields.SET_NULL
    )
    booking_id: int | None
    client: fields.ForeignKeyNullableRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="reviews", null=True, on_delete=fields.SET_NULL
    )
    client_id: int | None
    rating = fields.SmallIntField()
    comment = fields.TextField(default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "visit_review"
        indexes = (("company_id", "created_at"),)


class AdminRelay(Model):
    """A client's question as it reached one of the salon's staff: the message the staff
    member got (its channel, chat and message id), so that their reply to it goes back to the
    client (bot.dialog.questions). Who may reply is read from Staff each time, never from here."""

    id = fields.BigIntField(primary_key=True)
    company: fields.ForeignKeyRelation[Company] = fields.ForeignKeyField(
        "models.Company", related_name="admin_relays", on_delete=fields.CASCADE
    )
    company_id: int
    client: fields.ForeignKeyRelation[Client] = fields.ForeignKeyField(
        "models.Client", related_name="admin_relays", on_delete=fields.CASCADE
    )
    client_id: int
    staff: fields.ForeignKeyNullableRelation[Staff] = fields.ForeignKeyField(
        "models.Staff", related_name="admin_relays", null=True, on_delete=fields.SET_NULL
    )
    staff_id: int | None
    # The staff member's side: "telegram" + chat id + message id, "whatsapp" + chat id + the
    # WhatsApp message id.
    channel = fields.CharField(max_length=16)
    chat = fields.CharField(max_length=64)
    message_id = fields.CharField(max_length=128)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "admin_relay"
        unique_together = (("channel", "chat", "message_id"),)
