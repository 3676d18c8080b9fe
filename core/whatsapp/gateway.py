"""WhatsApp gateway client: the interface the dialogs and the onboarding page use, and its WAHA
implementation (shared/reference/whatsapp-waha.md).

Decisions worth knowing:

- One pooled `aiohttp.ClientSession` per gateway (the client, never aiohttp's server): every
  WhatsApp answer is a send, a seen mark and maybe typing, so the HTTP client's cost per
  request is most of an answer's cost, and aiohttp's client costs far less CPU per request than
  httpx did (the figures: bench/README.md, "WhatsApp messages end to end"). Only idempotent
  calls are retried on 5xx, 429, timeouts and connection errors (GET session/QR/lids,
  start/stop/restart/logout/delete); a send or a pairing-code request is never retried, since
  a repeat could reach the client twice or burn a link attempt: the caller gets
  GatewayUnavailable and decides.
- `ensure_session` never creates a second session: it looks the name up first and, if two
  processes race to create it, the loser reads the winner's session back.
- Webhooks are verified by core.whatsapp.webhook (`WahaGateway.verify_webhook` passes our HMAC
  key on).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import aiohttp

from core.whatsapp.errors import (
    GatewayError,
    GatewayNotConfigured,
    GatewayRequestError,
    GatewayUnauthorized,
    GatewayUnavailable,
    QrNotAvailable,
    SessionNotConnected,
    SessionNotFound,
)
from core.whatsapp.ids import chat_id_for_phone, phone_from_chat_id
from core.whatsapp.webhook import WEBHOOK_EVENTS, WebhookEvent, verify_webhook

if TYPE_CHECKING:
    from pydantic import SecretStr

    from core.settings import Settings

log = logging.getLogger(__name__)


class SessionStatus(StrEnum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    SCAN_QR_CODE = "SCAN_QR_CODE"
    WORKING = "WORKING"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class SessionInfo:
    name: str
    status: str
    me_id: str | None = None
    # E.164 of the linked WhatsApp number, device suffix stripped.
    phone: str | None = None
    push_name: str | None = None

    @property
    def working(self) -> bool:
        return self.status == SessionStatus.WORKING

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> SessionInfo:
        me = data.get("me") if isinstance(data.get("me"), Mapping) else None
        me_id = me.get("id") if me and isinstance(me.get("id"), str) else None
        push_name = me.get("pushName") if me and isinstance(me.get("pushName"), str) else None
        return cls(
            name=str(data.get("name", "")),
            status=str(data.get("status", "")),
            me_id=me_id,
            phone=phone_from_chat_id(me_id),
            push_name=push_name,
        )


class WhatsAppGateway(Protocol):
    """What Salonbot needs from a WhatsApp gateway; WAHA is the one implementation so far."""

    async def ensure_session(
        self, name: str, webhook_url: str, metadata: Mapping[str, Any]
    ) -> SessionInfo: ...

    async def status(self, name: str) -> SessionInfo: ...

    async def qr_value(self, name: str) -> str: ...

    async def request_pairing_code(self, name: str, phone: str) -> str: ...

    async def restart(self, name: str) -> SessionInfo: ...

    async def stop(self, name: str) -> SessionInfo: ...

    async def logout(self, name: str) -> SessionInfo: ...

    async def ping(self, *, retries: int | None = None) -> None: ...

    async def send_text(
        self, session: str, chat_id: str, text: str, reply_to: str | None = None
    ) -> str | None: ...

    async def send_image(
        self,
        session: str,
        chat_id: str,
        png_bytes: bytes,
        filename: str = "code.png",
        caption: str | None = None,
    ) -> str | None: ...

    async def send_seen(self, session: str, chat_id: str, message_id: str) -> None: ...

    async def start_typing(self, session: str, chat_id: str) -> None: ...

    async def stop_typing(self, session: str, chat_id: str) -> None: ...

    async def lid_to_phone(self, session: str, lid: str) -> str | None: ...

    def verify_webhook(
        self,
        raw_body: bytes,
        headers: Mapping[str, str],
        *,
        now_ms: int | None = None,
        max_age_s: float = 300,
    ) -> WebhookEvent: ...

    async def aclose(self) -> None: ...


# ---------------------------------------------------------------------------------------------
# WAHA


def _secret(value: str | SecretStr) -> str:
    return value if isinstance(value, str) else value.get_secret_value()


def _message_id(data: object) -> str | None:
    """The sent message's id: a string on GOWS/NOWEB, `{"_serialized": …}` on WEBJS."""
    if not isinstance(data, dict):
        return None
    key = data.get("key")
    for candidate in (data.get("id"), key.get("id") if isinstance(key, dict) else None):
        if isinstance(candidate, str) and candidate:
            return candidate
        if isinstance(candidate, dict) and isinstance(candidate.get("_serialized"), str):
            return str(candidate["_serialized"])
    return None


