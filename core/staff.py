"""Salon staff: who they are, how they join, and how far a wrong code gets them.

Staff join in Telegram through a single-use, expiring invite link (`staff-<token>`) or are added
by hand (`salonbot staff add`). "Removing" a staff member deactivates them: their ledger entries
keep pointing at who did what.

Guessing codes is bounded: after `LOCK_AFTER` wrong codes within `WINDOW`, code entry (redeem,
lookup, adjust) is locked for `LOCK_FOR`. The failures live on the staff row, so the bound holds
across replicas and restarts.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from core import clients
from core.models import Client, Company, Staff, StaffInvite, StaffRole
from core.phones import normalize_phone

LOCK_AFTER = 5
WINDOW = timedelta(minutes=15)
LOCK_FOR = timedelta(minutes=15)
INVITE_TTL = timedelta(hours=24)
INVITE_PREFIX = "staff-"


def _now() -> datetime:
    return datetime.now(UTC)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_invite(
    company: Company, role: StaffRole = StaffRole.STAFF, *, ttl: timedelta = INVITE_TTL
) -> tuple[str, StaffInvite]:
    """(the token to put in the link, the stored invite). The token is shown once."""
    # 24 bytes -> 32 URL-safe characters: `staff-` + token stays well inside Telegram's 64.
    token = secrets.token_urlsafe(24)
    invite = await StaffInvite.create(
        company=company, token_hash=_token_hash(token), role=role, expires_at=_now() + ttl
    )
    return token, invite


def invite_link(bot_username: str, token: str) -> str:
    return f"https://t.me/{bot_username}?start={INVITE_PREFIX}{token}"


@dataclass(frozen=True, slots=True)
class Joined:
    staff: Staff
    company: Company


async def accept_invite(
    token: str,
    *,
    telegram_user_id: int,
    name: str = "",
    now: datetime | None = None,
) -> Joined | None:
    """Use an invite once: the person becomes (or again becomes) staff of its salon with its
    role. None for an unknown, used or expired token — one answer for all three — except for
    the person who used it, still staff by it: the same link opened again (Telegram delivering
    the `/start` once more) is answered as the first time, and changes nothing."""
    now = now or _now()
    if not token or len(token) > 64:
        return None
    digest = _token_hash(token)
    async with in_transaction() as conn:
        # The conditional update is the single-use guard: of two racing taps, one updates a row.
        taken = (
            await StaffInvite.filter(token_hash=digest, used_at__isnull=True, expires_at__gt=now)
            .using_db(conn)
            .update(used_at=now)
        )
        if not taken:
            return await _joined_by(digest, telegram_user_id, conn)
        invite = await StaffInvite.get(token_hash=digest, using_db=conn)
        staff = await Staff.get_or_none(
            company_id=invite.company_id, telegram_user_id=telegram_user_id, using_db=conn
        )
        if staff is None:
            staff = await Staff.create(
                using_db=conn,
                company_id=invite.company_id,
                telegram_user_id=telegram_user_id,
                name=name[:255],
                role=invite.role,
            )
        else:
            staff.role = invite.role
            staff.active = True
            staff.name = staff.name or name[:255]
            await staff.save(using_db=conn, update_fields=["role", "active", "name"])
        invite.used_by_id = staff.id
        await invite.save(using_db=conn, update_fields=["used_by_id"])
        company = await Company.get(id=invite.company_id, using_db=conn)
    return Joined(staff, company)


async def _joined_by(digest: str, telegram_user_id: int, conn: BaseDBAsyncClient) -> Joined | None:
    """The staff membership a used invite gave this very person, while it lasts."""
    invite = await StaffInvite.get_or_none(
        token_hash=digest, used_at__isnull=False, used_by_id__isnull=False, using_db=conn
    )
    if invite is None:
        return None
    staff = await Staff.get_or_none(
        id=invite.used_by_id,
        company_id=invite.company_id,
        telegram_user_id=telegram_user_id,
        active=True,
        using_db=conn,
    )
    if staff is None:
        return None
    return Joined(staff, await Company.get(id=invite.company_id, using_db=conn))


class StaffError(Exception):
    """Printed by the command line as is."""


async def add_staff(
    company: Company,
    *,
    telegram_user_id: int | None = None,
    phone: str | None = None,
    name: str = "",
    role: StaffRole = StaffRole.STAFF,
) -> tuple[Staff, bool]:
    """(staff, created). Someone already there (by Telegram id or phone) is updated and
    reactivated. `phone` must already be normalised."""
    if telegram_user_id is None and phone is None:
        raise StaffError("a staff member needs a Telegram id or a phone")
    staff = None
    if telegram_user_id is not None:
        staff = await Staff.get_or_none(company_id=company.id, telegram_user_id=telegram_user_id)
    if staff is None and phone is not None:
        staff = await Staff.get_or_none(company_id=company.id, phone=phone)
    if staff is None:
        try:
            created = await Staff.create(
                company=company,
                telegram_user_id=telegram_user_id,
                phone=phone,
                name=name,
                role=role,
            )
        except IntegrityError:
            raise StaffError("that Telegram id or phone belongs to another staff member") from None
        return created, True
    staff.role = role
    staff.active = True
    staff.telegram_user_id = telegram_user_id or staff.telegram_user_id
    staff.phone = phone or staff.phone
    staff.name = name or staff.name
    try:
        await staff.save()
    except IntegrityError:
        raise StaffError("that Telegram id or phone belongs to another staff member") from None
    return staff, False


async def remove_staff(
    company: Company, *, telegram_user_id: int | None = None, phone: str | None = None
) -> Staff | None:
    """Deactivate (not delete): ledger entries keep pointing at who made them."""
    query = Staff.filter(company_id=company.id)
    if telegram_user_id is not None:
        query = query.filter(telegram_user_id=telegram_user_id)
    elif phone is not None:
        query = query.filter(phone=phone)
    else:
        raise StaffError("say who: --telegram-id or --phone")
    staff = await query.first()
    if staff is None:
        return None
    staff.active = False
    await staff.save(update_fields=["active"])
    return staff


async def active_staff(company_id: int, **identity: Any) -> Staff | None:
    """Read on every staff action: a removed member or a changed role takes effect at once."""
    return await Staff.get_or_none(company_id=company_id, active=True, **identity)


# --- the team, as an admin manages it in chat ---


async def team(company_id: int) -> list[Staff]:
    """The salon's active staff, admins first, then by name."""
    members = await Staff.filter(company_id=company_id, active=True).order_by("name", "id")
    return sorted(members, key=lambda m: m.role is not StaffRole.ADMIN)


