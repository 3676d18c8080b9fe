"""A contact shared with MAX's `request_contact` button, and whether MAX vouches for it.

The attachment is `{"vcf_info": "BEGIN:VCARD…TEL…", "hash": "<hex>", "max_info": {User}}`.
`hash` is the hex HMAC-SHA256 of `vcf_info` keyed with the bot's token (its CRLFs as sent); a
contact sent from the attachment menu (anyone's card) has none. The phone counts as the
sender's own, verified, only when the hash verifies (compared in constant time) **and** the
card's MAX user is the sender (shared/reference/max-bot-api.md §5).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_TEL = re.compile(r"^TEL[^:]*:(.+)$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True, slots=True)
class SharedContact:
    # The phone as the card writes it (often without `+`); None when the card has no TEL.
    phone: str | None
    # MAX vouches that the phone is the sender's own.
    verified: bool


def contact_hash(token: str, vcf_info: str) -> str:
    return hmac.new(token.encode(), vcf_info.encode(), hashlib.sha256).hexdigest()


def read_contact(token: str, payload: Mapping[str, Any], sender_id: int) -> SharedContact:
    vcf = payload.get("vcf_info")
    if not isinstance(vcf, str):
        return SharedContact(None, verified=False)
    found = _TEL.search(vcf)
    phone = found.group(1).strip() if found else None
    given = payload.get("hash")
    info = payload.get("max_info")
    owner = info.get("user_id") if isinstance(info, Mapping) else None
    verified = (
        isinstance(given, str)
        and given.isascii()
        and hmac.compare_digest(given.lower().encode(), contact_hash(token, vcf).encode())
        and isinstance(owner, int)
        and owner == sender_id
        and phone is not None
    )
    return SharedContact(phone, verified=verified)
