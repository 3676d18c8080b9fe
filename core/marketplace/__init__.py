"""The YClients Marketplace: how a salon joins, and its life as an installed app.

The owner's browser arrives at the registration redirect with `user_data` signed by YClients
(`signature`); the salon is registered (`pending_whatsapp`, `registration`) and the browser
gets a short-lived onboarding token for the page (`tokens`); the page links the salon's
WhatsApp (core.whatsapp.link); the owner activates and we send YClients the activation callback
(`activation`). Lifecycle webhooks (`uninstall`, `freeze`, `lifecycle`) and WhatsApp
`session.status` events keep the state current afterwards; every change of the salon's status
is a compare-and-set with an audit row (`status`). `links` are what the salon hands out,
`poster` prints them.
"""

from __future__ import annotations

from core.marketplace.activation import ActivationResult, activate, last_callback_failure
from core.marketplace.lifecycle import (
    MARKETPLACE,
    LifecycleOutcome,
    handle_lifecycle,
    handle_marketplace_event,
    lifecycle_for_storage,
    partner_token_matches,
)
from core.marketplace.links import max_link, telegram_link, whatsapp_link
from core.marketplace.registration import (
    REDIRECT_GRACE,
    Admission,
    RedirectRefused,
    Registration,
    admit_redirect,
    lift_all_frozen,
    lift_frozen,
    record_redirect_use,
    register_salon,
)
from core.marketplace.signature import (
    MAX_BRANCHES,
    MarketplaceUser,
    SignatureError,
    SignatureInvalid,
    SignatureMissing,
    TooManyBranches,
    as_int,
    decode_user_data,
    encode_user_data,
    salon_ids_from_query,
    sign_user_data,
    signature_hash,
    verify_user_data,
)
from core.marketplace.status import (
    ACTIVE,
    NOT_INSTALLED,
    PENDING,
    application_is_active,
    application_status,
    audit,
)
from core.marketplace.tokens import (
    TOKEN_AUDIENCE,
    TOKEN_ISSUER,
    TOKEN_PURPOSE,
    TOKEN_TTL,
    OnboardingClaims,
    TokenInvalid,
    issue_token,
    read_token,
)

__all__ = [
    "ACTIVE",
    "MARKETPLACE",
    "MAX_BRANCHES",
    "NOT_INSTALLED",
    "PENDING",
    "REDIRECT_GRACE",
    "TOKEN_AUDIENCE",
    "TOKEN_ISSUER",
    "TOKEN_PURPOSE",
    "TOKEN_TTL",
    "ActivationResult",
    "Admission",
    "LifecycleOutcome",
    "MarketplaceUser",
    "OnboardingClaims",
    "RedirectRefused",
    "Registration",
    "SignatureError",
    "SignatureInvalid",
    "SignatureMissing",
    "TokenInvalid",
    "TooManyBranches",
    "activate",
    "admit_redirect",
    "application_is_active",
    "application_status",
    "as_int",
    "audit",
    "decode_user_data",
    "encode_user_data",
    "handle_lifecycle",
    "handle_marketplace_event",
    "issue_token",
    "last_callback_failure",
    "lifecycle_for_storage",
    "lift_all_frozen",
    "lift_frozen",
    "max_link",
    "partner_token_matches",
    "read_token",
    "record_redirect_use",
    "register_salon",
    "salon_ids_from_query",
    "sign_user_data",
    "signature_hash",
    "telegram_link",
    "verify_user_data",
    "whatsapp_link",
]
