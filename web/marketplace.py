"""The YClients Marketplace surface: the registration redirect, the owner's onboarding page and
its API, the poster, and the lifecycle webhook.

Authentication: the redirect by YClients' signature on `user_data` (which user) plus the
salon's owner binding and YClients' install status (which salon:
core.marketplace.registration.admit_redirect); the page and its API by the onboarding JWT the
redirect issued (in the page URL, then as a Bearer header from the page's script); the
lifecycle webhook by the partner token in its body.
Everything the owner sees is a page with a sentence, never a stack trace.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote

import qrcode
import qrcode.image.svg
from aiohttp import web

from core import inbox, jsonbody, marketplace
from core.i18n import _, gettext, locale_from_accept_language
from core.inbox import Handler
from core.ledger import LedgerResult
from core.marketplace import OnboardingClaims, TokenInvalid
from core.marketplace.poster import render_poster
from core.models import Company, InboxEvent, IntegrationStatus
from core.phones import normalize_phone
from core.whatsapp import (
    GatewayError,
    QrNotAvailable,
    SessionInfo,
    SessionNotConnected,
    SessionStatus,
    WhatsAppGateway,
    ensure_whatsapp,
    live_status,
)
from core.yclients import YClientsError
from web.edge import BodyRefused, bearer_token, read_json, refused_response
from web.ingest import Event, Refused, ingest
from web.keys import (
    BOT_USERNAME,
    MAX_BOT,
    ONBOARDING_POLL_MS,
    SETTINGS,
    WHATSAPP,
    YCLIENTS,
)
from web.onboarding_page import PageContext, message_page, onboarding_page, qr_svg

log = logging.getLogger(__name__)

ONBOARDING_PATH = "/marketplace/onboarding"
# The page's own requests: `{"restart": true}`, `{"phone": …}`.
API_MAX_BODY = 16 * 1024

_EXPIRED_TITLE = _("This link has expired")
_EXPIRED_TEXT = _("This link has expired — open the app again from YClients.")
_INCOMPLETE_TITLE = _("This link is incomplete")
_INCOMPLETE_TEXT = _(
    "The link has lost its access key, perhaps when it was copied. Open the app again from "
    "the YClients Marketplace: it brings you here with a whole link."
)
_INVALID_TITLE = _("This link is not valid")
_INVALID_TEXT = _(
    "The link's access key is damaged or was not issued by this service. Open the app again "
    "from the YClients Marketplace: it brings you here with a fresh link."
)
_UNKNOWN_SALON_TITLE = _("The salon is not connected here")
_UNKNOWN_SALON_TEXT = _(
    "This service no longer knows the salon from the link. To connect it again, open the app "
    "from the YClients Marketplace."
)
_UNSIGNED_TITLE = _("This request cannot be confirmed")
# What the developer has to do (enable "transmit user data") goes to the log, not to the owner.
_UNSIGNED_TEXT = _(
    "The request did not come signed by YClients, so the salon cannot be connected. Open the "
    "app again from the YClients Marketplace. If this page comes back, the app is not set up "
    "for it yet: please write to the service's support, there is nothing to change on your side."
)
_NO_SALON_TEXT = _("The request names no salon. Open the app again from the YClients Marketplace.")
_MISMATCH_TEXT = _(
    "The salon in the request is not the one YClients signed for. Open the app again from the "
    "YClients Marketplace, signed in to the salon you want to connect."
)
_OFF_TITLE = _("The salon cannot be connected")
_OFF_TEXT = _(
    "Connecting salons is not set up on this service, so it cannot be done now. There is "
    "nothing to change on your side: please write to the service's support."
)
_YCLIENTS_BUSY_TITLE = _("YClients is not answering")
_YCLIENTS_BUSY_TEXT = _("Could not reach YClients just now. Try again in a minute.")
_TOO_MANY_TITLE = _("Too many branches at once")
_TOO_MANY_TEXT = _(
    "The request names more than {limit} branches. Connect the app to fewer branches at a time "
    "in the YClients Marketplace, or contact support."
)
_REFUSED_TITLE = _("This salon cannot be opened")
_NOT_OWNER_TEXT = _(
    "This salon is already connected to the app by another YClients user. Ask the salon owner "
    "who connected it, or contact support if the salon is yours."
)
_NOT_CONNECTED_TEXT = _(
    "YClients does not show the app as being connected to this salon. Press «Connect» on the "
    "app's page in the YClients Marketplace, and you will come back here."
)
_NO_SUCH_SALON_TITLE = _("Salon not found")
_NO_SUCH_SALON_TEXT = _(
    "YClients has no salon with this number. Open the app again from the YClients Marketplace."
)
_NO_USER_TEXT = _(
    "YClients did not tell us who you are, so the salon cannot be connected. Open the app again "
    "from the YClients Marketplace, or contact support."
)
_REPLAYED_TITLE = _("This link has already been used")
_REPLAYED_TEXT = _(
    "This link has already been used. Open the app again from the YClients Marketplace; if you "
    "see this page again, contact support."
)
# How long a browser waits for YClients during the redirect: each call, and all of them.
REDIRECT_CALL_TIMEOUT = 5.0
REDIRECT_DEADLINE = 12.0


# --- helpers -------------------------------------------------------------------------------------


def _locale(request: web.Request) -> str:
    return locale_from_accept_language(request.headers.get("Accept-Language"))


def _secret(request: web.Request) -> str:
    key = request.app[SETTINGS].secret_key
    # load_settings always resolves a key; an app built without one must not sign with "".
    if key is None:
        raise web.HTTPServiceUnavailable(text="SECRET_KEY is not set")
    return key.get_secret_value()


def _html(text: str, status: int = 200) -> web.Response:
    response = web.Response(text=text, content_type="text/html", status=status)
    response.headers.update(
        {
            # Scripts and styles only from web/static/ on this origin (web.assets): no inline.
            "Content-Security-Policy": (
                "default-src 'none'; script-src 'self'; style-src 'self'; "
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
    page = message_page(
        locale,
        gettext(locale, title),
        gettext(locale, text),
        contact=request.app[SETTINGS].support_contact,
    )
    return _html(page, status)


def _refused(request: web.Request, problem: TokenInvalid | None) -> web.Response:
    """The page for a link that opens nothing: no token (cut short), an expired one, a damaged
    or foreign one, or one whose salon is gone (`problem` None)."""
    if problem is None:
        return _message(request, _UNKNOWN_SALON_TITLE, _UNKNOWN_SALON_TEXT, 404)
    if not request.query.get("token", "").strip():
        return _message(request, _INCOMPLETE_TITLE, _INCOMPLETE_TEXT, 400)
    if problem.expired:
        return _message(request, _EXPIRED_TITLE, _EXPIRED_TEXT, 403)
    return _message(request, _INVALID_TITLE, _INVALID_TEXT, 403)


def _json(data: Mapping[str, Any], status: int = 200) -> web.Response:
    return web.json_response(dict(data), status=status, headers={"Cache-Control": "no-store"})


def onboarding_url(token: str) -> str:
    return f"{ONBOARDING_PATH}?token={quote(token, safe='')}"


async def _salon_from_query(
    request: web.Request,
) -> tuple[OnboardingClaims, Company] | web.Response:
    """The salon the page's token names, or the page that says why the link opens nothing."""
    try:
        claims = marketplace.read_token(_secret(request), request.query.get("token", ""))
    except TokenInvalid as exc:
        log.info("onboarding page refused: %s", exc)
        return _refused(request, exc)
    company = await Company.get_or_none(yclients_id=claims.yclients_id)
    if company is None:
        log.info("onboarding page refused: salon %s is not registered", claims.yclients_id)
        return _refused(request, None)
    return claims, company


