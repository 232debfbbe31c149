"""Issue 11, part 4: a burst of agent replies on a paced number, through the production
processes (a uvicorn web process and two ``dramatiq`` worker processes of 8 threads, one SQLite
file, the real Redis) to a fake Graph that enforces the number's throughput like Meta (130429
above it, in any sliding second).

500 replies to 50 customers at 80 per second, and 100 at 10 per second (with the read
receipts each chat's first reply sends, which count too): not one 130429, every reply sent
once, each chat's replies in the agent's order, never more than the rate in any second and no
burst. The control: the same workers unpaced do trip the limit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dramatiq
import httpx
import pytest

from app.config import Settings
from tests.fakes import chatwoot_webhooks as hooks
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.graph import FakeGraph
from tests.integration.stack import Stack
from tests.relay.bridge import APP_SECRET, PHONE_NUMBER_ID, text_body, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ACCESS_TOKEN = "EAAG-pacing-burst"
PUBLIC_URL = "https://bridge.example.com"
RATE = 80
MARK_READ = True  # each chat's first reply also marks the customer's message read: paced too


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        fake.add_phone_number(PHONE_NUMBER_ID, ACCESS_TOKEN)
        yield fake
        assert fake.schema_errors == []


@pytest.fixture
def stack(settings: Settings, tmp_path: Path, chatwoot: FakeChatwoot) -> Iterator[Stack]:
    dramatiq.get_broker().flush_all()
    running = Stack(settings, settings.database_url, tmp_path)
    try:
        running.start_web()
        running.start_workers(processes=2, threads=8)
        yield running
    finally:
        running.stop()
        dramatiq.get_broker().flush_all()


def most_in_window(times: list[float], window: float = 1.0) -> int:
    ordered, best, first = sorted(times), 0, 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= window:
            first += 1
        best = max(best, last - first + 1)
    return best


def agent_reply(api: httpx.Client, account_id: int, display_id: int, text: str) -> int:
    """What :func:`tests.fakes.chatwoot_webhooks.agent_reply` does, on one kept-alive client
    (500 fresh clients cost more than the whole burst)."""
    response = api.post(
        f"/api/v1/accounts/{account_id}/conversations/{display_id}/messages",
        json={"content": text, "message_type": "outgoing", "private": False},
    )
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def create_instance(
    stack: Stack, token: str, chatwoot: FakeChatwoot, graph: FakeGraph, rate: int
) -> dict[str, Any]:
    account_id = chatwoot.add_account("Burst")
    admin = chatwoot.add_user("Admin", {account_id: "administrator"})
    assert stack.http is not None
    created = stack.http.post(
        "/api/instance/new",
        headers={"token": token},
        json={
            "name": "rajada",
            "provider": "cloud",
            "cloudPhoneNumberId": PHONE_NUMBER_ID,
            "cloudAccessToken": ACCESS_TOKEN,
            "cloudAppSecret": APP_SECRET,
            "cloudApiBaseUrl": graph.base_url,
            "cloudMessagesPerSecond": rate,
            "chatwootEnabled": True,
            "chatwootBaseUrl": chatwoot.base_url,
            "chatwootAccountId": account_id,
            "chatwootApiToken": admin,
            "chatwootSignMessages": False,
            "chatwootMarkRead": MARK_READ,
        },
    )
    assert created.status_code == 201, created.text
    activation: dict[str, Any] = created.json()["chatwoot"]
    assert activation["status"] == "active", activation
    return {"account_id": account_id, **activation}


@dataclass
class Burst:
    """Replies stored while the integration was paused, released at once by ``resume``."""

    customers: list[str]
    expected: dict[str, list[str]]  # customer -> the replies' texts, in the agent's order
    reply_ids: list[int]
    released: float  # monotonic time of the resume


def burst(
    stack: Stack, chatwoot: FakeChatwoot, graph: FakeGraph, rate: int, chats: int, each: int
) -> Burst:
    """A Cloud instance paced at ``rate``; ``chats`` customers write first; then ``each``
    agent replies per chat are stored while paused (the chats in parallel, like agents at
    once) and released together."""
    token = stack.account_token()
    created = create_instance(stack, token, chatwoot, graph, rate)
    account_id, inbox_id = created["account_id"], int(created["chatwoot_inbox_id"])
    customers = [f"5511900{i:06d}" for i in range(chats)]
    for customer in customers:
        hello = text_body(customer, f"wamid.{customer}.hello", f"Hello from {customer}")
        assert stack.post_signed("rajada", json.dumps(hello).encode()).status_code == 200
    wait_until(lambda: len(chatwoot.messages) >= chats, 60, "every customer's hello")
    conversations = {
        str(m["content"]).removeprefix("Hello from "): int(
            chatwoot.conversations[m["conversation_id"]]["display_id"]
        )
        for m in list(chatwoot.messages.values())
    }
    assert sorted(conversations) == sorted(customers)
    agent = chatwoot.add_user("Jane Agent", {account_id: "agent"})
    http = stack.http
    assert http is not None
    listed = http.get("/api/chatwoot/list/rajada", headers={"token": token}).json()
    path = str(listed["webhook_url"]).removeprefix(PUBLIC_URL)
    secret = chatwoot.inboxes[inbox_id]["secret"]
    paused = http.post("/api/chatwoot/pause/rajada", headers={"token": token})
    assert paused.status_code == 200, paused.text
    chatwoot_api = httpx.Client(
        base_url=chatwoot.base_url, headers={"api_access_token": agent}, timeout=10
    )

    def answer(customer: str) -> list[int]:
        ids = []
        for i in range(each):
            text = f"reply {i} to {customer}"
            message_id = agent_reply(chatwoot_api, account_id, conversations[customer], text)
            raw, headers = hooks.signed_request(
                hooks.message_created_body(chatwoot, message_id), secret
            )
            stored = http.post(path, content=raw, headers=headers)
            assert stored.status_code == 200 and stored.json() == {"stored": 1}, stored.text
            ids.append(message_id)
        return ids

    with chatwoot_api, ThreadPoolExecutor(max_workers=10) as pool:
        reply_ids = [m for ids in pool.map(answer, customers) for m in ids]
    assert graph.sent == []
    released = time.monotonic()
    resumed = http.post("/api/chatwoot/resume/rajada", headers={"token": token})
    assert resumed.status_code == 200, resumed.text
    expected = {c: [f"reply {i} to {c}" for i in range(each)] for c in customers}
    return Burst(customers, expected, reply_ids, released)


@pytest.mark.parametrize(
    ("rate", "chats", "each"),
    [(RATE, 50, 10), (10, 10, 10)],
    ids=["500 replies to 50 customers at 80 per second", "100 replies at 10 per second"],
)
def test_a_burst_of_replies_never_trips_the_throughput_limit(
    stack: Stack, chatwoot: FakeChatwoot, graph: FakeGraph, rate: int, chats: int, each: int
) -> None:
    """The fake enforces the same rate as the instance is paced at, like Meta would. At 80/s
    the workers of a test machine may not reach the limit (SQLite, two processes); at 10/s
    they surely can (the control below trips it), so the pace is the limiter's."""
    graph.limit_throughput(PHONE_NUMBER_ID, rate)
    sent = burst(stack, chatwoot, graph, rate, chats, each)
    total = chats * each
    wait_until(lambda: len(graph.sent) >= total, 120, f"{total} WhatsApp messages")
    all_sent = time.monotonic() - sent.released
    time.sleep(1.0)

    times = sorted(graph.message_times[PHONE_NUMBER_ID])
    span = times[-1] - times[0]
    print(
        f"\n{total} replies sent in {all_sent:.1f}s after the release; Graph saw them over "
        f"{span:.1f}s ({(total - 1) / span:.1f}/s); at most {most_in_window(times)} in one "
        f"second; read receipts among them: {len(graph.read_receipts)}; 130429 answers: "
        f"{len(graph.throttled)}"
    )
    assert graph.throttled == [], "a send tripped the throughput limit"
    assert len(graph.sent) == total  # each once
    for customer in sent.customers:  # per-chat order exact
        got = [str(s.body["text"]["body"]) for s in list(graph.sent) if s.to == customer]
        assert got == sent.expected[customer], customer
    assert most_in_window(times) <= rate
    assert span >= (total - rate) / rate  # paced: no burst, no batch at once
    wait_until(
        lambda: all(chatwoot.messages[m].get("status") == "sent" for m in sent.reply_ids),
        30,
        "every reply ticked sent in Chatwoot",
    )


def test_the_control_the_same_workers_unpaced_trip_the_limit(
    stack: Stack, chatwoot: FakeChatwoot, graph: FakeGraph
) -> None:
    """Paced at 1000/s against a number that takes 10/s, the same burst meets 130429: the
    workers can outrun 10/s, so the case above is paced by the limiter, not by slowness."""
    graph.limit_throughput(PHONE_NUMBER_ID, 10)
    burst(stack, chatwoot, graph, 1000, 10, 10)
    wait_until(lambda: bool(graph.throttled), 30, "a 130429")
