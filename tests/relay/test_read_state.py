"""The per-chat read state behind blue ticks (app/relay/read_receipts.py), on SQLite and
PostgreSQL: the last customer message delivered, and marking it read exactly once, even when two
workers try at the same time, against the fake Graph."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from app.config import Settings
from app.management.accounts import create_account
from app.management.instances import CloudSettings, NewInstance, create_instance
from app.management.integrations import save_request
from app.management.provisioning import IntegrationRequest
from app.relay import read_receipts
from app.relay.messages import InboundMessage
from app.store.db import database
from app.store.models import ChatReadState, ChatwootIntegration
from tests.fakes.graph import FakeGraph
from tests.relay.bridge import CLOUD_ACCESS_TOKEN, PHONE_NUMBER_ID

CHAT = "16505551234"


@pytest.fixture
def integration(store_settings: Settings, graph: FakeGraph) -> Iterator[ChatwootIntegration]:
    with database.connection_context():
        account, _ = create_account("Acme")
        cloud = CloudSettings(
            phone_number_id=PHONE_NUMBER_ID,
            access_token=CLOUD_ACCESS_TOKEN,
            app_secret="s",
            api_base_url=graph.base_url,
        )
        spec = NewInstance(name="suporte", provider="cloud", cloud=cloud)
        instance = create_instance(account, spec).instance
        request = IntegrationRequest(
            base_url="https://cw.example.com", account_id=1, api_token="t", inbox_name="WA"
        )
        created, _ = save_request(instance, request)
        yield created


def message(message_id: str, timestamp: int | None, **fields: object) -> InboundMessage:
    return InboundMessage(
        message_id=message_id,
        chat_id=CHAT,
        sender_id=CHAT,
        kind=fields.pop("kind", "text"),  # type: ignore[arg-type]
        timestamp=timestamp,
        text="hi",
        **fields,  # type: ignore[arg-type]
    )


def state() -> ChatReadState:
    found: ChatReadState = ChatReadState.get(ChatReadState.chat_key == CHAT)
    return found


def test_the_newest_delivered_customer_message_is_remembered(
    integration: ChatwootIntegration,
) -> None:
    read_receipts.remember_inbound(integration, CHAT, message("wamid.2", 200))
    read_receipts.remember_inbound(integration, CHAT, message("wamid.1", 100))  # retried late
    assert state().last_inbound_id == "wamid.2"
    for skipped in (
        message("wamid.r", 300, kind="reaction"),
        message("wamid.e", 300, direction="outgoing"),
        message("noid-0123456789abcdef", 300),
    ):
        read_receipts.remember_inbound(integration, CHAT, skipped)
    assert state().last_inbound_id == "wamid.2"
    read_receipts.remember_inbound(integration, CHAT, message("wamid.3", None))
    assert (state().last_inbound_id, state().read_id) == ("wamid.3", None)


def test_mark_read_false_remembers_nothing(integration: ChatwootIntegration) -> None:
    integration.mark_read = False
    read_receipts.remember_inbound(integration, CHAT, message("wamid.1", 100))
    assert ChatReadState.select().count() == 0


def test_marked_read_once_even_by_racing_workers(
    integration: ChatwootIntegration, graph: FakeGraph
) -> None:
    read_receipts.remember_inbound(integration, CHAT, message("wamid.1", 100))
    start = threading.Barrier(4)

    def reply() -> None:
        with database.connection_context():
            start.wait()
            read_receipts.mark_read_before_reply(integration, CHAT)

    workers = [threading.Thread(target=reply) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert graph.read_receipts == [
        {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.1"}
    ]
    assert state().read_id == "wamid.1"
    read_receipts.mark_read_before_reply(integration, CHAT)
    assert len(graph.read_receipts) == 1


def test_a_refused_read_is_not_tried_again_an_unanswered_one_is(
    integration: ChatwootIntegration, graph: FakeGraph
) -> None:
    read_receipts.remember_inbound(integration, CHAT, message("wamid.1", 100))
    graph.fail_next("POST", r"/messages$", 503, times=2)  # both tries of the read
    read_receipts.mark_read_before_reply(integration, CHAT)
    assert state().read_id is None  # handed back: the next reply tries again

    read_receipts.remember_inbound(integration, CHAT, message("wamid.2", 200))
    graph.fail_next("POST", r"/messages$", 400, 100)
    read_receipts.mark_read_before_reply(integration, CHAT)
    assert state().read_id == "wamid.2"  # Meta refused it: asking again would not help
    read_receipts.mark_read_before_reply(integration, CHAT)
    assert graph.read_receipts == []
