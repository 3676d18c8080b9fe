"""What can go wrong talking to the WhatsApp gateway."""

from __future__ import annotations


class GatewayError(Exception):
    """Any failure talking to the WhatsApp gateway."""


class GatewayNotConfigured(GatewayError):
    """A WHATSAPP_* setting needed for the gateway is missing; the message names it."""


class GatewayUnauthorized(GatewayError):
    """The gateway refused the API key (401/403)."""


class GatewayUnavailable(GatewayError):
    """5xx, 429, a timeout or a connection error; for a send, the outcome is unknown."""


class GatewayRequestError(GatewayError):
    """The gateway rejected the request itself (another 4xx)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class SessionNotConnected(GatewayError):
    """The session cannot do this now: it is not WORKING, not started, or does not exist."""


class SessionNotFound(SessionNotConnected):
    """No session with that name exists on the gateway."""


class QrNotAvailable(GatewayError):
    """The session is not waiting for a link (not in SCAN_QR_CODE): no QR or pairing code."""
