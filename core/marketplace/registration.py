"""Registration: which salons a signed redirect may open, and opening them.

A salon is bound to the first signed user whom YClients confirms (the app's install status is
`pending`: that salon's owner has just pressed Connect), and only that user opens it
afterwards; a stored owner is never overwritten (`admit_redirect`, README "Security notes").
A frozen salon is lifted when YClients reports the app active again (`lift_frozen`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError

from core import companies
from core.marketplace.signature import MarketplaceUser, signature_hash
from core.marketplace.status import (
    ACTIVE,
    NOT_INSTALLED,
    PENDING,
    application_status,
    audit,
    set_status,
)
from core.models import Company, IntegrationStatus, RedirectUse
from core.yclients import NotFound, YClientsClient, YClientsError

log = logging.getLogger(__name__)

# A signed redirect URL opens its salons again within this window (a refresh, a second tab);
# later, only while YClients reports the salon freshly `pending`.
REDIRECT_GRACE = timedelta(minutes=10)


@dataclass(slots=True)
class Registration:
    company: Company
    created: bool = False
    # An uninstalled salon that came back: fresh hook token, no api key, WhatsApp unlinked.
    restarted: bool = False
    unfrozen: bool = False
    # This redirect made its user the salon's owner.
    bound: bool = False


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
        result.restarted = await set_status(
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
    lifted = await set_status(company.id, [IntegrationStatus.FROZEN], IntegrationStatus.ACTIVE)
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
