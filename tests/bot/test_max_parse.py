"""What the MAX adapter reads from an update: the kinds it answers, and never an exception for
whatever else a webhook may carry."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bot.max.channel import Incoming
from tests.fakes.max import MaxUser

_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)


def _or_junk(right: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return right | _json


_user = _or_junk(
    st.fixed_dictionaries(
        {"user_id": _or_junk(st.integers(min_value=-5, max_value=2**64))},
        optional={"is_bot": _json, "first_name": _json, "name": _json},
    )
)
_contact = st.fixed_dictionaries({"type": st.just("contact"), "payload": _json})
_body = _or_junk(
    st.fixed_dictionaries(
        {"mid": _or_junk(st.text(max_size=8))},
        optional={"text": _json, "attachments": _or_junk(st.lists(_or_junk(_contact), max_size=2))},
    )
)
_recipient = st.fixed_dictionaries({"chat_type": _or_junk(st.just("dialog"))})
_message = _or_junk(
    st.fixed_dictionaries({"sender": _user, "recipient": _or_junk(_recipient), "body": _body})
)
_callback = st.fixed_dictionaries(
    {"callback_id": _or_junk(st.text(max_size=8)), "user": _user}, optional={"payload": _json}
)
_update = st.fixed_dictionaries(
    {"update_type": st.sampled_from(["message_created", "message_callback", "bot_started", "x"])},
    optional={
        "message": _message,
        "callback": _or_junk(_callback),
        "user": _user,
        "payload": _json,
        "user_locale": _json,
        "timestamp": _json,
    },
)


def test_the_updates_a_person_makes_are_read() -> None:
    anna = MaxUser(5, "Анна", "en")
    start = Incoming.parse(anna.starts("salon-555"))
    assert start is not None and (start.kind, start.payload, start.locale) == (
        "bot_started",
        "salon-555",
        "en",
    )
    said = Incoming.parse(anna.says(" hello "))
    assert said is not None and said.text == "hello" and said.ref.startswith("msg:mid.")
    card = Incoming.parse(anna.shares_contact("79991234567"))
    assert card is not None and card.contact is not None and "vcf_info" in card.contact
    press = Incoming.parse(anna.presses("bal"))
    assert press is not None and press.payload == "bal" and press.callback_id
    stop = Incoming.parse(anna.stops())
    assert stop is not None and stop.kind == "bot_stopped" and stop.user_id == 5


def test_groups_and_bots_are_not_answered() -> None:
    update: dict[str, Any] = MaxUser(5).says("hi")
    update["message"]["recipient"]["chat_type"] = "chat"
    assert Incoming.parse(update) is None
    bot = MaxUser(6).says("hi")
    bot["message"]["sender"]["is_bot"] = True
    assert Incoming.parse(bot) is None


@hypothesis_settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(update=_update)
def test_any_shape_parses_or_is_none_and_never_raises(update: dict[str, Any]) -> None:
    found = Incoming.parse(update)
    if found is not None:
        assert isinstance(found.user_id, int) and 0 < found.user_id < 2**63
        assert isinstance(found.text, str) and isinstance(found.ref, str)