async def _salon_from_bearer(request: web.Request) -> tuple[OnboardingClaims, Company]:
    try:
        claims = marketplace.read_token(_secret(request), bearer_token(request))
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


_REFUSALS: dict[str, tuple[str, str, int]] = {
    "no_user": (_UNSIGNED_TITLE, _NO_USER_TEXT, 403),
    "not_owner": (_REFUSED_TITLE, _NOT_OWNER_TEXT, 403),
    "not_connected": (_REFUSED_TITLE, _NOT_CONNECTED_TEXT, 403),
    "not_found": (_NO_SUCH_SALON_TITLE, _NOT_CONNECTED_TEXT, 404),
    "unknown_salon": (_NO_SUCH_SALON_TITLE, _NO_SUCH_SALON_TEXT, 404),
    "replayed": (_REPLAYED_TITLE, _REPLAYED_TEXT, 403),
    "not_configured": (_OFF_TITLE, _OFF_TEXT, 503),
}


async def registration_redirect(request: web.Request) -> web.StreamResponse:
    """GET /auth/yclients/redirect: verify, confirm ownership, register every branch, 302 to
    the onboarding page (core.marketplace.registration.admit_redirect says who may open what)."""
    settings = request.app[SETTINGS]
    client = request.app[YCLIENTS]
    if client is None or settings.yclients_partner_token is None:
        return _message(request, _OFF_TITLE, _OFF_TEXT, 503)
    try:
        salon_ids = marketplace.salon_ids_from_query(request.query.items())
    except marketplace.TooManyBranches as exc:
        log.warning("registration redirect refused: %s", exc)
        locale = _locale(request)
        text = gettext(locale, _TOO_MANY_TEXT).format(limit=marketplace.MAX_BRANCHES)
        page = message_page(locale, gettext(locale, _TOO_MANY_TITLE), text)
        return _html(page, 400)
    if not salon_ids:
        return _message(request, _UNSIGNED_TITLE, _NO_SALON_TEXT, 400)
    user: marketplace.MarketplaceUser | None = None
    signature: str | None = None
    try:
        user = marketplace.verify_user_data(
            request.query.get("user_data"),
            request.query.get("user_data_sign"),
            settings.yclients_partner_token.get_secret_value(),
        )
        signature = request.query["user_data_sign"]
    except marketplace.SignatureError as exc:
        if not settings.marketplace_allow_unsigned:
            log.warning("registration redirect for %s refused: %s", salon_ids, exc)
            return _message(request, _UNSIGNED_TITLE, _UNSIGNED_TEXT, 403)
        log.warning(
            "registration redirect for %s accepted UNSIGNED (MARKETPLACE_ALLOW_UNSIGNED): %s",
            salon_ids,
            exc,
        )
    user_id = user.id if user else None
    if user is not None and user.salon_ids and not set(salon_ids) <= set(user.salon_ids):
        log.warning(
            "registration redirect: salons %s not in user %s's signed list", salon_ids, user.id
        )
        return _message(request, _UNSIGNED_TITLE, _MISMATCH_TEXT, 403)
    now = datetime.now(UTC)
    try:
        # Every YClients read happens before anything is written, within a bound: the owner's
        # browser is waiting.
        admissions = await asyncio.wait_for(
            marketplace.admit_redirect(
                salon_ids,
                user=user,
                signature=signature,
                client=client.bounded(REDIRECT_CALL_TIMEOUT),
                application_id=settings.yclients_app_id,
                now=now,
            ),
            REDIRECT_DEADLINE,
        )
        for admission in admissions:
            await marketplace.register_salon(
                admission, user=user, signed=user is not None, branches=salon_ids, now=now
            )
    except marketplace.RedirectRefused as exc:
        log.warning("registration redirect of user %s refused: %s", user_id, exc)
        title, text, status = _REFUSALS[exc.reason]
        return _message(request, title, text, status)
    except (YClientsError, TimeoutError) as exc:
        # YClients' own words stay in the log: the page speaks the owner's language.
        log.warning("registration redirect: YClients unavailable for %s: %s", salon_ids, exc)
        return _message(request, _YCLIENTS_BUSY_TITLE, _YCLIENTS_BUSY_TEXT, 503)
    if signature is not None:
        await marketplace.record_redirect_use(signature, salon_ids, now)
    token = marketplace.issue_token(_secret(request), salon_ids[0], salon_ids)
    raise web.HTTPFound(onboarding_url(token), headers={"Cache-Control": "no-store"})


