"""Inbound relay under failure: DESIGN invariants 1 (stored before acknowledged, recovered),
2 (idempotent, look before repeating) and 4 (failures classified, never swallowed).

Everything runs for real: webhooks through the TestClient, real Dramatiq workers on real Redis,
the fake Chatwoot and the fake Graph API as HTTP servers with injected faults.
"""

from __future__ import annotations

import copy
import hashlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dramatiq
import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

import workers.relay
from app.store.db import database
from app.store.models import RelayEvent, utcnow
from tests.api.helpers import auth, error_message, set_body
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.graph import FakeGraph
from tests.relay.bridge import (
    PHONE_NUMBER_ID,
    CloudBridge,
    make_cloud_bridge,
    reference_body,
    text_body,
    wait_until,
)

CUSTOMER = "16505551234"
OTHER_CUSTOMER = "447700900123"
ACCESS_TOKEN = "EAAG-test-access-token"
MESSAGES_PATH = r"/conversations/\d+/messages$"
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


# ---- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph_server() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def graph(graph_server: FakeGraph) -> Iterator[FakeGraph]:
    """The fake Graph API, emptied for each test, knowing the bridge's phone number."""
    graph_server.reset()
    graph_server.add_phone_number(PHONE_NUMBER_ID, ACCESS_TOKEN)
    yield graph_server
    assert graph_server.schema_errors == []


@pytest.fixture
def bridge(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    graph: FakeGraph,
    worker: Worker,
) -> CloudBridge:
    return make_cloud_bridge(client, account_token, chatwoot, graph_url=graph.base_url)


@contextmanager
def running_worker() -> Iterator[Worker]:
    """A worker like the ``worker`` fixture's, that a test can stop and start again."""
    broker = dramatiq.get_broker()
    running = Worker(broker, worker_threads=4, worker_timeout=50)
    running.start()
    try:
        yield running
    finally:
        running.stop()
        broker.middleware[:] = [
            m for m in broker.middleware if type(m).__name__ != "_WorkerMiddleware"
        ]


def post_text(bridge: CloudBridge, message_id: str, text: str, wa_id: str = CUSTOMER) -> None:
    response = bridge.post(text_body(wa_id, message_id, text))
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 1, "stored": 1}


def image_body(message_id: str, media_id: str, data: bytes) -> dict[str, Any]:
    body = copy.deepcopy(reference_body("inbound_image.json"))
    message = body["entry"][0]["changes"][0]["value"]["messages"][0]
    message["id"] = message_id
    message["image"] = {
        "mime_type": "image/jpeg",
        "sha256": hashlib.sha256(data).hexdigest(),
        "id": media_id,
    }
    return body


def listing(bridge: CloudBridge) -> dict[str, Any]:
    response = bridge.client.get(
        f"/api/chatwoot/list/{bridge.instance}", headers=auth(bridge.account_token)
    )
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def contents(bridge: CloudBridge) -> list[str]:
    return [str(m["content"]) for m in bridge.messages()]


def message_posts(chatwoot: FakeChatwoot) -> list[int]:
    """Statuses of every ``POST .../messages`` the fake answered, in order."""
    return [
        c.status for c in chatwoot.calls if c.method == "POST" and re.search(MESSAGES_PATH, c.path)
    ]


def statuses(bridge: CloudBridge) -> list[str]:
    return [e.status for e in bridge.events()]


def configured_token(bridge: CloudBridge) -> str:
    token: str = listing(bridge)["chatwoot_api_token"]
    return token


def set_again(bridge: CloudBridge, token: str, account_id: int) -> dict[str, Any]:
    response = bridge.client.post(
        f"/api/chatwoot/set/{bridge.instance}",
        json=set_body(bridge.chatwoot, account_id, token, inboxName="WhatsApp"),
        headers=auth(bridge.account_token),
    )
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


# ---- transient failures: 5xx and timeouts -------------------------------------------------


