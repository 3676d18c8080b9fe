"""The MAX Bot API: a thin client (client.py) and the contact check (contact.py)."""

from __future__ import annotations

from core.max.client import (
    UPDATE_TYPES,
    Limits,
    MaxBlocked,
    MaxClient,
    MaxError,
    MaxNotFound,
    MaxRateLimited,
    MaxRequestError,
    MaxUnauthorized,
    MaxUnavailable,
)
from core.max.contact import SharedContact, contact_hash, read_contact

__all__ = [
    "UPDATE_TYPES",
    "Limits",
    "MaxBlocked",
    "MaxClient",
    "MaxError",
    "MaxNotFound",
    "MaxRateLimited",
    "MaxRequestError",
    "MaxUnauthorized",
    "MaxUnavailable",
    "SharedContact",
    "contact_hash",
    "read_contact",
]
