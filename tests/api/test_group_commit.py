"""Group-committed intake: many webhooks, one transaction; each answered only once stored."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import peewee
import pytest
from starlette.testclient import TestClient

from app.api.intake_writer import commit_batch, enqueue_lanes, writer_of
from app.config import Settings, use_settings
from app.management.accounts import create_account
from app.management.lookup_cache import bump_config_version
from app.relay.inbound.cloud_webhook import parse_cloud_webhook
from app.relay.inbound.intake_batch import InboundOutcome, InboundRequest
from app.relay.lanes.drain import claim_enqueue
from app.store.counters import counters_of
from app.store.db import database
from app.store.ids import new_id
from app.store.models import STATE_ACTIVE, ChatwootIntegration, Instance, RelayEvent
from app.store.redis_client import reset_clients
from tests.api.helpers import auth
from tests.conftest import make_client
from tests.relay.bridge import APP_SECRET, PHONE_NUMBER_ID, sign, text_body

NAME = "suporte"


def seed_integration(instance_name: str = NAME) -> str:
    """An active integration with an inbox (deliverable), written straight to the store."""
    with database.connection_context():
        instance = Instance.get(Instance.name == instance_name)
        integration = ChatwootIntegration(
            id=new_id("int"),
            instance=instance,
            chatwoot_base_url="https://chatwoot.example.com",
            chatwoot_account_id=1,
            chatwoot_inbox_id=7,
            chatwoot_inbox_name="WhatsApp",
            state=STATE_ACTIVE,
        )
        integration.set_secret("chatwoot_api_token", "cw-token")
        integration.set_secret("webhook_secret", "hook-secret")
        integration.save(force_insert=True)
    bump_config_version()
    return str(integration.id)


def create_instance(client: TestClient, account_token: str, secret: str = APP_SECRET) -> None:
    body = {
        "name": NAME,
        "provider": "cloud",
        "cloudPhoneNumberId": PHONE_NUMBER_ID,
        "cloudAccessToken": "EAAG-test-access-token",
        "cloudAppSecret": secret,
    }
    response = client.post("/api/instance/new", json=body, headers=auth(account_token))
    assert response.status_code == 201, response.text


def post(client: TestClient, body: dict[str, Any], secret: str = APP_SECRET) -> Any:
    raw = json.dumps(body).encode()
    headers = {"content-type": "application/json", "x-hub-signature-256": sign(raw, secret)}
    return client.post(f"/webhooks/whatsapp/cloud/{NAME}", content=raw, headers=headers)


def events(integration_id: str) -> list[RelayEvent]:
    with database.connection_context():
        query = RelayEvent.select().where(RelayEvent.integration == integration_id)
        return list(query.order_by(RelayEvent.id))


@pytest.fixture
def token(store_settings: Settings) -> str:
    with database.connection_context():
        _, account_token = create_account("Acme")
    return account_token


@pytest.fixture
def client(store_settings: Settings, token: str) -> Iterator[TestClient]:
    with make_client(store_settings) as test_client:
        create_instance(test_client, token)
        yield test_client


def test_concurrent_webhooks_stored_once_each_in_order_per_chat(client: TestClient) -> None:
    integration_id = seed_integration()
    chats, per_chat = 16, 25
    answers: list[tuple[int, dict[str, Any]]] = []

    def customer(n: int) -> None:  # one chat: its messages one after the other, in order
        for k in range(per_chat):
            body = text_body(f"5511900000{n:03d}", f"wamid.c{n}-{k}", f"message {k}")
            response = post(client, body)
            answers.append((response.status_code, response.json()))

    threads = [threading.Thread(target=customer, args=(n,)) for n in range(chats)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [(200, {"received": 1, "stored": 1})] * (chats * per_chat)
    stored = events(integration_id)
    assert len({e.natural_key for e in stored}) == len(stored) == chats * per_chat
    for n in range(chats):
        keys = [e.natural_key for e in stored if e.chat_key == f"5511900000{n:03d}"]
        assert keys == [f"msg:wamid.c{n}-{k}" for k in range(per_chat)]
    with database.connection_context():
        assert counters_of(integration_id)[("inbound", "received")] == chats * per_chat
    writer = writer_of(client.app)  # type: ignore[arg-type]
    assert writer.requests == chats * per_chat
    assert writer.batches < writer.requests, "no two requests ever shared a transaction"
    # every lane was enqueued: its queued flag is set, as claim_enqueue would have set it
    assert not claim_enqueue("inbound", integration_id, "5511900000000")


def inbound(integration_id: str, body: dict[str, Any]) -> InboundRequest:
    return InboundRequest.of(integration_id, parse_cloud_webhook(body, PHONE_NUMBER_ID).events)


def refuse_poison() -> None:
    """A real database rule that refuses one natural key (a bad row, as far as we know)."""
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        database.execute_sql(
            "ALTER TABLE relay_event ADD CONSTRAINT no_poison "
            "CHECK (natural_key NOT LIKE '%%POISON%%')"
        )
    else:
        database.execute_sql(
            "CREATE TRIGGER no_poison BEFORE INSERT ON relay_event "
            "WHEN NEW.natural_key LIKE '%POISON%' BEGIN SELECT RAISE(ABORT, 'poison'); END"
        )


def test_a_poisoned_request_costs_only_itself(client: TestClient) -> None:
    integration_id = seed_integration()
    with database.connection_context():
        refuse_poison()
        poisoned = text_body("5511911111111", "wamid.POISON", "bad")
        poisoned["entry"][0]["changes"][0]["value"]["messages"].append(
            text_body("5511911111111", "wamid.fine", "good")["entry"][0]["changes"][0]["value"][
                "messages"
            ][0]
        )
        requests = [
            inbound(integration_id, text_body("5511922222222", "wamid.a", "a")),
            inbound(integration_id, poisoned),
            inbound(integration_id, text_body("5511933333333", "wamid.b", "b")),
        ]
        results = commit_batch(requests)
        assert [r.stored for r in results if isinstance(r, InboundOutcome)] == [1, 1, 1]
        assert counters_of(integration_id)[("inbound", "received")] == 3
    keys = [e.natural_key for e in events(integration_id)]
    assert keys == ["msg:wamid.a", "msg:wamid.fine", "msg:wamid.b"]


def test_a_redelivery_inside_one_batch_is_stored_once(client: TestClient) -> None:
    integration_id = seed_integration()
    body = text_body("5511944444444", "wamid.twice", "hello")
    with database.connection_context():
        results = commit_batch([inbound(integration_id, body), inbound(integration_id, body)])
        assert [r.stored for r in results if isinstance(r, InboundOutcome)] == [1, 0]
        assert counters_of(integration_id)[("inbound", "received")] == 1
    assert [e.natural_key for e in events(integration_id)] == ["msg:wamid.twice"]
    assert post(client, body).json() == {"received": 1, "stored": 0}


def test_batch_enqueue_keeps_the_queued_flag_of_claim_enqueue(client: TestClient) -> None:
    integration_id = seed_integration()
    enqueue_lanes([("inbound", integration_id, "chat-1"), ("outbound", integration_id, "c2")])
    assert not claim_enqueue("inbound", integration_id, "chat-1")
    assert not claim_enqueue("outbound", integration_id, "c2")
    assert claim_enqueue("inbound", integration_id, "chat-3")


def test_redis_down_still_answers_200_once_stored(
    store_settings: Settings, token: str, client: TestClient
) -> None:
    integration_id = seed_integration()
    down = replace(store_settings, redis_url="redis://127.0.0.1:1/0")
    reset_clients()
    try:
        with make_client(down) as no_redis:
            response = post(no_redis, text_body("5511955555555", "wamid.nored", "hi"))
    finally:
        use_settings(store_settings)
        reset_clients()
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 1, "stored": 1}
    assert [e.natural_key for e in events(integration_id)] == ["msg:wamid.nored"]
