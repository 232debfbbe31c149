"""The database decides a Retry: concurrent transactions (as two web processes would run them)
reset a failed reply exactly once, on SQLite and on PostgreSQL, and never a delivered one."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from app.config import Settings
from app.relay.outbound.chatwoot_webhook import RetryRequested
from app.relay.outbound.retry import request_retry
from app.store.db import database, thread_connection
from app.store.ids import new_id, new_token
from app.store.models import (
    EVENT_DELIVERED,
    EVENT_FAILED,
    EVENT_PENDING,
    Account,
    ChatwootIntegration,
    Instance,
    MessageMap,
    RelayEvent,
)

CHAT = "16505551234"
MESSAGE_ID = 4242
RACERS = 8


def seed(status: str, **fields: object) -> ChatwootIntegration:
    """An integration with one agent reply (Chatwoot message ``MESSAGE_ID``) in ``status``."""
    with database.connection_context():
        account = Account.create(id=new_id("acc"), name="Acme", token_hash=new_token())
        instance = Instance.create(
            id=new_id("ins"),
            account=account,
            name="suporte",
            token_hash=new_token(),
            provider="cloud",
        )
        integration = ChatwootIntegration(
            id=new_id("int"),
            instance=instance,
            chatwoot_base_url="https://chatwoot.example.com",
            chatwoot_account_id=1,
            chatwoot_inbox_id=7,
            chatwoot_inbox_name="WhatsApp",
        )
        integration.set_secret("chatwoot_api_token", "cw-token")
        integration.set_secret("webhook_secret", "hook-secret")
        integration.save(force_insert=True)
        RelayEvent.create(
            integration=integration,
            direction="outbound",
            natural_key=f"cw:{MESSAGE_ID}",
            chat_key=CHAT,
            kind="reply",
            payload="{}",
            status=status,
            attempts=1,
            **fields,
        )
        return integration


def race(integration: ChatwootIntegration, explicit: bool) -> list[bool]:
    """``RACERS`` intake transactions asking for the same Retry at the same moment."""
    retry = RetryRequested(MESSAGE_ID, 1, CHAT, explicit=explicit)
    start = threading.Barrier(RACERS)
    results: list[bool] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            with thread_connection():
                start.wait()
                with database.atomic():
                    results.append(request_retry(integration, retry))
        except BaseException as exc:  # reported below, with the results
            errors.append(exc)

    run_threads(one)
    assert errors == []
    return results


def run_threads(target: Callable[[], None]) -> None:
    threads = [threading.Thread(target=target) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def reply() -> RelayEvent:
    with database.connection_context():
        found: RelayEvent = RelayEvent.get(RelayEvent.natural_key == f"cw:{MESSAGE_ID}")
        return found


def add_part(integration: ChatwootIntegration, wamid: str, status: str | None) -> None:
    with database.connection_context():
        MessageMap.create(
            integration=integration,
            whatsapp_message_id=wamid,
            chatwoot_message_id=MESSAGE_ID,
            chatwoot_conversation_id=1,
            direction="outgoing",
            status=status,
        )


@pytest.mark.parametrize("explicit", [True, False])
def test_a_failed_reply_is_reset_once(store_settings: Settings, explicit: bool) -> None:
    integration = seed(EVENT_FAILED, last_error="131026: Message undeliverable", progress=1)

    assert sorted(race(integration, explicit)) == [False] * (RACERS - 1) + [True]

    event = reply()
    assert (event.status, event.attempts, event.progress) == (EVENT_PENDING, 1, 1)
    assert event.last_error == "retrying: 131026: Message undeliverable"


@pytest.mark.parametrize("ticks", [["sent"], ["delivered"], ["read"], [None], ["failed", "read"]])
def test_a_delivered_reply_is_never_reset(store_settings: Settings, ticks: list[str]) -> None:
    integration = seed(EVENT_DELIVERED)
    for n, tick in enumerate(ticks):
        add_part(integration, f"wamid.{n}", tick)

    assert race(integration, explicit=True) == [False] * RACERS
    assert reply().status == EVENT_DELIVERED


def test_a_reply_whatsapp_reported_failed_is_reset_once_from_its_first_part(
    store_settings: Settings,
) -> None:
    integration = seed(EVENT_DELIVERED, progress=2)
    add_part(integration, "wamid.a", "failed")
    add_part(integration, "wamid.b", "failed")

    assert sorted(race(integration, explicit=True)) == [False] * (RACERS - 1) + [True]

    event = reply()
    assert (event.status, event.progress) == (EVENT_PENDING, 0)
    with database.connection_context():
        assert MessageMap.select().count() == 0  # the refused ids are forgotten


def test_only_an_explicit_retry_resends_a_reply_whatsapp_reported_failed(
    store_settings: Settings,
) -> None:
    """Our own late ``sent`` tick looks like Retry's second update: it must not resend."""
    integration = seed(EVENT_DELIVERED)
    add_part(integration, "wamid.a", "failed")

    assert race(integration, explicit=False) == [False] * RACERS
    assert reply().status == EVENT_DELIVERED


@pytest.mark.parametrize("status", [EVENT_PENDING, "waiting"])
def test_a_pending_reply_is_left_alone(store_settings: Settings, status: str) -> None:
    integration = seed(status, in_flight=True, claim_token="drain-1")

    assert race(integration, explicit=True) == [False] * RACERS
    event = reply()
    assert (event.status, event.claim_token) == (status, "drain-1")
