"""Marketplace onboarding: how a salon joins from the YClients Marketplace, and its lifecycle.

The owner's browser arrives at the registration redirect with `user_data` signed by YClients;
the salon is registered (`pending_whatsapp`) and the browser gets a short-lived onboarding
token (a JWT) for the page; the page links the salon's WhatsApp; the owner activates and we
send YClients the activation callback. Lifecycle webhooks (`uninstall`, `freeze`) and WhatsApp
`session.status` events keep the state current afterwards.

Decisions worth knowing:

- YClients signs only `user_data` (the user: id, name, phone, email), not `salon_id`: a good
  signature proves which YClients user came, not which salon they own. So a salon is bound to
  the first signed user whom YClients confirms (the app's install status is `pending`: that
  salon's owner has just pressed Connect), and only that user opens it afterwards; a stored
  owner is never overwritten (`admit_redirect`, README "Security notes").
- Every status change is a compare-and-set `UPDATE … WHERE integration_status = <expected>`,
  so handlers are idempotent by state (not by a hash of the event body) and a stale read can
  never demote an active salon.
- No database transaction is open across an HTTP call: the api key hash is committed before
  the callback, and the outcome is written after it.
- A status read from the gateway and a webhook may race; `whatsapp_*` audit events carry the
  moment they describe (`at_ms`), and an older observation never overwrites a newer one.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import jwt
from tortoise.exceptions import IntegrityError

from core import companies
from core.i18n import _, gettext
from core.locks import run_exclusive
from core.models import (
    Company,
    InboxEvent,
    IntegrationStatus,
    MarketplaceEvent,
    RedirectUse,
)
from core.whatsapp import (
    WEBHOOK_PATH,
    GatewayError,
    SessionInfo,
    SessionNotFound,
    SessionStatus,
    phone_from_chat_id,
)
from core.yclients import AlreadyInstalled, NotFound, YClientsClient, YClientsError

if TYPE_CHECKING:
    from core.ledger import LedgerResult
    from core.settings import Settings
    from core.whatsapp import WhatsAppGateway

log = logging.getLogger(__name__)

MARKETPLACE = "marketplace"
WHATSAPP = "whatsapp"
# Branches one redirect may name; more is refused, never cut silently.
MAX_BRANCHES = 10
# A signed redirect URL opens its salons again within this window (a refresh, a second tab);
# later, only while YClients reports the salon freshly `pending`.
REDIRECT_GRACE = timedelta(minutes=10)

# --- the signed registration redirect ------------------------------------------------------------


class SignatureError(Exception):
    """The redirect's `user_data` is unsigned or its signature is wrong; the text says which."""


class SignatureMissing(SignatureError):
    pass


class SignatureInvalid(SignatureError):
    pass


def decode_user_data(raw: str) -> bytes:
    """The JSON bytes of `user_data`: URL-safe base64, padding optional.

    Plain `b64decode` silently drops `-` and `_`, which changes the bytes and breaks the
    signature, so the alphabet is translated and the result validated strictly. A `+` of a
    standard-alphabet sender arrives as a space once the query string is decoded: put it back.
    """
    text = raw.strip().replace(" ", "+").rstrip("=")
    if len(text) % 4 == 1:
        raise SignatureInvalid("user_data is not base64 (wrong length)")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text.translate(str.maketrans("-_", "+/")), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureInvalid("user_data is not URL-safe base64") from None


def sign_user_data(raw_json: bytes, partner_token: str) -> str:
    """Hex HMAC-SHA256 of the decoded JSON keyed with the partner token, as YClients signs."""
    return hmac.new(partner_token.encode(), raw_json, hashlib.sha256).hexdigest()


def encode_user_data(raw_json: bytes) -> str:
    """URL-safe base64 without padding, the form YClients sends (for tests and tools)."""
    return base64.urlsafe_b64encode(raw_json).decode("ascii").rstrip("=")