class WahaGateway:
    """`WhatsAppGateway` over WAHA's HTTP API, on one pooled aiohttp client session (opened on
    first use, inside the running event loop)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr,
        hmac_key: str | SecretStr,
        *,
        timeout: float = 15.0,
        retries: int = 2,
        backoff: float = 0.5,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._api_key = _secret(api_key)
        self._hmac_key = _secret(hmac_key)
        if not self._api_key:
            raise GatewayNotConfigured("WHATSAPP_GATEWAY_API_KEY is not set")
        if not self._hmac_key:
            raise GatewayNotConfigured("WHATSAPP_WEBHOOK_HMAC_KEY is not set")
        self._retries = max(0, retries)
        self._backoff = backoff
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._owns_session = session is None
        self._session = session

    def __repr__(self) -> str:
        return f"WahaGateway({self._base_url!r})"

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> WahaGateway | None:
        """The gateway from WHATSAPP_* settings; None when WHATSAPP_GATEWAY_URL is unset.

        A URL without its API key or HMAC key raises GatewayNotConfigured naming the variable:
        a gateway we cannot authenticate to, or whose webhooks we cannot verify, is no gateway.
        """
        if not settings.whatsapp_gateway_url:
            return None
        if settings.whatsapp_gateway_api_key is None:
            raise GatewayNotConfigured(
                "WHATSAPP_GATEWAY_API_KEY is not set; use the WAHA_API_KEY of the WAHA container"
            )
        if settings.whatsapp_webhook_hmac_key is None:
            raise GatewayNotConfigured(
                "WHATSAPP_WEBHOOK_HMAC_KEY is not set; set 32+ random characters "
                '(python -c "import secrets; print(secrets.token_urlsafe(32))")'
            )
        return cls(
            settings.whatsapp_gateway_url,
            settings.whatsapp_gateway_api_key,
            settings.whatsapp_webhook_hmac_key,
            **kwargs,
        )

    async def aclose(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    # -- sessions ---------------------------------------------------------------------------

    async def ensure_session(
        self, name: str, webhook_url: str, metadata: Mapping[str, Any]
    ) -> SessionInfo:
        """The session `name`, created with our webhook if missing, started if STOPPED.

        An existing session is never recreated nor reconfigured; a FAILED one is left to
        `restart`, which the caller decides on (link attempts are capped by WhatsApp).
        """
        try:
            info = await self.status(name)
        except SessionNotFound:
            body = {
                "name": name,
                "start": True,
                "config": {
                    "metadata": dict(metadata),
                    "webhooks": [
                        {
                            "url": webhook_url,
                            "events": list(WEBHOOK_EVENTS),
                            "hmac": {"key": self._hmac_key},
                            "retries": {
                                "policy": "exponential",
                                "delaySeconds": 2,
                                "attempts": 15,
                            },
                        }
                    ],
                },
            }
            response = await self._send("POST", "/api/sessions", body=body)
            if response.status_code != 422:
                self._check(response, "create session", not_found=SessionNotFound)
                return SessionInfo.from_api(_json(response, "create session"))
            # 422 is "already exists": another process created it between our GET and POST.
            try:
                info = await self.status(name)
            except SessionNotFound:
                raise GatewayRequestError(
                    f"create session: 422 {_error_text(response)}".rstrip(), 422
                ) from None
            log.info("WhatsApp session %s was created concurrently; reusing it", name)
        if info.status == SessionStatus.STOPPED:
            info = await self._session_action(name, "start")
        return info

    async def status(self, name: str) -> SessionInfo:
        response = await self._call("GET", f"/api/sessions/{_seg(name)}", idempotent=True)
        self._check(response, "get session", not_found=SessionNotFound)
        return SessionInfo.from_api(_json(response, "get session"))

    async def start(self, name: str) -> SessionInfo:
        return await self._session_action(name, "start")

    async def stop(self, name: str) -> SessionInfo:
        return await self._session_action(name, "stop")

    async def restart(self, name: str) -> SessionInfo:
        return await self._session_action(name, "restart")

    async def logout(self, name: str) -> SessionInfo:
        """Unlink the phone; a running session comes back waiting for a new QR."""
        return await self._session_action(name, "logout")

    async def ping(self, *, retries: int | None = None) -> None:
        """Returns when the gateway answers and accepts our API key; a GatewayError if not.
        `retries=0` for a caller that backs off by itself (web.whatsapp_channel)."""
        response = await self._call("GET", "/api/sessions", idempotent=True, retries=retries)
        # A 404 here means the URL is not a WAHA API at all.
        self._check(response, "list sessions", not_found=GatewayUnavailable)

    async def delete(self, name: str) -> None:
        response = await self._call("DELETE", f"/api/sessions/{_seg(name)}", idempotent=True)
        if response.status_code != 404:
            self._check(response, "delete session", not_found=SessionNotFound)

    async def _session_action(self, name: str, action: str) -> SessionInfo:
        response = await self._call("POST", f"/api/sessions/{_seg(name)}/{action}", idempotent=True)
        self._check(response, f"{action} session", not_found=SessionNotFound)
        return SessionInfo.from_api(_json(response, f"{action} session"))

    async def qr_value(self, name: str) -> str:
        """The string to draw as the link QR; QrNotAvailable outside SCAN_QR_CODE."""
        response = await self._call(
            "GET", f"/api/{_seg(name)}/auth/qr", params={"format": "raw"}, idempotent=True
        )
        self._check(response, "get QR", not_found=SessionNotFound, unprocessable=QrNotAvailable)
        value = _json(response, "get QR").get("value")
        if not isinstance(value, str) or not value:
            raise GatewayRequestError("get QR: the gateway answered without a value", 200)
        return value

    async def request_pairing_code(self, name: str, phone: str) -> str:
        """A code the owner types in WhatsApp instead of scanning (`ABCD-EFGH`)."""
        digits = chat_id_for_phone(phone).partition("@")[0]
        response = await self._send(
            "POST", f"/api/{_seg(name)}/auth/request-code", body={"phoneNumber": digits}
        )
        self._check(
            response, "request code", not_found=SessionNotFound, unprocessable=QrNotAvailable
        )
        code = _json(response, "request code").get("code")
        if not isinstance(code, str) or not code:
            raise GatewayRequestError("request code: the gateway answered without a code", 200)
        return code

    # -- messages ---------------------------------------------------------------------------

    async def send_text(
        self, session: str, chat_id: str, text: str, reply_to: str | None = None
    ) -> str | None:
        """Send a text; returns the message id when the engine reports one."""
        body: dict[str, Any] = {"session": session, "chatId": chat_id, "text": text}
        if reply_to:
            body["reply_to"] = reply_to
        response = await self._send("POST", "/api/sendText", body=body)
        self._check_send(response, "sendText")
        return _message_id(_json_or_none(response))

    async def send_image(
        self,
        session: str,
        chat_id: str,
        png_bytes: bytes,
        filename: str = "code.png",
        caption: str | None = None,
    ) -> str | None:
        body: dict[str, Any] = {
            "session": session,
            "chatId": chat_id,
            "file": {
                "mimetype": "image/png",
                "filename": filename,
                "data": base64.b64encode(png_bytes).decode("ascii"),
            },
        }
        if caption:
            body["caption"] = caption
        response = await self._send("POST", "/api/sendImage", body=body)
        self._check_send(response, "sendImage")
        return _message_id(_json_or_none(response))

    async def send_seen(self, session: str, chat_id: str, message_id: str) -> None:
        body = {"session": session, "chatId": chat_id, "messageIds": [message_id]}
        self._check_send(await self._send("POST", "/api/sendSeen", body=body), "sendSeen")

    async def start_typing(self, session: str, chat_id: str) -> None:
        body = {"session": session, "chatId": chat_id}
        self._check_send(await self._send("POST", "/api/startTyping", body=body), "startTyping")

    async def stop_typing(self, session: str, chat_id: str) -> None:
        body = {"session": session, "chatId": chat_id}
        self._check_send(await self._send("POST", "/api/stopTyping", body=body), "stopTyping")

    async def lid_to_phone(self, session: str, lid: str) -> str | None:
        """E.164 behind a hidden `…@lid` sender, or None when WhatsApp does not tell."""
        response = await self._call(
            "GET", f"/api/{_seg(session)}/lids/{_seg(lid)}", idempotent=True
        )
        self._check_send(response, "get lid")
        return phone_from_chat_id(_json(response, "get lid").get("pn"))

    def verify_webhook(
        self,
        raw_body: bytes,
        headers: Mapping[str, str],
        *,
        now_ms: int | None = None,
        max_age_s: float = 300,
    ) -> WebhookEvent:
        return verify_webhook(
            raw_body, headers, key=self._hmac_key, now_ms=now_ms, max_age_s=max_age_s
        )

    # -- transport --------------------------------------------------------------------------

    async def _send(
        self, method: str, path: str, *, body: Mapping[str, Any] | None = None
    ) -> _Answer:
        return await self._call(method, path, body=body, idempotent=False)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool,
        retries: int | None = None,
    ) -> _Answer:
        retries = self._retries if retries is None else retries
        attempts = retries + 1 if idempotent else 1
        for attempt in range(attempts):
            try:
                async with self._http().request(
                    method,
                    self._base_url + path,
                    json=body,
                    params=params,
                    headers={"X-Api-Key": self._api_key, "Accept": "application/json"},
                    allow_redirects=False,
                ) as answer:
                    response = _Answer(answer.status, await answer.read())
            except TimeoutError:
                failure = f"{method} {path}: the gateway did not answer in time"
            except aiohttp.ClientError as exc:
                failure = f"{method} {path}: cannot reach the gateway ({type(exc).__name__})"
            else:
                if response.status_code < 500 and response.status_code != 429:
                    return response
                failure = f"{method} {path}: the gateway answered {response.status_code}"
            if attempt + 1 < attempts:
                delay = self._backoff * 2**attempt * random.uniform(0.8, 1.2)  # noqa: S311 - jitter
                log.warning("%s; retrying in %.2f s", failure, delay)
                await asyncio.sleep(delay)
        if not idempotent:
            failure += " (not retried: the outcome is unknown)"
        raise GatewayUnavailable(failure)

    def _check(
        self,
        response: _Answer,
        what: str,
        *,
        not_found: type[GatewayError],
        unprocessable: type[GatewayError] | None = None,
    ) -> None:
        status = response.status_code
        if status < 400:
            return
        detail = f"{what}: {status} {_error_text(response)}".rstrip()
        if status in (401, 403):
            raise GatewayUnauthorized(f"{what}: the gateway refused WHATSAPP_GATEWAY_API_KEY")
        if status == 404:
            raise not_found(detail)
        if status == 422 and unprocessable is not None:
            raise unprocessable(detail)
        raise GatewayRequestError(detail, status)

    def _check_send(self, response: _Answer, what: str) -> None:
        """Errors of calls that need a WORKING session: 404 (not started), 422 (not WORKING)
        and 409 all mean the session cannot send now."""
        if response.status_code == 409:
            raise SessionNotConnected(f"{what}: 409 {_error_text(response)}".rstrip())
        self._check(
            response, what, not_found=SessionNotConnected, unprocessable=SessionNotConnected
        )


@dataclass(frozen=True, slots=True)
class _Answer:
    """The gateway's answer, read whole: small JSON bodies."""

    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """ValueError when the body is not JSON."""
        return json.loads(self.content)


def _seg(value: str) -> str:
    return quote(value, safe="")


def _json(response: _Answer, what: str) -> dict[str, Any]:
    """The JSON object of a 2xx answer; anything else (a proxy's HTML page) is an error."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise GatewayRequestError(f"{what}: the gateway answered without a JSON object", 502)
    return data


def _json_or_none(response: _Answer) -> object:
    # After a send went through, an odd answer body must not look like a failed send.
    try:
        return response.json()
    except ValueError:
        return None


def _error_text(response: _Answer) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(data, dict):
        message = data.get("message") or data.get("error") or ""
        return str(message)[:200]
    return ""
