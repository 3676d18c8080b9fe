"""The onboarding token: a short-lived JWT that opens the onboarding page and its API for the
salons of one redirect."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from core.marketplace.signature import as_int

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