@dataclass(frozen=True, slots=True)
class MarketplaceUser:
    """The YClients user who opened the app, from signed `user_data`."""

    id: int | None
    name: str | None
    email: str | None
    phone: str | None
    salon_name: str | None
    salon_ids: tuple[int, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MarketplaceUser:
        def text(name: str, limit: int) -> str | None:
            value = data.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                value = str(value)
            return (value.strip()[:limit] or None) if isinstance(value, str) else None

        raw_id = data.get("id", data.get("user_id"))
        user_id = as_int(raw_id)
        listed = data.get("salon_ids")
        named = [data.get("salon_id"), *(listed if isinstance(listed, list) else [])]
        return cls(
            id=user_id,
            name=text("name", 255),
            email=text("email", 255),
            phone=text("phone", 32),
            salon_name=text("salon_name", 255),
            salon_ids=tuple(i for i in (as_int(v) for v in named) if i is not None),
        )


def verify_user_data(
    user_data: str | None, user_data_sign: str | None, partner_token: str
) -> MarketplaceUser:
    """The user from a signed redirect; SignatureMissing/SignatureInvalid otherwise.

    The signature is checked (constant time) on the decoded bytes before the JSON is parsed.
    """
    if not user_data or not user_data_sign:
        raise SignatureMissing(
            "the request carries no signed user_data (enable 'transmit user data' for the "
            "application in the YClients developer cabinet)"
        )
    if not partner_token:
        raise SignatureInvalid("YCLIENTS_PARTNER_TOKEN is not set: nothing to verify with")
    raw = decode_user_data(user_data)
    expected = sign_user_data(raw, partner_token)
    given = user_data_sign.strip().lower()
    if not given.isascii() or not hmac.compare_digest(given.encode(), expected.encode()):
        raise SignatureInvalid("user_data_sign does not match user_data")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise SignatureInvalid("user_data is not JSON") from None
    if not isinstance(data, dict):
        raise SignatureInvalid("user_data is not a JSON object")
    return MarketplaceUser.from_json(data)


_BRANCH_KEY = re.compile(r"^salon_ids\[(\d*)\]$")


class TooManyBranches(ValueError):
    """The redirect names more than MAX_BRANCHES salons."""


def salon_ids_from_query(pairs: Iterable[tuple[str, str]]) -> list[int]:
    """`salon_id`, or the branches `salon_ids[0]`, `salon_ids[1]`, … / `salon_ids[]`, in order,
    each once; values that are not positive integers are ignored. TooManyBranches above
    MAX_BRANCHES."""
    single: list[int] = []
    indexed: list[tuple[int, int, int]] = []
    for position, (key, value) in enumerate(pairs):
        number = as_int(value.strip())
        if number is None or number <= 0:
            continue
        if key == "salon_id":
            single.append(number)
            continue
        match = _BRANCH_KEY.match(key)
        if match:
            index = int(match.group(1)) if match.group(1) else 10**6 + position
            indexed.append((index, position, number))
    ordered = single + [number for _, _, number in sorted(indexed)]
    unique = list(dict.fromkeys(ordered))
    if len(unique) > MAX_BRANCHES:
        raise TooManyBranches(f"{len(unique)} salons in one redirect; at most {MAX_BRANCHES}")
    return unique


# --- the onboarding token ------------------------------------------------------------------------

# Names, not secrets.
TOKEN_ISSUER = "salonbot"  # noqa: S105
TOKEN_AUDIENCE = "salonbot:marketplace-onboarding"  # noqa: S105
TOKEN_PURPOSE = "marketplace-onboarding"  # noqa: S105
TOKEN_TTL = timedelta(hours=1)
_ALGORITHM = "HS256"


class TokenInvalid(Exception):
    """The onboarding token is expired, tampered with, or not an onboarding token."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.expired = expired


@dataclass(frozen=True, slots=True)
class OnboardingClaims:
    yclients_id: int
    # The branches registered in the same redirect, this one included.
    branches: tuple[int, ...]
    jti: str
    expires_at: datetime


def issue_token(
    secret: str,
    yclients_id: int,
    branches: Sequence[int] = (),
    *,
    now: datetime | None = None,
    purpose: str = TOKEN_PURPOSE,
    ttl: timedelta = TOKEN_TTL,
) -> str:
    issued = now or datetime.now(UTC)
    claims = {
        "iss": TOKEN_ISSUER,
        "aud": TOKEN_AUDIENCE,
        "sub": str(yclients_id),
        "purpose": purpose,
        "branches": [int(b) for b in branches] or [yclients_id],
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def read_token(secret: str, token: str) -> OnboardingClaims:
    """The claims of a valid onboarding token; TokenInvalid otherwise.

    The algorithm list is fixed (no `none`, no RS/HS confusion); `exp`, `aud`, `iss`, `sub`,
    `jti` and the purpose are all required.
    """
    if not token or len(token) > 4096:
        raise TokenInvalid("no token")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],
            audience=TOKEN_AUDIENCE,
            issuer=TOKEN_ISSUER,
            options={"require": ["exp", "iat", "aud", "iss", "sub", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenInvalid("the token has expired", expired=True) from None
    except jwt.InvalidTokenError as exc:
        raise TokenInvalid(f"invalid token: {exc}") from None
    if claims.get("purpose") != TOKEN_PURPOSE:
        raise TokenInvalid("the token is not an onboarding token")
    yclients_id = as_int(claims.get("sub"))
    if yclients_id is None:
        raise TokenInvalid("the token names no salon")
    raw_branches = claims.get("branches")
    branches = tuple(b for b in (as_int(v) for v in raw_branches or []) if b is not None) or (
        yclients_id,
    )
    return OnboardingClaims(
        yclients_id=yclients_id,
        branches=branches,
        jti=str(claims["jti"]),
        expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
    )


# --- registration --------------------------------------------------------------------------------


@dataclass(slots=True)
class Registration:
    company: Company
    created: bool = False
    # An uninstalled salon that came back: fresh hook token, no api key, WhatsApp unlinked.
    restarted: bool = False
    unfrozen: bool = False
    # This redirect made its user the salon's owner.
    bound: bool = False


PENDING = "pending"
ACTIVE = "active"
NOT_INSTALLED = "not_installed"


def application_status(data: Mapping[str, Any]) -> str | None:
    """The app's status in a salon from `GET /marketplace/salon/{id}/application/{app}`:
    `pending`, `active`, `uninstalled` (lower case), None when the answer says none.

    The documented answer keeps it in `connection_status.status`; an older top-level
    `status` (a string or a numeric 1) and `active`/`is_active` flags are read too.
    """
    connection = data.get("connection_status")
    status = connection.get("status") if isinstance(connection, Mapping) else connection
    if status is None:
        status = data.get("status")
    if isinstance(status, str) and status.strip():
        return status.strip().lower()
    if isinstance(status, int) and not isinstance(status, bool):
        return ACTIVE if status == 1 else str(status)
    if any(data.get(flag) is True for flag in ("active", "is_active")):
        return ACTIVE
    return None


def application_is_active(data: Mapping[str, Any]) -> bool:
    """Whether the install status says the app is active in the salon."""
    return application_status(data) == ACTIVE


async def audit(company_id: int | None, kind: str, **details: Any) -> MarketplaceEvent:
    return await MarketplaceEvent.create(company_id=company_id, kind=kind[:32], details=details)


async def _set_status(
    company_id: int, expected: Iterable[IntegrationStatus], new: IntegrationStatus, **values: Any
) -> bool:
    """Compare-and-set of the integration status; True when this call made the change."""
    changed = await Company.filter(id=company_id, integration_status__in=list(expected)).update(
        integration_status=new, **values
    )
    return bool(changed)


def _company_values(info: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "title": str(info.get("title") or "")[:255],
        "timezone": str(info.get("timezone_name") or "Europe/Moscow")[:64],
        "bookform_url": companies.default_bookform(dict(info)),
    }


class RedirectRefused(Exception):
    """The redirect may not open (one of) its salons; `reason` says why:

    - `no_user`: the signed user data carries no user id, so nobody can be bound;
    - `not_owner`: the salon is bound to another marketplace user, or YClients reports the app
      active there and this user cannot be shown to be its owner;
    - `not_connected`: YClients reports the app not installed (`not_found`: not at all) or
      uninstalled in the salon, so its owner has not pressed Connect;
    - `unknown_salon`: YClients has no such salon;
    - `replayed`: the signed URL was used for the salon longer ago than REDIRECT_GRACE and
      YClients does not report the salon `pending` again;
    - `not_configured`: YCLIENTS_APP_ID is unset, so nothing can be confirmed.
    """

    def __init__(self, reason: str, yclients_id: int | None = None, detail: str = "") -> None:
        super().__init__(f"{reason} (salon {yclients_id}): {detail}" if detail else reason)
        self.reason = reason
        self.yclients_id = yclients_id


def signature_hash(user_data_sign: str) -> str:
    return hashlib.sha256(user_data_sign.strip().lower().encode()).hexdigest()


def _is_bound(company: Company | None) -> bool:
    return company is not None and company.marketplace_owner_bound_at is not None


@dataclass(slots=True)
class Admission:
    """One salon of a redirect that passed `admit_redirect`, ready for `register_salon`."""

    info: dict[str, Any]
    # The install status read for this redirect (None when none was needed).
    app_status: str | None = None
    # YClients reported `pending` for it just now.
    confirmed_pending: bool = False


async def admit_redirect(
    salon_ids: Sequence[int],
    *,
    user: MarketplaceUser | None,
    signature: str | None,
    client: YClientsClient,
    application_id: int | None,
    now: datetime,
) -> list[Admission]:
    """Decide whether a redirect may open its salons; RedirectRefused (for the first salon
    refused: one refusal refuses the whole redirect) or a YClientsError otherwise.

    Writes nothing: every YClients read happens here, before any salon is touched, so the
    caller can bound the whole step by a deadline. `user` is None for an unsigned redirect
    (MARKETPLACE_ALLOW_UNSIGNED): it opens only salons bound to nobody.

    A signed user opens a salon bound to them. Everything else needs YClients to report the
    app `pending` in the salon (its owner has just pressed Connect): a salon we do not know, one
    bound to nobody (set up by hand, or registered before owners were bound; except that a
    legacy salon whose stored user is this user is theirs), an uninstalled one coming back
    (whoever it was bound to), and a salon for which this signed URL was first used longer
    ago than REDIRECT_GRACE.
    """
    signed = user is not None
    if user is not None and user.id is None:
        raise RedirectRefused("no_user", None, "the signed user data carries no user id")
    known = {c.yclients_id: c for c in await Company.filter(yclients_id__in=list(salon_ids))}
    replayed: set[int] = set()
    if signature is not None:
        uses = await RedirectUse.filter(
            signature_hash=signature_hash(signature), yclients_id__in=list(salon_ids)
        )
        replayed = {u.yclients_id for u in uses if now - u.first_used_at > REDIRECT_GRACE}
    needs_pending: dict[int, str] = {}
    for salon_id in salon_ids:
        company = known.get(salon_id)
        uninstalled = (
            company is not None and company.integration_status is IntegrationStatus.UNINSTALLED
        )
        # Unsigned, even an uninstalled salon's owner stays: only a signed user rebinds it.
        if _is_bound(company) and (not uninstalled or not signed):
            if company is None:
                raise RuntimeError("a bound salon that does not exist")
            if user is None or company.marketplace_user_id != user.id:
                raise RedirectRefused("not_owner", salon_id, "bound to another user")
        if not signed:
            continue
        if user is None:
            raise RuntimeError("a signed redirect without a user")
        if company is None:
            needs_pending[salon_id] = "new"
        elif uninstalled:
            needs_pending[salon_id] = "reinstall"
        elif not _is_bound(company) and company.marketplace_user_id != user.id:
            needs_pending[salon_id] = "unbound"
        elif salon_id in replayed:
            needs_pending[salon_id] = "replayed"
    frozen = {i for i, c in known.items() if c.integration_status is IntegrationStatus.FROZEN}
    to_read = [i for i in salon_ids if i in needs_pending or i in frozen]
    if to_read and not application_id:
        if needs_pending:
            raise RedirectRefused("not_configured", to_read[0], "YCLIENTS_APP_ID is not set")
        to_read = []
    statuses: dict[int, str | None] = {}
    for salon_id in to_read:
        if application_id is None:
            raise RuntimeError("salon statuses to read without an application id")
        try:
            statuses[salon_id] = application_status(
                await client.salon_application(salon_id, application_id)
            )
        except NotFound:
            statuses[salon_id] = NOT_INSTALLED
    for salon_id, why in needs_pending.items():
        status = statuses.get(salon_id)
        if status == PENDING:
            continue
        if why == "replayed":
            raise RedirectRefused("replayed", salon_id, f"the app is {status} in YClients")
        if status == ACTIVE:
            raise RedirectRefused("not_owner", salon_id, "active, and not bound to this user")
        raise RedirectRefused(
            "not_found" if status == NOT_INSTALLED else "not_connected",
            salon_id,
            f"the app is {status} in YClients",
        )
    admissions = []
    for salon_id in salon_ids:
        try:
            info = await client.company(salon_id)
        except NotFound:
            raise RedirectRefused("unknown_salon", salon_id, "YClients has no such salon") from None
        admissions.append(
            Admission(
                {**info, "id": salon_id},
                app_status=statuses.get(salon_id),
                confirmed_pending=statuses.get(salon_id) == PENDING,
            )
        )
    return admissions


async def record_redirect_use(signature: str, salon_ids: Sequence[int], now: datetime) -> None:
    """Remember that this signed URL opened these salons. A use older than REDIRECT_GRACE that
    got through (YClients reported the salon `pending` again) starts a new window."""
    digest = signature_hash(signature)
    for salon_id in salon_ids:
        use = await RedirectUse.get_or_none(signature_hash=digest, yclients_id=salon_id)
        if use is None:
            # The same URL, twice at once: either row is the first use.
            with contextlib.suppress(IntegrityError):
                await RedirectUse.create(
                    signature_hash=digest, yclients_id=salon_id, first_used_at=now
                )
        elif now - use.first_used_at > REDIRECT_GRACE:
            await RedirectUse.filter(id=use.id).update(first_used_at=now)


async def register_salon(
    admission: Admission | Mapping[str, Any],
    *,
    user: MarketplaceUser | None,
    signed: bool,
    branches: Sequence[int],
    now: datetime | None = None,
) -> Registration:
    """Create or refresh a salon that `admit_redirect` let through.

    New → `pending_whatsapp`. Uninstalled → starts again cleanly, its owner binding cleared
    (YClients has just reported it `pending`: a new installation). Active stays active. Frozen
    is lifted only when YClients reported the application active. A signed user is bound as
    the owner of a salon bound to nobody (compare-and-set: the first one wins, and a stored
    owner is never overwritten); RedirectRefused(`not_owner`) when another user won a race.
    """
    if not isinstance(admission, Admission):
        admission = Admission(dict(admission))
    info = admission.info
    moment = now or datetime.now(UTC)
    yclients_id = int(info["id"])
    company = await Company.get_or_none(yclients_id=yclients_id)
    result: Registration
    if company is None:
        try:
            company, _created = await companies.upsert_from_yclients(
                dict(info), status=IntegrationStatus.PENDING_WHATSAPP
            )
            result = Registration(company, created=True)
        except IntegrityError:
            # A second redirect created it between our read and our insert.
            company = await Company.get(yclients_id=yclients_id)
            result = Registration(company)
    else:
        await Company.filter(id=company.id).update(**_company_values(info))
        result = Registration(company)
    if company.integration_status is IntegrationStatus.UNINSTALLED:
        result.restarted = await _set_status(
            company.id,
            [IntegrationStatus.UNINSTALLED],
            IntegrationStatus.PENDING_WHATSAPP,
            hook_token=companies.new_hook_token(),
            api_key_hash=None,
            whatsapp_connected=False,
            whatsapp_phone=None,
            **_NO_OWNER,
        )
        if result.restarted:
            await companies.drop_api_keys(company.id)
    if company.integration_status is IntegrationStatus.FROZEN and admission.app_status == ACTIVE:
        result.unfrozen = await _lift(company, admission.app_status)
    if signed and user is not None and user.id is not None:
        result.bound = bool(
            await Company.filter(id=company.id, marketplace_owner_bound_at__isnull=True).update(
                marketplace_user_id=user.id,
                marketplace_user_name=user.name,
                marketplace_user_email=user.email,
                marketplace_user_phone=user.phone,
                marketplace_owner_bound_at=moment,
            )
        )
    result.company = await Company.get(id=company.id)
    if signed and user is not None and result.company.marketplace_user_id != user.id:
        raise RedirectRefused("not_owner", yclients_id, "another user was bound first")
    await audit(
        company.id,
        "registration_started",
        signed=signed,
        user_id=user.id if user else None,
        branches=list(branches),
        status=result.company.integration_status.value,
        created=result.created,
        restarted=result.restarted,
        unfrozen=result.unfrozen,
        bound=result.bound,
        app_status=admission.app_status,
    )
    return result


_NO_OWNER: dict[str, Any] = {
    "marketplace_user_id": None,
    "marketplace_user_name": None,
    "marketplace_user_email": None,
    "marketplace_user_phone": None,
    "marketplace_owner_bound_at": None,
}


async def lift_frozen(client: YClientsClient, company: Company, application_id: int) -> bool:
    """Re-read the application's status in YClients and lift `frozen` when it is active.

    There is no "unfreeze" event: this is how a renewed subscription shows. True when lifted.
    """
    try:
        data = await client.salon_application(company.yclients_id, application_id)
    except NotFound:
        return False
    except YClientsError as exc:
        log.warning("salon %s: application status unreadable: %s", company.yclients_id, exc)
        return False
    return await _lift(company, application_status(data))


async def _lift(company: Company, status: str | None) -> bool:
    if status != ACTIVE:
        return False
    lifted = await _set_status(company.id, [IntegrationStatus.FROZEN], IntegrationStatus.ACTIVE)
    if lifted:
        await audit(company.id, "unfrozen", application_status=status)
        log.info("salon %s: YClients reports the app active again; unfrozen", company.yclients_id)
    return lifted


async def lift_all_frozen(client: YClientsClient, application_id: int | None) -> list[int]:
    """`lift_frozen` for every frozen salon (the sync tick); the ids lifted."""
    if not application_id:
        return []
    lifted = []
    for company in await Company.filter(integration_status=IntegrationStatus.FROZEN).order_by("id"):
        if await lift_frozen(client, company, application_id):
            lifted.append(company.id)
    return lifted


# --- WhatsApp ------------------------------------------------------------------------------------

_CONNECTION_EVENTS = ("whatsapp_connected", "whatsapp_disconnected")
# States that mean "not linked"; STARTING is a step on the way to either, so it changes nothing.
_DISCONNECTED = frozenset({SessionStatus.SCAN_QR_CODE, SessionStatus.FAILED, SessionStatus.STOPPED})


def session_name(company: Company) -> str:
    return company.whatsapp_session or f"salon-{company.yclients_id}"


def whatsapp_webhook_url(base_url: str) -> str:
    return base_url + WEBHOOK_PATH


async def ensure_whatsapp(
    company: Company, gateway: WhatsAppGateway, base_url: str, *, restart_failed: bool
) -> SessionInfo:
    """The salon's gateway session, created if missing; a FAILED (or stopped) one restarted
    only when the owner asked for a new code, since WhatsApp caps link attempts."""
    name = session_name(company)
    if company.whatsapp_session is None:
        await Company.filter(id=company.id, whatsapp_session__isnull=True).update(
            whatsapp_session=name
        )
        company.whatsapp_session = name
    info = await gateway.ensure_session(
        name,
        whatsapp_webhook_url(base_url),
        {"salonbot.company": str(company.id), "salonbot.yclients_id": str(company.yclients_id)},
    )
    if restart_failed and info.status in (SessionStatus.FAILED, SessionStatus.STOPPED):
        info = await gateway.restart(name)
    await record_whatsapp_state(company, info.status, info.phone, at_ms=_now_ms())
    return info


async def live_status(company: Company, gateway: WhatsAppGateway) -> SessionInfo | None:
    """The session as the gateway sees it now (and recorded), or None when there is none."""
    if company.whatsapp_session is None:
        return None
    try:
        info = await gateway.status(company.whatsapp_session)
    except SessionNotFound:
        return None
    await record_whatsapp_state(company, info.status, info.phone, at_ms=_now_ms())
    return info


async def record_whatsapp_state(
    company: Company, status: str, phone: str | None, *, at_ms: int
) -> bool:
    """Keep `whatsapp_connected`/`whatsapp_phone` current; True when something changed.

    Only changes are audited (`whatsapp_connected`/`whatsapp_disconnected`), each with the
    moment it describes, so a late webhook never undoes a newer observation.
    """
    if status == SessionStatus.WORKING:
        connected = True
    elif status in _DISCONNECTED:
        connected = False
    else:
        return False
    last = (
        await MarketplaceEvent.filter(company_id=company.id, kind__in=_CONNECTION_EVENTS)
        .order_by("-id")
        .first()
    )
    if last is not None and int(last.details.get("at_ms") or 0) > at_ms:
        return False
    fresh = await Company.get(id=company.id)
    # A WORKING report without `me` says nothing about the number: keep the one we know.
    same_phone = not connected or phone is None or fresh.whatsapp_phone == phone
    if fresh.whatsapp_connected == connected and same_phone:
        company.whatsapp_connected, company.whatsapp_phone = connected, fresh.whatsapp_phone
        return False
    values: dict[str, Any] = {"whatsapp_connected": connected}
    if connected and phone:
        values["whatsapp_phone"] = phone
    await Company.filter(id=company.id).update(**values)
    company.whatsapp_connected = connected
    if "whatsapp_phone" in values:
        company.whatsapp_phone = phone
    await audit(
        company.id,
        "whatsapp_connected" if connected else "whatsapp_disconnected",
        status=str(status),
        phone=phone if connected else None,
        at_ms=at_ms,
    )
    return True


async def apply_session_status(payload: Mapping[str, Any], company_id: int | None) -> bool:
    """A WAHA `session.status` event (as stored in the inbox) applied to its salon."""
    session = payload.get("session")
    company = await Company.get_or_none(id=company_id) if company_id is not None else None
    if company is None and isinstance(session, str):
        company = await Company.get_or_none(whatsapp_session=session)
    if company is None:
        log.info("WhatsApp status for unknown session %r ignored", session)
        return False
    body = payload.get("payload")
    body = body if isinstance(body, dict) else {}
    me = payload.get("me")
    me = me if isinstance(me, dict) else {}
    status = str(body.get("status") or "")
    timestamp = payload.get("timestamp")
    at_ms = timestamp if isinstance(timestamp, int) and not isinstance(timestamp, bool) else 0
    return await record_whatsapp_state(
        company, status, phone_from_chat_id(me.get("id")), at_ms=at_ms
    )


async def handle_whatsapp_event(event: InboxEvent) -> list[LedgerResult]:
    """The inbox handler for source `whatsapp`.

    `session.status` keeps the salon's link state current. `message` events are stored, not
    yet acted on: the WhatsApp channel takes them over by registering its own handler for this
    source and passing `session.status` events to `apply_session_status`.
    """
    kind = event.payload.get("event")
    if kind == "session.status":
        await apply_session_status(event.payload, event.company_id)
    else:
        log.debug("WhatsApp %s event %s stored, not yet acted on", kind, event.id)
    return []


# --- activation ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActivationResult:
    """`outcome`: activated, already_active, callback_failed, not_ready or busy."""

    outcome: str
    status: IntegrationStatus
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("activated", "already_active")


async def activate(
    company_id: int, *, client: YClientsClient, application_id: int, base_url: str
) -> ActivationResult:
    """Finish onboarding: api key, the callback to YClients, then status `active`.

    One activation of a salon at a time (a PostgreSQL advisory lock across replicas); a second
    activation of an active salon changes nothing.
    """
    ran, result = await run_exclusive(
        f"marketplace-activate-{company_id}",
        lambda: _activate(company_id, client, application_id, base_url),
    )
    if not ran or result is None:
        company = await Company.get(id=company_id)
        return ActivationResult("busy", company.integration_status)
    return result


async def _activate(
    company_id: int, client: YClientsClient, application_id: int, base_url: str
) -> ActivationResult:
    company = await Company.get(id=company_id)
    status = company.integration_status
    if status is IntegrationStatus.ACTIVE:
        return ActivationResult("already_active", status)
    if status is not IntegrationStatus.PENDING_WHATSAPP:
        return ActivationResult("not_ready", status, f"the salon is {status.value}")
    if not company.whatsapp_connected:
        return ActivationResult("not_ready", status, "WhatsApp is not linked yet")
    key, digest = companies.new_api_key()
    # Committed before YClients hears of the key: it must never hold a key we cannot check.
    # It stays unconfirmed, beside the keys of earlier attempts whose answer may have been
    # lost, until YClients is known to hold it (below) or a request proves it.
    await companies.add_pending_api_key(company.id, digest)
    hook_url = companies.webhook_url(base_url, company)
    details: dict[str, Any] = {"webhook_url_sent": True}
    try:
        answer = await client.marketplace_callback_redirect(
            company.yclients_id, application_id, key, [hook_url]
        )
        details.update(via="callback", http_status=answer.status, location=answer.location)
        # YClients took this key: it is the salon's; unconfirmed ones from earlier attempts go.
        await companies.adopt_api_key(company.id, digest)
    except AlreadyInstalled as exc:
        failure = await _confirm_installed(company, client, application_id, exc)
        if failure is not None:
            return await _callback_failed(company, failure)
        # YClients keeps the key of an earlier attempt whose answer was lost, not this one:
        # every unconfirmed key keeps working until a request proves one
        # (companies.company_by_api_key).
        details.update(via="already_installed")
    except YClientsError as exc:
        return await _callback_failed(company, exc.api_message or str(exc), exc.status)
    if await _set_status(
        company.id, [IntegrationStatus.PENDING_WHATSAPP], IntegrationStatus.ACTIVE
    ):
        await audit(company.id, "activated", **details)
        log.info("salon %s activated", company.yclients_id)
        return ActivationResult("activated", IntegrationStatus.ACTIVE)
    # Uninstalled or frozen while the callback was under way: that event wins.
    current = (await Company.get(id=company.id)).integration_status
    return ActivationResult(
        "already_active" if current is IntegrationStatus.ACTIVE else "not_ready", current
    )


async def _confirm_installed(
    company: Company, client: YClientsClient, application_id: int, exc: AlreadyInstalled
) -> str | None:
    """None when YClients confirms the app is active in the salon; the reason otherwise."""
    try:
        data = await client.salon_application(company.yclients_id, application_id)
    except YClientsError as read_error:
        return read_error.api_message or str(read_error)
    if application_is_active(data):
        return None
    return exc.api_message or f"the application is {application_status(data)} in YClients"


async def _callback_failed(
    company: Company, message: str, http_status: int | None = None
) -> ActivationResult:
    await audit(company.id, "callback_failed", message=message, http_status=http_status)
    log.warning("salon %s: activation callback failed: %s", company.yclients_id, message)
    current = (await Company.get(id=company.id)).integration_status
    return ActivationResult("callback_failed", current, message)


async def last_callback_failure(company: Company) -> str | None:
    """YClients' message when the latest activation attempt failed (for the page)."""
    last = (
        await MarketplaceEvent.filter(
            company_id=company.id, kind__in=("callback_failed", "activated", "registration_started")
        )
        .order_by("-id")
        .first()
    )
    if last is None or last.kind != "callback_failed":
        return None
    return str(last.details.get("message") or "")


# --- lifecycle webhooks --------------------------------------------------------------------------


def partner_token_matches(given: object, ours: str | None) -> bool:
    if not ours or not isinstance(given, str) or not given.isascii():
        # Compare anyway, so a refusal costs the same whatever was wrong.
        hmac.compare_digest(b"-", b"+")
        return False
    return hmac.compare_digest(given.encode(), ours.encode())


def lifecycle_for_storage(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The event as kept in the inbox: our partner token is never written down."""
    return {k: ("***" if k == "partner_token" else v) for k, v in payload.items()}


@dataclass(slots=True)
class LifecycleOutcome:
    kind: str
    changed: bool = False
    details: dict[str, Any] = field(default_factory=dict)


async def handle_lifecycle(
    payload: Mapping[str, Any],
    *,
    gateway: WhatsAppGateway | None,
    application_id: int | None,
) -> LifecycleOutcome:
    """Apply `uninstall`/`freeze`, idempotent by state; anything else is audited only."""
    event = str(payload.get("event") or "")
    salon_id = as_int(payload.get("salon_id"))
    app_id = as_int(payload.get("application_id"))
    company = await Company.get_or_none(yclients_id=salon_id) if salon_id else None
    company_id = company.id if company else None
    if application_id and app_id is not None and app_id != application_id:
        # The partner token is shared by a partner's applications: not ours to act on.
        await audit(company_id, "other_application", event=event, application_id=app_id)
        return LifecycleOutcome("other_application")
    if company is None:
        await audit(None, event or "unknown", salon_id=salon_id, known_salon=False)
        return LifecycleOutcome(event or "unknown")
    if event == "uninstall":
        outcome = await _uninstall(company, gateway)
    elif event == "freeze":
        changed = await _set_status(
            company.id, [IntegrationStatus.ACTIVE], IntegrationStatus.FROZEN
        )
        outcome = LifecycleOutcome("freeze", changed)
    else:
        outcome = LifecycleOutcome("unknown", details={"event": event[:64]})
    await audit(company.id, outcome.kind, changed=outcome.changed, **outcome.details)
    return outcome


async def _uninstall(company: Company, gateway: WhatsAppGateway | None) -> LifecycleOutcome:
    changed = await _set_status(
        company.id,
        [s for s in IntegrationStatus if s is not IntegrationStatus.UNINSTALLED],
        IntegrationStatus.UNINSTALLED,
        api_key_hash=None,
        whatsapp_connected=False,
    )
    if changed:
        await companies.drop_api_keys(company.id)
    details: dict[str, Any] = {}
    current = await Company.get(id=company.id)
    # By state, not by event: a repeated uninstall logs out again (harmless), and one after a
    # reinstall is a real uninstall.
    if current.integration_status is IntegrationStatus.UNINSTALLED and current.whatsapp_session:
        details["whatsapp_logout"] = await _logout(current.whatsapp_session, gateway)
    return LifecycleOutcome("uninstall", changed, details)


async def _logout(session: str, gateway: WhatsAppGateway | None) -> str:
    if gateway is None:
        return "skipped: no gateway configured"
    try:
        await gateway.logout(session)
        await gateway.stop(session)
    except SessionNotFound:
        return "no session"
    except GatewayError as exc:
        # The salon is uninstalled either way; an unlinked phone is tidiness, not a must.
        log.warning("WhatsApp logout of %s failed: %s", session, exc)
        return f"failed: {exc}"
    return "done"


async def handle_marketplace_event(
    event: InboxEvent, *, gateway: WhatsAppGateway | None, application_id: int | None
) -> list[LedgerResult]:
    """The inbox handler for source `marketplace`."""
    await handle_lifecycle(event.payload, gateway=gateway, application_id=application_id)
    return []


# --- what clients and owners are told ------------------------------------------------------------

_UNINSTALLED_REPLY = _(
    "This salon no longer uses this bot. Please contact the salon directly. Thank you for "
    "being with us!"
)
_FROZEN_REPLY = _(
    "The salon's bot is paused for now. Please contact the salon directly or try again later."
)


def unavailable_reply(status: IntegrationStatus, locale: str) -> str | None:
    """What the bot answers a client of a salon that left or is paused; None when it works."""
    if status is IntegrationStatus.UNINSTALLED:
        return gettext(locale, _UNINSTALLED_REPLY)
    if status is IntegrationStatus.FROZEN:
        return gettext(locale, _FROZEN_REPLY)
    return None


def telegram_link(bot_username: str | None, yclients_id: int) -> str | None:
    if not bot_username:
        return None
    return f"https://t.me/{bot_username.lstrip('@')}?start=salon-{yclients_id}"


def whatsapp_link(phone: str | None) -> str | None:
    digits = "".join(ch for ch in phone or "" if ch.isdigit())
    return f"https://wa.me/{digits}" if digits else None


class BotUsername:
    """The Telegram bot's username for deep links: TELEGRAM_BOT_USERNAME, else asked once from
    the Bot API (`getMe`) and remembered; None without a bot."""

    def __init__(
        self,
        settings: Settings,
        *,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._timeout = timeout
        self._transport = transport
        self._known: str | None = settings.telegram_bot_username or None
        self._next_try = 0.0

    async def get(self) -> str | None:
        token = self._settings.telegram_bot_token
        if self._known or token is None or time.monotonic() < self._next_try:
            return self._known
        url = f"{self._settings.telegram_api_url}/bot{token.get_secret_value()}/getMe"
        try:
            async with httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as http:
                data = (await http.get(url)).json()
            username = data.get("result", {}).get("username") if isinstance(data, dict) else None
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            log.warning("Telegram getMe failed (%s); set TELEGRAM_BOT_USERNAME", type(exc).__name__)
            username = None
        if isinstance(username, str) and username:
            self._known = username
        else:
            # Do not ask Telegram on every page view while it keeps failing.
            self._next_try = time.monotonic() + 300
        return self._known


# --- helpers -------------------------------------------------------------------------------------


def as_int(value: object) -> int | None:
    """An integer or a string of ASCII digits as an int; None for anything else, and for a
    number no bigint column holds (no YClients id is one; a string of thousands of digits
    would make int() raise)."""
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 19):
            return None
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if -(2**63) <= value < 2**63 else None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