async def open_invites(company_id: int, now: datetime | None = None) -> list[StaffInvite]:
    """Invites of the salon that can still be used (not used, not expired, not revoked)."""
    now = now or _now()
    return list(
        await StaffInvite.filter(
            company_id=company_id, used_at__isnull=True, expires_at__gt=now
        ).order_by("expires_at")
    )


async def revoke_invite(company_id: int, invite_id: int, now: datetime | None = None) -> bool:
    """Make an unused invite of this salon unusable; False when there was none to revoke. A
    revoked invite is stored as used, with nobody using it, so accept_invite refuses it with
    the same answer as a used one."""
    now = now or _now()
    revoked = await StaffInvite.filter(
        id=invite_id, company_id=company_id, used_at__isnull=True
    ).update(used_at=now, expires_at=now)
    return bool(revoked)


async def set_role(company_id: int, staff_id: int, role: StaffRole) -> Staff | None:
    """Change an active member's role; None when there is no such member in this salon."""
    changed = await Staff.filter(id=staff_id, company_id=company_id, active=True).update(role=role)
    return await Staff.get_or_none(id=staff_id) if changed else None


async def deactivate(company_id: int, staff_id: int) -> Staff | None:
    """Remove a member by id (deactivate: their ledger entries keep pointing at them)."""
    changed = await Staff.filter(id=staff_id, company_id=company_id, active=True).update(
        active=False
    )
    return await Staff.get_or_none(id=staff_id) if changed else None


# --- bounded guessing ---


def locked_until(staff: Staff, now: datetime | None = None) -> datetime | None:
    now = now or _now()
    if staff.locked_until is not None and staff.locked_until > now:
        return staff.locked_until
    return None


async def record_failure(staff_id: int, now: datetime | None = None) -> datetime | None:
    """Count a wrong code; the time code entry is locked until when this one tipped it over."""
    now = now or _now()
    async with in_transaction() as conn:
        query = Staff.filter(id=staff_id)
        if conn.capabilities.dialect == "postgres":
            # Two wrong codes at once must both count.
            query = query.select_for_update()
        staff = await query.using_db(conn).first()
        if staff is None:
            return None
        since = (now - WINDOW).timestamp()
        recent = [t for t in staff.code_failures or [] if t > since] + [now.timestamp()]
        if len(recent) >= LOCK_AFTER:
            staff.locked_until = now + LOCK_FOR
            recent = []
        staff.code_failures = recent
        await staff.save(using_db=conn, update_fields=["code_failures", "locked_until"])
    return staff.locked_until if staff.locked_until and staff.locked_until > now else None


@dataclass(frozen=True, slots=True)
class Found:
    client: Client | None
    # Set when code entry is locked: nothing was looked up.
    locked_until: datetime | None = None


async def find_client(
    staff: Staff, text: str, *, by_phone: bool = False, now: datetime | None = None
) -> Found:
    """The staff member's salon's client by code (or phone when `by_phone`). A malformed
    code, an unknown one and another salon's are all simply not found, and all count as a
    failure."""
    now = now or _now()
    until = locked_until(staff, now)
    if until is not None:
        return Found(None, until)
    client: Client | None
    if by_phone:
        phone = normalize_phone(text)
        client = (
            await Client.get_or_none(company_id=staff.company_id, phone=phone) if phone else None
        )
    else:
        client = await clients.find_by_code(staff.company_id, text)
    if client is None:
        await record_failure(staff.id, now)
    return Found(client)