def test_chatwoot_5xx_keeps_the_event_pending_then_delivers_it_once(bridge: CloudBridge) -> None:
    bridge.chatwoot.fail_next("POST", MESSAGES_PATH, 503, times=3)

    post_text(bridge, "wamid.outage", "are you there?")

    wait_until(lambda: bridge.events()[0].last_error != "", what="the failure to be recorded")
    failed_at = time.monotonic()
    [event] = bridge.events()
    assert event.status == "pending"
    assert event.attempts == 1
    assert "503" in event.last_error
    assert event.next_attempt_at is not None
    assert 0 < (event.next_attempt_at - utcnow()).total_seconds() <= 3.5
    assert bridge.messages() == []
    assert message_posts(bridge.chatwoot) == [503, 503, 503]

    bridge.wait_for_events("delivered", 1, timeout=10)

    assert time.monotonic() - failed_at >= 1.0  # the backoff was waited for
    [message] = bridge.messages()
    assert message["content"] == "are you there?"
    assert message["source_id"] == "wamid.outage"
    assert message_posts(bridge.chatwoot) == [503, 503, 503, 200]
    [delivered] = bridge.events()
    assert delivered.attempts == 2
    assert delivered.last_error == ""
    assert delivered.next_attempt_at is None


def test_burst_during_an_outage_arrives_in_order_once_each(bridge: CloudBridge) -> None:
    bridge.chatwoot.fail_next("POST", MESSAGES_PATH, 503, times=3)

    for i in range(5):
        post_text(bridge, f"wamid.burst{i}", f"burst {i}")

    bridge.wait_for_events("delivered", 5, timeout=15)
    assert contents(bridge) == [f"burst {i}" for i in range(5)]
    assert [m["source_id"] for m in bridge.messages()] == [f"wamid.burst{i}" for i in range(5)]
    assert message_posts(bridge.chatwoot) == [503, 503, 503, 200, 200, 200, 200, 200]
    assert len(bridge.chatwoot.contacts) == 1
    assert len(bridge.chatwoot.conversations) == 1


def test_timeout_after_chatwoot_created_the_message_is_not_posted_twice(
    bridge: CloudBridge,
) -> None:
    # Chatwoot processes the POST at once but answers after 3 s (REMOTE_TIMEOUT_SECONDS=2).
    bridge.chatwoot.set_delay("POST", MESSAGES_PATH, 3.0, times=1)

    post_text(bridge, "wamid.slow", "slow answer")

    bridge.wait_for_events("delivered", 1, timeout=15)
    same_source = [m for m in bridge.messages() if m["source_id"] == "wamid.slow"]
    assert len(same_source) == 1
    assert same_source[0]["content"] == "slow answer"
    assert len(bridge.messages()) == 1
    assert len(message_posts(bridge.chatwoot)) == 1
    looked_up = [
        c for c in bridge.chatwoot.calls if c.method == "GET" and re.search(MESSAGES_PATH, c.path)
    ]
    assert len(looked_up) >= 1
    [event] = bridge.events()
    assert event.attempts == 2
    assert event.last_error == ""


# ---- permanent for the integration: 401, inbox deleted ----------------------------------


def test_revoked_token_holds_events_until_set_replays_them_in_order(bridge: CloudBridge) -> None:
    post_text(bridge, "wamid.before", "before")
    bridge.wait_for_events("delivered", 1)
    configured = listing(bridge)
    account_id = int(configured["chatwoot_account_id"])
    bridge.chatwoot.revoke_token(configured["chatwoot_api_token"])

    post_text(bridge, "wamid.held0", "held 0")
    wait_until(lambda: bridge.integration().state == "error", what="integration error")
    expected_error = (
        "Chatwoot rejected the API token — verify chatwootApiToken. Detail: Invalid Access Token"
    )
    assert bridge.integration().last_error == expected_error
    for i in (1, 2):
        post_text(bridge, f"wamid.held{i}", f"held {i}")

    listed = listing(bridge)
    assert listed["status"] == "error"
    assert listed["last_error"] == expected_error
    assert listed["relay"]["pending"] == 3
    assert listed["relay"]["failed"] == 0
    assert listed["relay"]["delivered"] == 1
    assert statuses(bridge) == ["delivered", "pending", "pending", "pending"]
    assert contents(bridge) == ["before"]

    new_token = bridge.chatwoot.add_user("Grace Admin", {account_id: "administrator"})
    answer = set_again(bridge, new_token, account_id)

    assert answer == {
        "instance": bridge.instance,
        "status": "active",
        "bridge_integration_id": bridge.integration_id,
        "message": "chatwoot integration activated",
    }
    bridge.wait_for_events("delivered", 4)
    assert contents(bridge) == ["before", "held 0", "held 1", "held 2"]
    assert len(bridge.chatwoot.conversations) == 1
    after = listing(bridge)
    assert after["status"] == "active"
    assert after["last_error"] == ""
    assert after["chatwoot_inbox_id"] == bridge.inbox_id
    assert after["relay"]["pending"] == 0
    assert after["relay"]["delivered"] == 4