# --- the onboarding page -------------------------------------------------------------------------


async def _links(request: web.Request, company: Company) -> tuple[str | None, str | None]:
    username = await request.app[BOT_USERNAME].get()
    return (
        marketplace.telegram_link(username, company.yclients_id),
        marketplace.whatsapp_link(company.whatsapp_phone),
    )


def _max_link(request: web.Request, company: Company) -> str | None:
    """The MAX deep link while the MAX bot is on and has learnt its username (GET /me)."""
    bot = request.app.get(MAX_BOT)
    return marketplace.max_link(bot.username if bot else None, company.yclients_id)


async def onboarding_page_handler(request: web.Request) -> web.Response:
    """GET /marketplace/onboarding?token=…"""
    found = await _salon_from_query(request)
    if isinstance(found, web.Response):
        return found
    claims, company = found
    gateway = request.app[WHATSAPP]
    if gateway is not None and company.integration_status in (
        IntegrationStatus.PENDING_WHATSAPP,
        IntegrationStatus.ACTIVE,
    ):
        try:
            # The database may lag the phone (a missed webhook): ask the gateway itself.
            await asyncio.wait_for(live_status(company, gateway), 5)
        except (GatewayError, TimeoutError) as exc:
            log.info("onboarding page: gateway status unavailable: %s", exc)
    token = request.query["token"]
    active = company.integration_status is IntegrationStatus.ACTIVE
    telegram, whatsapp = await _links(request, company) if active else (None, None)
    max_link = _max_link(request, company) if active else None
    branches = []
    if len(claims.branches) > 1:
        others = await Company.filter(yclients_id__in=list(claims.branches)).exclude(id=company.id)
        remaining = claims.expires_at - datetime.now(UTC)
        for other in sorted(others, key=lambda c: claims.branches.index(c.yclients_id)):
            # A branch link lives no longer than this one: the page never extends access.
            branch_token = marketplace.issue_token(
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
        max_link=max_link,
        poster_url=(
            f"/marketplace/poster.png?token={quote(token, safe='')}"
            if telegram or whatsapp or max_link
            else None
        ),
        callback_error=(
            await marketplace.last_callback_failure(company)
            if company.integration_status is IntegrationStatus.PENDING_WHATSAPP
            else None
        ),
        branches=branches,
        support_contact=request.app[SETTINGS].support_contact,
    )
    return _html(onboarding_page(ctx, _locale(request)))


