"""core.max against the fake MAX Bot API: auth, errors, the per-chat limit and 429 on an
injected clock, uploads, the contact hash, and the CA the https client trusts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from core.max import (
    MaxBlocked,
    MaxClient,
    MaxRateLimited,
    MaxUnauthorized,
    MaxUnavailable,
    read_contact,
)
from core.max.client import ssl_context
from core.parts import half_configured
from core.settings import SettingsError, load_settings
from tests.fakes.clock import FakeClock
from tests.fakes.max import TOKEN, FakeMaxAPI, MaxUser


@pytest.fixture
async def fake() -> AsyncIterator[FakeMaxAPI]:
    async with FakeMaxAPI() as api:
        yield api


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(fake: FakeMaxAPI, clock: FakeClock) -> AsyncIterator[MaxClient]:
    max_client = MaxClient(TOKEN, fake.url, clock=clock.clock())
    yield max_client
    await max_client.aclose()


async def test_the_token_goes_raw_in_the_header_and_a_bearer_one_is_refused(
    fake: FakeMaxAPI, client: MaxClient
) -> None:
    assert (await client.me())["username"] == "salonbot_max_bot"
    bearer = MaxClient(f"Bearer {TOKEN}", fake.url)
    try:
        with pytest.raises(MaxUnauthorized):
            await bearer.me()
    finally:
        await bearer.aclose()


async def test_at_most_two_actions_a_second_per_chat_the_third_waits_on_the_clock(
    fake: FakeMaxAPI, client: MaxClient, clock: FakeClock
) -> None:
    await client.send(1, {"text": "one"})
    await client.send(2, {"text": "another chat"})
    await client.send(1, {"text": "two"})
    third = asyncio.create_task(client.send(1, {"text": "three"}))
    assert await clock.next_sleep() == pytest.approx(1.0)
    assert [c.body["text"] for c in fake.sent_to(1)] == ["one", "two"]
    clock.advance(1.0)
    await third
    assert [c.body["text"] for c in fake.sent_to(1)] == ["one", "two", "three"]


async def test_429_backs_off_doubling_then_gives_up(
    fake: FakeMaxAPI, client: MaxClient, clock: FakeClock
) -> None:
    fake.busy = 2
    sending = asyncio.create_task(client.send(1, {"text": "hi"}))
    for wait in (1.0, 2.0):
        assert await clock.next_sleep() == pytest.approx(wait)
        clock.advance(wait)
    await sending
    assert len(fake.sent_to(1)) == 3

    fake.busy = 10
    failing = asyncio.create_task(client.send(2, {"text": "hi"}))
    for wait in (1.0, 2.0, 4.0):
        assert await clock.next_sleep() == pytest.approx(wait)
        clock.advance(wait)
    with pytest.raises(MaxRateLimited):
        await failing
    assert len(fake.sent_to(2)) == 4


async def test_a_blocked_person_and_a_dead_api_are_told_apart(
    fake: FakeMaxAPI, client: MaxClient
) -> None:
    fake.blocked.add(7)
    with pytest.raises(MaxBlocked) as blocked:
        await client.send(7, {"text": "hi"})
    assert blocked.value.status == 403 and blocked.value.code == "chat.denied"
    url = fake.url
    await fake.close()
    gone = MaxClient(TOKEN, url)
    try:
        with pytest.raises(MaxUnavailable):
            await gone.me()
    finally:
        await gone.aclose()


async def test_an_image_is_uploaded_and_sent_by_its_token(
    fake: FakeMaxAPI, client: MaxClient
) -> None:
    payload = await client.upload_image(b"\x89PNG fake", "code.png")
    assert fake.image(payload["token"]) == b"\x89PNG fake"
    await client.send(1, {"text": "code", "attachments": [{"type": "image", "payload": payload}]})
    (upload,) = [c for c in fake.calls if c.path.startswith("/upload/")]
    assert upload.files == {"data": b"\x89PNG fake"}


async def test_polling_commits_with_the_marker(fake: FakeMaxAPI, client: MaxClient) -> None:
    anna = MaxUser(5)
    fake.push(anna.says("one"))
    fake.push(anna.says("two"))
    updates, marker = await client.updates(timeout=0)
    assert [u["message"]["body"]["text"] for u in updates] == ["one", "two"]
    fake.push(anna.says("three"))
    updates, marker = await client.updates(marker, timeout=0)
    assert [u["message"]["body"]["text"] for u in updates] == ["three"]
    assert (await client.updates(marker, timeout=0))[0] == []


def test_a_contact_counts_only_with_a_valid_hash_and_as_the_senders_own() -> None:
    anna = MaxUser(5)

    def card(update: dict[str, object]) -> dict[str, object]:
        message = update["message"]
        return message["body"]["attachments"][0]["payload"]  # type: ignore[index,no-any-return]

    good = read_contact(TOKEN, card(anna.shares_contact("79991234567")), 5)
    assert good.verified and good.phone == "79991234567"
    for forged in (
        anna.shares_contact("79991234567", valid=False),
        anna.shares_contact("79991234567", owner=6),
        anna.shares_contact("79991234567", hashed=False),
        anna.shares_contact("79991234567", token="another-bots-token"),
    ):
        found = read_contact(TOKEN, card(forged), 5)
        assert not found.verified and found.phone == "79991234567"
    # Someone else forwarding Anna's genuine card proves nothing about the sender.
    assert not read_contact(TOKEN, card(anna.shares_contact("79991234567")), 6).verified


def test_the_https_client_trusts_the_russian_trusted_root_ca_and_still_verifies() -> None:
    context = ssl_context("https://platform-api2.max.ru")
    assert context is not None and context.check_hostname
    subjects = [dict(x[0] for x in cert["subject"]) for cert in context.get_ca_certs()]
    assert any(s.get("commonName") == "Russian Trusted Root CA" for s in subjects)
    assert ssl_context("http://127.0.0.1:1") is None


def test_max_settings_name_the_variable_and_the_fix() -> None:
    with pytest.raises(SettingsError, match="MAX_WEBHOOK_SECRET: must be 5 to 256"):
        load_settings(_env_file=None, secret_key="s" * 48, max_webhook_secret="no spaces!")
    half = load_settings(
        _env_file=None, secret_key="s" * 48, max_bot_token="t0ken", max_mode="webhook"
    )
    assert {(p.part, p.variable) for p in half_configured(half)} == {
        ("max", "MAX_WEBHOOK_SECRET"),
        ("max", "PUBLIC_BASE_URL"),
    }
    off = load_settings(_env_file=None, secret_key="s" * 48, max_bot_token="")
    assert off.max_bot_token is None and off.max_api_url == "https://platform-api2.max.ru"
