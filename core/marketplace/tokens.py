"""The tokens of the owner's page: short-lived JWTs that open the onboarding page (the owner's
page once the salon is active) and its API.

Two kinds, told apart by audience and purpose together: the onboarding token the marketplace
redirect issues (one hour, the salons of that redirect) and the owner's link an admin asks for
in chat (OWNER_TTL, one salon). Either opens the same page of its salon; a token of one kind's
audience with the other kind's purpose is refused.
"""

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
OWNER_AUDIENCE = "salonbot:owner-page"
OWNER_PURPOSE = "owner-page"
# A link sent in chat: the owner may open it later that day, not next week.
OWNER_TTL = timedelta(hours=24)
_PURPOSES = {TOKEN_AUDIENCE: TOKEN_PURPOSE, OWNER_AUDIENCE: OWNER_PURPOSE}
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
    # TOKEN_PURPOSE or OWNER_PURPOSE.
    purpose: str = TOKEN_PURPOSE


def issue_token(
    secret: str,
    yclients_id: int,
    branches: Sequence[int] = (),
    *,
    now: datetime | None = None,
    purpose: str = TOKEN_PURPOSE,
    ttl: timedelta = TOKEN_TTL,
    audience: str = TOKEN_AUDIENCE,
) -> str:
    issued = now or datetime.now(UTC)
    claims = {
        "iss": TOKEN_ISSUER,
        "aud": audience,
        "sub": str(yclients_id),
        "purpose": purpose,
        "branches": [int(b) for b in branches] or [yclients_id],
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


def issue_owner_token(
    secret: str, yclients_id: int, *, now: datetime | None = None, ttl: timedelta = OWNER_TTL
) -> str:
    """The owner's link to the page of one salon, as an admin asks for it in chat."""
    return issue_token(
        secret,
        yclients_id,
        now=now,
        purpose=OWNER_PURPOSE,
        ttl=ttl,
        audience=OWNER_AUDIENCE,
    )


def read_token(secret: str, token: str) -> OnboardingClaims:
    """The claims of a valid onboarding or owner token; TokenInvalid otherwise.

    The algorithm list is fixed (no `none`, no RS/HS confusion); `exp`, `aud`, `iss`, `sub`,
    `jti` and the purpose are all required, and the purpose must be the audience's own.
    """
    if not token or len(token) > 4096:
        raise TokenInvalid("no token")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],
            audience=list(_PURPOSES),
            issuer=TOKEN_ISSUER,
            options={"require": ["exp", "iat", "aud", "iss", "sub", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenInvalid("the token has expired", expired=True) from None
    except jwt.InvalidTokenError as exc:
        raise TokenInvalid(f"invalid token: {exc}") from None
    purpose = claims.get("purpose")
    if purpose is None or purpose != _PURPOSES.get(str(claims.get("aud"))):
        raise TokenInvalid("the token is not an onboarding or owner token")
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
        purpose=str(purpose),
    )