async def poster_handler(request: web.Request) -> web.Response:
    """GET /marketplace/poster.png?token=…: both client QR codes and the salon's name."""
    found = await _salon_from_query(request)
    if isinstance(found, web.Response):
        return found
    _claims, company = found
    if company.integration_status is not IntegrationStatus.ACTIVE:
        return web.Response(status=409, text="the salon is not active")
    telegram, whatsapp = await _links(request, company)
    named = (("Telegram", telegram), ("WhatsApp", whatsapp), ("MAX", _max_link(request, company)))
    links = [(label, url) for label, url in named if url]
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
            body = await read_json(request, API_MAX_BODY)
        except BodyRefused as bad:
            return refused_response(bad, {"error": "body", "message": bad.reason})
    restart = isinstance(body, dict) and body.get("restart") is True
    try:
        info = await ensure_whatsapp(
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
        info = await live_status(company, gateway)
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
        body = await read_json(request, API_MAX_BODY)
    except BodyRefused as bad:
        if bad.status != 400:
            return refused_response(bad, {"error": "body", "message": bad.reason})
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
            await live_status(company, gateway)
        except GatewayError as exc:
            log.info("activation: gateway status unavailable, using the stored one: %s", exc)
    result = await marketplace.activate(
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


def _parse_lifecycle(raw: bytes, content_type: str) -> dict[str, Any]:
    if content_type == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            raise BodyRefused(400, "the form is not UTF-8") from None
    try:
        body = jsonbody.decode(raw)
    except jsonbody.InvalidJson as exc:
        raise BodyRefused(400, str(exc)) from None
    if not isinstance(body, dict):
        raise BodyRefused(400, "the body must be a JSON object")
    return body


def _lifecycle_fields(body: Mapping[str, Any]) -> tuple[int | None, object]:
    """(salon id, event) of an authenticated delivery; BodyRefused for values no retry could
    ever store: a salon id beyond 64 bits, an event name with a NUL or a lone surrogate.
    Anything else — an unknown event, a salon id that is no number — is stored and audited."""
    raw_salon = body.get("salon_id")
    salon_id = marketplace.as_int(raw_salon)
    numeric = isinstance(raw_salon, int) or (
        isinstance(raw_salon, str) and raw_salon.strip().isascii() and raw_salon.strip().isdigit()
    )
    if salon_id is None and numeric and not isinstance(raw_salon, bool):
        raise BodyRefused(400, "salon_id is out of range")
    event = body.get("event")
    if isinstance(event, str) and not jsonbody.clean_text(event):
        raise BodyRefused(400, "event holds a NUL or an invalid character")
    return salon_id, event


async def lifecycle_webhook(request: web.Request) -> web.Response:
    """POST /webhook/yclients: `uninstall`, `freeze` and whatever else YClients sends.

    Stored in the inbox (every delivery: handling is idempotent by state) and acted on by the
    inbox worker; our partner token is never stored. A body that can never be stored is
    answered 400, so YClients stops retrying it; 503 means our storage failed, try again.
    """
    token = request.app[SETTINGS].yclients_partner_token
    ours = token.get_secret_value() if token is not None else None

    async def parse(raw: bytes) -> Event:
        body = _parse_lifecycle(raw, request.content_type)
        if not marketplace.partner_token_matches(body.get("partner_token"), ours):
            log.warning("lifecycle webhook with a wrong partner_token refused")
            raise Refused(403, "wrong partner_token")
        salon_id, event = _lifecycle_fields(body)
        company = await Company.get_or_none(yclients_id=salon_id) if salon_id else None
        return Event(
            f"{salon_id}:{event}:{uuid.uuid4().hex}"[:255],
            inbox.storable(marketplace.lifecycle_for_storage(body)),
            company.id if company else None,
        )

    return await ingest(request, marketplace.MARKETPLACE, parse)


def inbox_handler(app: web.Application) -> Handler:
    """The handler for source `marketplace` (lifecycle events); the gateway is looked up when
    an event is handled, since it starts with the app."""
    settings = app[SETTINGS]

    async def marketplace_handler(event: InboxEvent) -> list[LedgerResult]:
        return await marketplace.handle_marketplace_event(
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
