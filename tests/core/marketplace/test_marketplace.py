"""core.marketplace without the app: signed user data, salon ids, tokens, links, the poster."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from PIL import Image, ImageFont

from core.marketplace import (
    MAX_BRANCHES,
    TOKEN_AUDIENCE,
    SignatureInvalid,
    SignatureMissing,
    TokenInvalid,
    TooManyBranches,
    application_is_active,
    application_status,
    decode_user_data,
    encode_user_data,
    issue_token,
    partner_token_matches,
    poster,
    read_token,
    salon_ids_from_query,
    telegram_link,
    verify_user_data,
    whatsapp_link,
)

PARTNER = "partner-token-0123456789"
KEY = "k" * 64
# `{"id":1,"name":"Ана ~?>"}`: its URL-safe base64 has `-` and `_` and needs one `=` of padding.
RAW = '{"id": 1, "name": "Ана ~?>"}'.encode()


def sign(raw: bytes, key: str = PARTNER) -> str:
    return hmac.new(key.encode(), raw, hashlib.sha256).hexdigest()


def test_url_safe_user_data_with_missing_padding_decodes_exactly() -> None:
    encoded = base64.urlsafe_b64encode(RAW).decode()
    assert "-" in encoded or "_" in encoded
    assert encoded.endswith("=")
    assert decode_user_data(encoded) == RAW
    assert decode_user_data(encoded.rstrip("=")) == RAW
    assert encode_user_data(RAW) == encoded.rstrip("=")
    # What a plain b64decode makes of it: an error, or silently different bytes.
    try:
        plain: bytes | None = base64.b64decode(encoded)
    except binascii.Error:
        plain = None
    assert plain != RAW
    # A standard-alphabet sender's `+` arrives as a space after query decoding.
    standard = base64.b64encode(RAW).decode().replace("+", " ")
    assert decode_user_data(standard) == RAW


@pytest.mark.parametrize("bad", ["a", "!!!!", "abc$def", "ab=cd"])
def test_user_data_that_is_not_base64_is_refused(bad: str) -> None:
    with pytest.raises(SignatureInvalid):
        decode_user_data(bad)


def test_verify_user_data() -> None:
    encoded = encode_user_data(RAW)
    user = verify_user_data(encoded, sign(RAW), PARTNER)
    assert (user.id, user.name) == (1, "Ана ~?>")
    assert verify_user_data(encoded, sign(RAW).upper(), PARTNER).id == 1
    with pytest.raises(SignatureMissing):
        verify_user_data(encoded, None, PARTNER)
    with pytest.raises(SignatureMissing):
        verify_user_data(None, sign(RAW), PARTNER)
    for wrong in (sign(RAW, "other"), "0" * 64, "zz", "подпись"):
        with pytest.raises(SignatureInvalid):
            verify_user_data(encoded, wrong, PARTNER)
    not_object = b"[1, 2]"
    with pytest.raises(SignatureInvalid):
        verify_user_data(encode_user_data(not_object), sign(not_object), PARTNER)


def test_user_id_may_come_as_user_id_and_salons_may_be_named() -> None:
    raw = json.dumps({"user_id": "77", "salon_ids": [5, "6"], "phone": 79990009900}).encode()
    user = verify_user_data(encode_user_data(raw), sign(raw), PARTNER)
    assert user.id == 77 and user.salon_ids == (5, 6) and user.phone == "79990009900"


def test_salon_ids_from_the_query() -> None:
    assert salon_ids_from_query([("salon_id", "42")]) == [42]
    assert salon_ids_from_query(
        [("salon_ids[1]", "8"), ("salon_ids[0]", "7"), ("salon_ids[2]", "7")]
    ) == [7, 8]
    assert salon_ids_from_query([("salon_ids[]", "3"), ("salon_ids[]", "4")]) == [3, 4]
    assert salon_ids_from_query([("salon_id", "x"), ("salon_id", "-1"), ("other", "5")]) == []
    many = [(f"salon_ids[{i}]", str(100 + i)) for i in range(MAX_BRANCHES)]
    assert salon_ids_from_query(many) == list(range(100, 100 + MAX_BRANCHES))
    with pytest.raises(TooManyBranches):
        salon_ids_from_query([*many, ("salon_ids[99]", "999")])
    # The same branch twice is one branch.
    assert len(salon_ids_from_query([*many, ("salon_ids[99]", "100")])) == MAX_BRANCHES


def test_tokens_round_trip_and_refuse_everything_else() -> None:
    token = issue_token(KEY, 42, [42, 43])
    claims = read_token(KEY, token)
    assert claims.yclients_id == 42 and claims.branches == (42, 43) and claims.jti
    assert timedelta(minutes=59) < claims.expires_at - datetime.now(UTC) <= timedelta(hours=1)
    assert read_token(KEY, issue_token(KEY, 42)).jti != claims.jti

    payload = jwt.decode(token, KEY, algorithms=["HS256"], audience=TOKEN_AUDIENCE)
    refused = {
        "expired": issue_token(KEY, 42, now=datetime.now(UTC) - timedelta(minutes=61)),
        "other key": issue_token("x" * 48, 42),
        "other purpose": issue_token(KEY, 42, purpose="login"),
        "no purpose": jwt.encode({k: v for k, v in payload.items() if k != "purpose"}, KEY),
        "no jti": jwt.encode({k: v for k, v in payload.items() if k != "jti"}, KEY),
        "no exp": jwt.encode({k: v for k, v in payload.items() if k != "exp"}, KEY),
        "HS512": jwt.encode(payload, KEY, algorithm="HS512"),
        "none": jwt.encode(payload, None, algorithm="none"),
        "bad sub": jwt.encode({**payload, "sub": "salon"}, KEY),
        "empty": "",
    }
    for name, bad in refused.items():
        with pytest.raises(TokenInvalid) as caught:
            read_token(KEY, bad)
        assert caught.value.expired is (name == "expired"), name


def test_application_status_reads_the_documented_connection_status() -> None:
    def answer(status: str) -> dict[str, object]:
        return {
            "logs": [],
            "payments": [],
            "connection_status": {"status": status, "created_at": "2026-11-01T10:00:00+03:00"},
        }

    assert application_status(answer("pending")) == "pending"
    assert application_status(answer("Active")) == "active"
    assert application_is_active(answer("active"))
    assert not application_is_active(answer("pending"))
    assert not application_is_active(answer("uninstalled"))
    # An object status wins over anything else at the top level.
    assert not application_is_active({**answer("pending"), "status": "active"})
    assert application_status({"connection_status": "active"}) == "active"
    assert application_status({"connection_status": None}) is None


def test_application_status_readings() -> None:
    assert application_is_active({"status": "active"})
    assert application_is_active({"status": "ACTIVE "})
    assert application_is_active({"status": 1})
    assert application_is_active({"is_active": True})
    for inactive in ({"status": "frozen"}, {"status": "uninstalled"}, {"status": 0}, {}):
        assert not application_is_active(inactive)


def test_partner_token_comparison() -> None:
    assert partner_token_matches(PARTNER, PARTNER)
    for wrong in (PARTNER + " ", "", None, 1, "пароль", PARTNER[:-1]):
        assert not partner_token_matches(wrong, PARTNER)
    assert not partner_token_matches(PARTNER, None)


def test_links() -> None:
    assert telegram_link("@salon_bot", 42) == "https://t.me/salon_bot?start=salon-42"
    assert telegram_link(None, 42) is None
    assert whatsapp_link("+79001234567") == "https://wa.me/79001234567"
    assert whatsapp_link(None) is None


def test_the_poster_has_both_codes_and_a_cyrillic_font() -> None:
    assert poster.FONT.exists(), "fonts-dejavu-core is missing: run `make system-deps`"
    png = poster.render_poster(
        "Салон «Роза»",
        [("Telegram", "https://t.me/salon_bot?start=salon-1"), ("WhatsApp", "https://wa.me/7900")],
        "ru",
        poster.Offer(5, 0, 30),
    )
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == poster.PAPERS["a5"]
    assert isinstance(poster.poster_font(True, 54), ImageFont.FreeTypeFont)