def test_deleted_inbox_errors_the_integration_and_set_delivers_to_a_new_inbox(
    bridge: CloudBridge,
) -> None:
    post_text(bridge, "wamid.first", "first")
    bridge.wait_for_events("delivered", 1)
    account_id = int(listing(bridge)["chatwoot_account_id"])
    bridge.chatwoot.delete_inbox(account_id, bridge.inbox_id)

    post_text(bridge, "wamid.lost0", "after delete 0")
    wait_until(lambda: bridge.integration().state == "error", what="integration error")
    post_text(bridge, "wamid.lost1", "after delete 1")

    expected_error = (
        f"Chatwoot inbox {bridge.inbox_id} no longer exists — run set to create a new one"
    )
    assert bridge.integration().last_error == expected_error
    listed = listing(bridge)
    assert listed["status"] == "error"
    assert listed["last_error"] == expected_error
    assert listed["relay"]["pending"] == 2
    assert listed["relay"]["failed"] == 0

    token = configured_token(bridge)
    set_again(bridge, token, account_id)

    bridge.wait_for_events("delivered", 3)
    new_inbox = listing(bridge)["chatwoot_inbox_id"]
    assert new_inbox != bridge.inbox_id
    assert new_inbox in bridge.chatwoot.inboxes
    relayed = [m for m in bridge.messages() if m["inbox_id"] == new_inbox]
    assert [m["content"] for m in relayed] == ["after delete 0", "after delete 1"]
    [conversation] = bridge.chatwoot.conversations.values()
    assert conversation["inbox_id"] == new_inbox
    assert {m["conversation_id"] for m in relayed} == {conversation["id"]}
    assert len(bridge.chatwoot.contacts) == 1
    assert bridge.integration().state == "active"


# ---- conversation gone, 422, media gone: the chat goes on --------------------------------


def test_deleted_conversation_is_replaced_and_the_message_delivered(bridge: CloudBridge) -> None:
    post_text(bridge, "wamid.c1", "in the old conversation")
    bridge.wait_for_events("delivered", 1)
    [old] = bridge.chatwoot.conversations.values()
    del bridge.chatwoot.conversations[old["id"]]

    post_text(bridge, "wamid.c2", "in a new conversation")

    bridge.wait_for_events("delivered", 2)
    [new] = bridge.chatwoot.conversations.values()
    assert new["id"] != old["id"]
    assert new["inbox_id"] == bridge.inbox_id
    assert new["contact_id"] == old["contact_id"]
    latest = bridge.messages()[-1]
    assert latest["content"] == "in a new conversation"
    assert latest["conversation_id"] == new["id"]
    assert len(bridge.chatwoot.contacts) == 1
    assert [m["source_id"] for m in bridge.messages()] == ["wamid.c1", "wamid.c2"]
    assert bridge.integration().state == "active"


