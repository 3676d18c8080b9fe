"""The YClients Marketplace surface: the registration redirect, the owner's onboarding page and
its API, the poster, and the lifecycle webhook.

Authentication: the redirect by YClients' signature on `user_data`; the page and its API by
the onboarding JWT the redirect issued (in the page URL, then as a Bearer header from the
page's script); the lifecycle webhook by the partner token in its body. Everything the owner
sees is a page with a sentence, never a stack trace.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote

import qrcode
import qrcode.image.svg
from aiohttp import web

from core import inbox, onboarding
from core.i18n import _, gettext, locale_from_accept_language
from core.inbox import Handler
from core.ledger import LedgerResult
from core.models import Company, InboxEvent, IntegrationStatus
from core.onboarding import OnboardingClaims, TokenInvalid
from core.phones import normalize_phone
from core.poster import render_poster
from core.whatsapp import (
    GatewayError,
    QrNotAvailable,
    SessionInfo,
    SessionNotConnected,
    SessionStatus,
    WhatsAppGateway,
)
from core.yclients import YClientsError
from web.keys import (
    BOT_USERNAME,
    INBOX_WAKEUP,
    METRICS,
    ONBOARDING_POLL_MS,
    SETTINGS,
    WHATSAPP,
    YCLIENTS,
)
from web.onboarding_page import PageContext, message_page, onboarding_page, qr_svg

log = logging.getLogger(__name__)

ONBOARDING_PATH = "/marketplace/onboarding"
LIFECYCLE_MAX_BODY = 64 * 1024

_EXPIRED_TITLE = _("This link has expired")
_EXPIRED_TEXT = _("This link has expired — open the app again from YClients.")
_UNSIGNED_TITLE = _("This request cannot be confirmed")
_UNSIGNED_TEXT = _(
    "The request did not come signed by YClients, so the salon cannot be connected. Open the "
    "app again from the YClients Marketplace. (For the app's developer: enable 'transmit user "
    "data' for the application in the YClients developer cabinet.)"
)
_NO_SALON_TEXT = _("The request names no salon. Open the app again from the YClients Marketplace.")
_MISMATCH_TEXT = _("The salon in the request is not the one YClients signed for.")
_OFF_TITLE = _("Temporarily unavailable")
_OFF_TEXT = _("Connecting salons is not configured on this server yet. Try again later.")
_YCLIENTS_DOWN_TEXT = _("Could not read the salon from YClients ({reason}). Try again in a minute.")


# --- helpers -------------------------------------------------------------------------------------


def _locale(request: web.Request) -> str:
    return locale_from_accept_language(request.headers.get("Accept-Language"))


def _secret(request: web.Request) -> str:
    key = request.app[SETTINGS].secret_key
    # load_settings always resolves a key; an app built without one must not sign with "".
    if key is None:
        raise web.HTTPServiceUnavailable(text="SECRET_KEY is not set")
    return key.get_secret_value()


def _html(text: str, nonce: str, status: int = 200) -> web.Response:
    response = web.Response(text=text, content_type="text/html", status=status)
    response.headers.update(
        {
            "Content-Security-Policy": (
                "default-src 'none'; "
                f"script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
                "img-src 'self' data:; connect-src 'self'; "
                "base-uri 'none'; form-action 'self'"
            ),
            # The page URL carries the token: no Referer to t.me or wa.me, no caches.
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        }
    )
    return response


def _message(request: web.Request, title: str, text: str, status: int) -> web.Response:
    locale = _locale(request)
    nonce = secrets.token_urlsafe(16)
    page = message_page(locale, gettext(locale, title), gettext(locale, text), nonce)
    return _html(page, nonce, status)


def _expired(request: web.Request) -> web.Response:
    return _message(request, _EXPIRED_TITLE, _EXPIRED_TEXT, 403)


def _json(data: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.json_response(dict(data), status=status, headers={"Cache-Control": "no-store"})


def onboarding_url(token: str) -> str:
    return f"{ONBOARDING_PATH}?token={quote(token, safe='')}"


async def _salon_from_query(request: web.Request) -> tuple[OnboardingClaims, Company] | None:
    try:
        claims = onboarding.read_token(_secret(request), request.query.get("token", ""))
    except TokenInvalid as exc:
        log.info("onboarding page refused: %s", exc)
        return None
    company = await Company.get_or_none(yclients_id=claims.yclients_id)
    return (claims, company) if company is not None else None


async def _salon_from_bearer(request: web.Request) -> tuple[OnboardingClaims, Company]:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    try:
        if scheme.lower() != "bearer":
            raise TokenInvalid("no Bearer token")
        claims = onboarding.read_token(_secret(request), token.strip())
    except TokenInvalid as exc:
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "token", "expired": exc.expired}),
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from None
    company = await Company.get_or_none(yclients_id=claims.yclients_id)
    if company is None:
        raise web.HTTPUnauthorized(
            text='{"error": "token"}',
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return claims, company


def render_qr_svg(value: str) -> str:
    image = qrcode.make(value, image_factory=qrcode.image.svg.SvgPathImage, border=2)
    return qr_svg(image.to_string(encoding="unicode"))


# --- the registration redirect -------------------------------------------------------------------


async def registration_redirect(request: web.Request) -> web.StreamResponse:
    """GET /auth/yclients/redirect: verify, register every branch, 302 to the onboarding page."""
    settings = request.app[SETTINGS]
    client = request.app[YCLIENTS]
    if client is None or settings.yclients_partner_token is None:
        return _message(request, _OFF_TITLE, _OFF_TEXT, 503)
    salon_ids = onboarding.salon_ids_from_query(request.query.items())
    if not salon_ids:
        return _message(request, _UNSIGNED_TITLE, _NO_SALON_TEXT, 400)
    user: onboarding.MarketplaceUser | None = None
    try:
        user = onboarding.verify_user_data(
            request.query.get("user_data"),
            request.query.get("user_data_sign"),
            settings.yclients_partner_token.get_secret_value(),
        )
    except onboarding.SignatureError as exc:
        if not settings.marketplace_allow_unsigned:
            log.warning("registration redirect for %s refused: %s", salon_ids, exc)
            return _message(request, _UNSIGNED_TITLE, _UNSIGNED_TEXT, 403)
        log.warning(
            "registration redirect for %s accepted UNSIGNED (MARKETPLACE_ALLOW_UNSIGNED): %s",
            salon_ids,
            exc,
        )
    if user is not None and user.salon_ids and not set(salon_ids) <= set(user.salon_ids):
        log.warning(
            "registration redirect: salons %s not in user %s's signed list", salon_ids, user.id
        )
        return _message(request, _UNSIGNED_TITLE, _MISMATCH_TEXT, 403)
    try:
        # Every branch is read before any is written: a failure leaves nothing half-done.
        infos = [await client.company(salon_id) for salon_id in salon_ids]
    except YClientsError as exc:
        log.warning("registration redirect: reading salons %s failed: %s", salon_ids, exc)
        locale = _locale(request)
        reason = exc.api_message or (f"HTTP {exc.status}" if exc.status else "no answer")
        nonce = secrets.token_urlsafe(16)
        text = gettext(locale, _YCLIENTS_DOWN_TEXT).format(reason=reason)
        page = message_page(locale, gettext(locale, _OFF_TITLE), text, nonce)
        return _html(page, nonce, 502)
    for info in infos:
        await onboarding.register_salon(
            info,
            user=user,
            signed=user is not None,
            branches=salon_ids,
            client=client,
            application_id=settings.yclients_app_id,
        )
    token = onboarding.issue_token(_secret(request), salon_ids[0], salon_ids)
    raise web.HTTPFound(onboarding_url(token), headers={"Cache-Control": "no-store"})


# --- the onboarding page -------------------------------------------------------------------------


async def _links(request: web.Request, company: Company) -> tuple[str | None, str | None]:
    username = await request.app[BOT_USERNAME].get()
    return (
        onboarding.telegram_link(username, company.yclients_id),
        onboarding.whatsapp_link(company.whatsapp_phone),
    )


async def onboarding_page_handler(request: web.Request) -> web.Response:
    """GET /marketplace/onboarding?token=…"""
    found = await _salon_from_query(request)
    if found is None:
        return _expired(request)
    claims, company = found
    gateway = request.app[WHATSAPP]
    if gateway is not None and company.integration_status in (
        IntegrationStatus.PENDING_WHATSAPP,
        IntegrationStatus.ACTIVE,
    ):
        try:
            # The database may lag the phone (a missed webhook): ask the gateway itself.
            await asyncio.wait_for(onboarding.live_status(company, gateway), 5)
        except (GatewayError, TimeoutError) as exc:
            log.info("onboarding page: gateway status unavailable: %s", exc)
    token = request.query["token"]
    active = company.integration_status is IntegrationStatus.ACTIVE
    telegram, whatsapp = await _links(request, company) if active else (None, None)
    branches = []
    if len(claims.branches) > 1:
        others = await Company.filter(yclients_id__in=list(claims.branches)).exclude(id=company.id)
        remaining = claims.expires_at - datetime.now(UTC)
        for other in sorted(others, key=lambda c: claims.branches.index(c.yclients_id)):
            # A branch link lives no longer than this one: the page never extends access.
            branch_token = onboarding.issue_token(
                _secret(request), other.yclients_id, claims.branches, ttl=remaining
            )
            branches.append((other.title or str(other.yclients_id), onboarding_url(branch_token)))
    ctx = PageContext(
        title=company.title,
        yclients_id=company.yclients_id,
        status=company.integration_status,
        connected=company.whatsapp_connected,
        phone=company.whatsapp_phone,
        token=token,
        poll_ms=request.app[ONBOARDING_POLL_MS],
        gateway_configured=gateway is not None,
        telegram_link=telegram,
        whatsapp_link=whatsapp,
        poster_url=(
            f"/marketplace/poster.png?token={quote(token, safe='')}"
            if telegram or whatsapp
            else None
        ),
        callback_error=(
            await onboarding.last_callback_failure(company)
            if company.integration_status is IntegrationStatus.PENDING_WHATSAPP
            else None
        ),
        branches=branches,
    )
    nonce = secrets.token_urlsafe(16)
    return _html(onboarding_page(ctx, _locale(request), nonce), nonce)


async def poster_handler(request: web.Request) -> web.Response:
    """GET /marketplace/poster.png?token=…: both client QR codes and the salon's name."""
    found = await _salon_from_query(request)
    if found is None:
        return _expired(request)
    _claims, company = found
    if company.integration_status is not IntegrationStatus.ACTIVE:
        return web.Response(status=409, text="the salon is not active")
    telegram, whatsapp = await _links(request, company)
    links = [(label, url) for label, url in (("Telegram", telegram), ("WhatsApp", whatsapp)) if url]
    if not links:
        return web.Response(status=404, text="no client links yet")
    png = await asyncio.to_thread(render_poster, company.title, links, company.default_locale)
    disposition = "attachment" if request.query.get("download") else "inline"
    return web.Response(
        body=png,
        content_type="image/png",
        headers={
            "Content-Disposition": f'{disposition}; filename="poster-{company.yclients_id}.png"',
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )


# --- the onboarding API --------------------------------------------------------------------------


async def _state(
    company: Company, info: SessionInfo | None, gateway: WhatsAppGateway | None
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "integration_status": company.integration_status.value,
        "status": info.status if info is not None else "NONE",
        "connected": company.whatsapp_connected,
        "phone": company.whatsapp_phone,
        "qr_svg": None,
        "qr_id": None,
    }
    if gateway is not None and info is not None and info.status == SessionStatus.SCAN_QR_CODE:
        try:
            value = await gateway.qr_value(info.name)
        except QrNotAvailable:
            # The session moved on between the two calls; the next poll shows where to.
            return state
        state["qr_svg"] = await asyncio.to_thread(render_qr_svg, value)
        state["qr_id"] = hashlib.sha256(value.encode()).hexdigest()[:16]
    return state


def _linkable(company: Company) -> web.Response | None:
    if company.integration_status in (IntegrationStatus.FROZEN, IntegrationStatus.UNINSTALLED):
        return _json(
            {"error": "status", "integration_status": company.integration_status.value}, 409
        )
    return None


async def qr_handler(request: web.Request) -> web.Response:
    """POST /marketplace/api/qr: start (or, with `restart`, renew) the session; status + QR."""
    _claims, company = await _salon_from_bearer(request)
    refused = _linkable(company)
    if refused is not None:
        return refused
    gateway = request.app[WHATSAPP]
    if gateway is None:
        return _json({"error": "gateway_off"}, 503)
    body: Any = {}
    if request.can_read_body:
        try:
            body = await request.json()
        except ValueError:
            body = {}
    restart = isinstance(body, dict) and body.get("restart") is True
    try:
        info = await onboarding.ensure_whatsapp(
            company, gateway, request.app[SETTINGS].base_url, restart_failed=restart
        )
        return _json(await _state(company, info, gateway))
    except GatewayError as exc:
        log.warning("onboarding QR for salon %s: %s", company.yclients_id, exc)
        return _json({"error": "gateway", "message": str(exc)}, 502)


async def status_handler(request: web.Request) -> web.Response:
    """GET /marketplace/api/status: the WhatsApp link as the gateway sees it now."""
    _claims, company = await _salon_from_bearer(request)
    gateway = request.app[WHATSAPP]
    if gateway is None or company.integration_status in (
        IntegrationStatus.FROZEN,
        IntegrationStatus.UNINSTALLED,
    ):
        return _json(await _state(company, None, gateway))
    try:
        info = await onboarding.live_status(company, gateway)
        return _json(await _state(company, info, gateway))
    except GatewayError as exc:
        log.info("onboarding status for salon %s: %s", company.yclients_id, exc)
        return _json({"error": "gateway", "message": str(exc)}, 502)


async def pairing_code_handler(request: web.Request) -> web.Response:
    """POST /marketplace/api/pairing-code {"phone"}: link by a code typed on the phone."""
    _claims, company = await _salon_from_bearer(request)
    refused = _linkable(company)
    if refused is not None:
        return refused
    gateway = request.app[WHATSAPP]
    if gateway is None or company.whatsapp_session is None:
        return _json({"error": "not_waiting"}, 409)
    try:
        body = await request.json()
    except ValueError:
        body = None
    raw = body.get("phone") if isinstance(body, dict) else None
    phone = normalize_phone(raw) if isinstance(raw, str) else None
    if phone is None:
        return _json({"error": "phone"}, 400)
    try:
        code = await gateway.request_pairing_code(company.whatsapp_session, phone)
    except (QrNotAvailable, SessionNotConnected):
        return _json({"error": "not_waiting"}, 409)
    except GatewayError as exc:
        log.warning("pairing code for salon %s: %s", company.yclients_id, exc)
        return _json({"error": "failed"}, 502)
    return _json({"code": code})


async def activate_handler(request: web.Request) -> web.Response:
    """POST /marketplace/activate: api key, the callback to YClients, status `active`."""
    _claims, company = await _salon_from_bearer(request)
    settings = request.app[SETTINGS]
    client = request.app[YCLIENTS]
    if client is None or settings.yclients_app_id is None:
        log.error("activation impossible: YCLIENTS_PARTNER_TOKEN or YCLIENTS_APP_ID is not set")
        return _json({"ok": False, "outcome": "not_configured"}, 503)
    gateway = request.app[WHATSAPP]
    if gateway is not None and company.integration_status is IntegrationStatus.PENDING_WHATSAPP:
        try:
            await onboarding.live_status(company, gateway)
        except GatewayError as exc:
            log.info("activation: gateway status unavailable, using the stored one: %s", exc)
    result = await onboarding.activate(
        company.id,
        client=client,
        application_id=settings.yclients_app_id,
        base_url=settings.base_url,
    )
    status = {"callback_failed": 502, "not_ready": 409, "busy": 409}.get(result.outcome, 200)
    return _json(
        {
            "ok": result.ok,
            "outcome": result.outcome,
            "integration_status": result.status.value,
            "message": result.message if result.outcome == "callback_failed" else None,
        },
        status,
    )


# --- the lifecycle webhook -----------------------------------------------------------------------


def _parse_lifecycle(raw: bytes, content_type: str) -> dict[str, Any] | None:
    if content_type == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            return None
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


async def lifecycle_webhook(request: web.Request) -> web.Response:
    """POST /webhook/yclients: `uninstall`, `freeze` and whatever else YClients sends.

    Stored in the inbox (every delivery: handling is idempotent by state) and acted on by the
    inbox worker; our partner token is never stored.
    """
    if request.content_length is not None and request.content_length > LIFECYCLE_MAX_BODY:
        return _json({"ok": False, "error": "body too large"}, 413)
    raw = await request.read()
    body = _parse_lifecycle(raw, request.content_type)
    if body is None:
        return _json({"ok": False, "error": "the body must be a JSON object"}, 400)
    token = request.app[SETTINGS].yclients_partner_token
    ours = token.get_secret_value() if token is not None else None
    if not onboarding.partner_token_matches(body.get("partner_token"), ours):
        log.warning("lifecycle webhook with a wrong partner_token refused")
        return _json({"ok": False, "error": "wrong partner_token"}, 403)
    salon_id = onboarding.as_int(body.get("salon_id"))
    company = await Company.get_or_none(yclients_id=salon_id) if salon_id else None
    payload = inbox.storable(onboarding.lifecycle_for_storage(body))
    try:
        await inbox.store(
            onboarding.MARKETPLACE,
            f"{salon_id}:{body.get('event')}:{uuid.uuid4().hex}"[:255],
            payload,
            company.id if company else None,
        )
    except Exception:
        log.exception("a lifecycle webhook could not be stored")
        return _json({"ok": False, "error": "try again later"}, 503)
    request.app[METRICS].inbox_received.labels(onboarding.MARKETPLACE, "false").inc()
    request.app[INBOX_WAKEUP].set()
    return _json({"ok": True})


def inbox_handler(app: web.Application) -> Handler:
    """The handler for source `marketplace` (lifecycle events); the gateway is looked up when
    an event is handled, since it starts with the app."""
    settings = app[SETTINGS]

    async def marketplace_handler(event: InboxEvent) -> list[LedgerResult]:
        return await onboarding.handle_marketplace_event(
            event, gateway=app.get(WHATSAPP), application_id=settings.yclients_app_id
        )

    return marketplace_handler


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/auth/yclients/redirect", registration_redirect)
    app.router.add_get(ONBOARDING_PATH, onboarding_page_handler)
    app.router.add_get("/marketplace/poster.png", poster_handler)
    app.router.add_post("/marketplace/api/qr", qr_handler)
    app.router.add_get("/marketplace/api/status", status_handler)
    app.router.add_post("/marketplace/api/pairing-code", pairing_code_handler)
    app.router.add_post("/marketplace/activate", activate_handler)
    app.router.add_post("/webhook/yclients", lifecycle_webhook)