def test_unprocessable_message_fails_with_its_reason_and_the_chat_goes_on(
    bridge: CloudBridge,
) -> None:
    bridge.chatwoot.fail_next("POST", MESSAGES_PATH, 422, body={"error": "Content is too long"})

    post_text(bridge, "wamid.bad", "refused by Chatwoot")
    post_text(bridge, "wamid.next", "accepted afterwards")

    bridge.wait_for_events("failed", 1)
    bridge.wait_for_events("delivered", 1)
    failed, delivered = bridge.events()
    assert failed.message_id == "wamid.bad"
    assert failed.status == "failed"
    assert "Content is too long" in failed.last_error
    assert "422" in failed.last_error
    assert delivered.status == "delivered"
    assert contents(bridge) == ["accepted afterwards"]
    # the refused message, its private note for the agent, the next message
    assert message_posts(bridge.chatwoot) == [422, 200, 200]
    [note] = bridge.notes()
    assert "Content is too long" in note["content"]
    relay = listing(bridge)["relay"]
    assert (relay["pending"], relay["delivered"], relay["failed"]) == (0, 1, 1)

    post_text(bridge, "wamid.later", "still flowing")
    bridge.wait_for_events("delivered", 2)
    assert contents(bridge) == ["accepted afterwards", "still flowing"]
    assert bridge.integration().state == "active"


def test_media_gone_fails_the_event_and_the_chat_goes_on(
    bridge: CloudBridge, graph: FakeGraph
) -> None:
    gone_data, kept_data = b"\xff\xd8 gone image", b"\xff\xd8 kept image"
    gone_id = graph.add_media(gone_data, "image/jpeg")
    kept_id = graph.add_media(kept_data, "image/jpeg")
    del graph.media[gone_id]  # deleted on the WhatsApp side before we fetched it

    assert bridge.post(image_body("wamid.gone", gone_id, gone_data)).status_code == 200
    assert bridge.post(image_body("wamid.kept", kept_id, kept_data)).status_code == 200
    post_text(bridge, "wamid.text", "did you get my photos?")

    bridge.wait_for_events("failed", 1)
    bridge.wait_for_events("delivered", 2)
    by_message = {e.message_id: e for e in bridge.events()}
    gone = by_message["wamid.gone"]
    assert gone.status == "failed"
    assert gone.last_error.startswith("media unavailable: ")
    assert f"Object with ID '{gone_id}' does not exist" in gone.last_error
    assert by_message["wamid.kept"].status == "delivered"
    assert by_message["wamid.text"].status == "delivered"
    image, text = bridge.messages()
    assert image["source_id"] == "wamid.kept"
    assert [a["data"] for a in image["attachments"]] == [kept_data]
    assert text["content"] == "did you get my photos?"
    assert listing(bridge)["relay"]["failed"] == 1


# ---- pause / resume ----------------------------------------------------------------------


def test_paused_integration_stores_and_holds_then_resume_delivers_in_order(
    bridge: CloudBridge,
) -> None:
    paused = bridge.client.post(
        f"/api/chatwoot/pause/{bridge.instance}", headers=auth(bridge.account_token)
    )
    assert paused.status_code == 200
    assert paused.json() == {"instance": bridge.instance, "status": "paused"}

    for i in range(3):
        post_text(bridge, f"wamid.p{i}", f"paused {i}")
    # even a lane job that was already queued must not deliver while paused
    workers.relay.deliver_inbound.send(bridge.integration_id, CUSTOMER)
    time.sleep(1.0)

    assert bridge.messages() == []
    assert message_posts(bridge.chatwoot) == []
    listed = listing(bridge)
    assert listed["status"] == "paused"
    assert listed["relay"]["pending"] == 3
    assert listed["relay"]["delivered"] == 0
    assert statuses(bridge) == ["pending"] * 3

    resumed = bridge.client.post(
        f"/api/chatwoot/resume/{bridge.instance}", headers=auth(bridge.account_token)
    )
    assert resumed.status_code == 200
    assert resumed.json() == {"instance": bridge.instance, "status": "active"}
    bridge.wait_for_events("delivered", 3)
    assert contents(bridge) == ["paused 0", "paused 1", "paused 2"]
    assert listing(bridge)["relay"]["pending"] == 0


# ---- recovery: lost queue messages, deleted instance -------------------------------------


def test_lost_queue_messages_are_recovered_by_the_sweep(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, graph: FakeGraph
) -> None:
    broker = dramatiq.get_broker()
    broker.flush_all()
    try:
        with running_worker():
            bridge = make_cloud_bridge(client, account_token, chatwoot, graph_url=graph.base_url)
            # the periodic sweep a running worker does every 30 s (nothing to do yet); run here
            # so that the test does not depend on when the last sweep of the session happened
            workers.relay.sweep()
        # the worker is gone; webhooks are still stored and acknowledged
        for i in range(2):
            post_text(bridge, f"wamid.a{i}", f"first chat {i}")
            post_text(bridge, f"wamid.b{i}", f"second chat {i}", wa_id=OTHER_CUSTOMER)
        assert statuses(bridge) == ["pending"] * 4
        broker.flush_all()  # Redis lost the queued lane jobs

        # what a restarted worker does at boot: every stored, undelivered lane is enqueued
        assert workers.relay.sweep(idle_seconds=0) == 2
        with running_worker():
            bridge.wait_for_events("delivered", 4, timeout=15)
    finally:
        broker.flush_all()

    by_chat: dict[str, list[str]] = {}
    for message in bridge.messages():
        by_chat.setdefault(str(message["source_id"])[:7], []).append(str(message["content"]))
    assert by_chat == {
        "wamid.a": ["first chat 0", "first chat 1"],
        "wamid.b": ["second chat 0", "second chat 1"],
    }
    assert len(bridge.messages()) == 4
    assert len(bridge.chatwoot.contacts) == 2


def test_instance_delete_drops_its_pending_events(bridge: CloudBridge) -> None:
    post_text(bridge, "wamid.d0", "delivered before")
    bridge.wait_for_events("delivered", 1)
    bridge.client.post(f"/api/chatwoot/pause/{bridge.instance}", headers=auth(bridge.account_token))
    post_text(bridge, "wamid.d1", "never delivered 1")
    post_text(bridge, "wamid.d2", "never delivered 2")
    assert listing(bridge)["relay"]["pending"] == 2

    deleted = bridge.client.delete(
        f"/api/instance/delete/{bridge.instance}", headers=auth(bridge.account_token)
    )

    assert deleted.status_code == 200
    assert deleted.json() == {
        "success": True,
        "message": "Instance deleted",
        "instance": {"status": "deleted"},
    }
    gone = bridge.client.get(
        f"/api/chatwoot/list/{bridge.instance}", headers=auth(bridge.account_token)
    )
    assert error_message(gone, 404) == "instance not found"
    with database.connection_context():
        assert (
            RelayEvent.select().where(RelayEvent.integration == bridge.integration_id).count() == 0
        )
    assert contents(bridge) == ["delivered before"]


# ---- counters ------------------------------------------------------------------------------


def test_list_relay_counters_reflect_the_store(bridge: CloudBridge) -> None:
    fresh = listing(bridge)["relay"]
    assert fresh == {
        "pending": 0,
        "delivered": 0,
        "failed": 0,
        "last_delivered_at": None,
        "oldest_pending_at": None,
    }

    bridge.chatwoot.fail_next("POST", MESSAGES_PATH, 422, body={"error": "Invalid content"})
    for i in range(4):
        post_text(bridge, f"wamid.n{i}", f"number {i}")
    bridge.wait_for_events("delivered", 3)
    bridge.wait_for_events("failed", 1)
    bridge.client.post(f"/api/chatwoot/pause/{bridge.instance}", headers=auth(bridge.account_token))
    post_text(bridge, "wamid.n4", "number 4")
    post_text(bridge, "wamid.n5", "number 5")

    relay = listing(bridge)["relay"]

    assert (relay["pending"], relay["delivered"], relay["failed"]) == (2, 3, 1)
    newest = max(e.delivered_at for e in bridge.events() if e.delivered_at is not None)
    assert RFC3339.match(relay["last_delivered_at"]), relay
    assert relay["last_delivered_at"] == newest.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert abs((utcnow() - newest).total_seconds()) < 60
