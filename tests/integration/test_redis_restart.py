"""Redis restarting empty under load (issue 7 item 5, DESIGN invariant 10), with real processes.

A private ``redis-server`` is SIGKILLed and started again empty on the same port 4 s later,
twice, while a steady load flows over many chats through a uvicorn web process and two
``dramatiq`` worker processes (8 threads each). Every lane lock, queued job and ``alive:``
key vanishes with it; the events' claims in the database must still let each event be
delivered exactly once, in order per chat.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.store.db import database
from app.store.models import EVENT_DELIVERED, RelayEvent
from tests.fakes import chatwoot_webhooks as hooks
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.graph import FakeGraph
from tests.integration.redis_server import RedisServer
from tests.integration.stack import Stack
from tests.integration.test_outbound_processes import ACCESS_TOKEN, open_chats, texts_to
from tests.relay.bridge import PHONE_NUMBER_ID, text_body, wait_until

pytestmark = pytest.mark.integration

CHATS = 30
PER_CHAT = 10
# Every chat sends a message every PACE while the remote side takes POST_DELAY to answer each
# one: lanes are busy most of the time, so each outage begins and ends in the middle of
# drains, and the events stored while Redis was down make a backlog on every lane.
PACE_SECONDS = 1.8  # the load lasts ~18 s
POST_DELAY_SECONDS = 1.0
# seconds after the load starts: (SIGKILL Redis, start it again empty)
OUTAGES = ((3.0, 7.0), (11.0, 15.0))


class RedisOutages:
    """Kills and restarts the private Redis on a schedule, in a thread that stops (and leaves
    Redis running) when told to."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.errors: list[BaseException] = []
        self.done: list[str] = []

    def begin(self) -> None:
        self.thread = threading.Thread(target=self._run, name="redis-outages", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        try:
            for kill_at, back_at in OUTAGES:
                if self.stop.wait(max(0.0, started + kill_at - time.monotonic())):
                    return
                self.server.kill()
                self.done.append(f"killed at {time.monotonic() - started:.1f}s")
                if self.stop.wait(max(0.0, started + back_at - time.monotonic())):
                    return
                self.server.start()
                self.done.append(f"back at {time.monotonic() - started:.1f}s")
        except BaseException as exc:  # reported by finish()
            self.errors.append(exc)

    def finish(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
        if self.server.process is None:
            self.server.start()
        assert self.errors == []


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def outages(redis_server: RedisServer) -> Iterator[RedisOutages]:
    driver = RedisOutages(redis_server)
    try:
        yield driver
    finally:
        driver.stop.set()
        if driver.thread is not None:
            driver.thread.join(timeout=30)


@pytest.fixture
def stack(
    store_settings: Settings, tmp_path: Path, chatwoot: FakeChatwoot, redis_server: RedisServer
) -> Iterator[Stack]:
    running = Stack(store_settings, store_settings.database_url, tmp_path)
    running.env["REDIS_URL"] = redis_server.url
    try:
        running.start_web()
        running.start_workers(processes=2, threads=8)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def graph_server() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def graph(graph_server: FakeGraph) -> Iterator[FakeGraph]:
    graph_server.reset()
    graph_server.add_phone_number(PHONE_NUMBER_ID, ACCESS_TOKEN)
    yield graph_server
    graph_server.clear_faults()
    assert graph_server.schema_errors == []


def persistently(call: Callable[[], httpx.Response]) -> None:
    """Like Meta or Chatwoot: a request that is not accepted is sent again a moment later."""
    for _ in range(100):
        try:
            if call().status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the web process never accepted the request")


def under_outages(outages: RedisOutages, send_chat: Callable[[int], None]) -> float:
    """Run the load (each chat's messages in order, all chats at once) while Redis goes down
    twice; returns how long the load took."""
    started = time.monotonic()
    outages.begin()
    with ThreadPoolExecutor(max_workers=CHATS) as pool:
        list(pool.map(send_chat, range(CHATS)))
    took = time.monotonic() - started
    outages.finish()
    assert took > OUTAGES[-1][1], f"the load ended before the last outage: {outages.done}"
    assert outages.server.starts == 1 + len(OUTAGES)
    return took


def all_delivered(direction: str) -> bool:
    with database.connection_context():
        return not (
            RelayEvent.select()
            .where((RelayEvent.direction == direction) & (RelayEvent.status != EVENT_DELIVERED))
            .exists()
        )


def customer(chat: int) -> str:
    return f"1650777{chat:04d}"


def test_inbound_redis_restarts_post_each_message_once_in_order(
    stack: Stack, chatwoot: FakeChatwoot, outages: RedisOutages
) -> None:
    stack.cloud_instance(chatwoot)
    chatwoot.set_delay("POST", r"/messages$", POST_DELAY_SECONDS)

    def send_chat(chat: int) -> None:
        for seq in range(PER_CHAT):
            raw = json.dumps(
                text_body(customer(chat), f"wamid.r{chat}.m{seq}", f"c{chat} m{seq}")
            ).encode()
            persistently(partial(stack.post_signed, "carga", raw))
            time.sleep(PACE_SECONDS)

    started = time.monotonic()
    took = under_outages(outages, send_chat)
    expected = {f"wamid.r{c}.m{s}" for c in range(CHATS) for s in range(PER_CHAT)}

    def posted() -> list[str]:
        return [str(m["source_id"]) for m in list(chatwoot.messages.values())]

    wait_until(lambda: set(posted()) >= expected, 90, "every message in Chatwoot")
    wait_until(lambda: all_delivered("inbound"), 15, "every event recorded delivered")
    time.sleep(1.0)  # a late duplicate would land now
    print(
        f"\nload {took:.1f}s, all delivered {time.monotonic() - started:.1f}s after it began; "
        f"outages: {outages.done}"
    )
    duplicates = {sid: n for sid, n in Counter(posted()).items() if n > 1}
    assert duplicates == {}
    assert sorted(posted()) == sorted(expected)
    grouped: dict[int, list[str]] = defaultdict(list)
    for message in sorted(chatwoot.messages.values(), key=lambda m: int(m["id"])):
        grouped[int(message["conversation_id"])].append(str(message["content"]))
    assert len(grouped) == CHATS
    for contents in grouped.values():
        chat = contents[0].split()[0]
        assert contents == [f"{chat} m{seq}" for seq in range(PER_CHAT)]


def test_outbound_redis_restarts_send_each_reply_once_in_order(
    stack: Stack, chatwoot: FakeChatwoot, graph: FakeGraph, outages: RedisOutages
) -> None:
    customers = [customer(chat) for chat in range(CHATS)]
    chats = open_chats(stack, chatwoot, graph, customers)
    path = chats.webhook_path()
    graph.set_delay("POST", r"/messages$", POST_DELAY_SECONDS)
    replies = {c: [f"{c[-4:]} reply {i}" for i in range(PER_CHAT)] for c in customers}
    assert stack.http is not None
    http = stack.http

    def send_chat(chat: int) -> None:
        to = customers[chat]
        for text in replies[to]:
            message_id = chats.reply(to, text)
            raw, headers = _signed_reply(chats.chatwoot, chats.inbox_id, message_id)
            persistently(partial(http.post, path, content=raw, headers=headers))
            time.sleep(PACE_SECONDS)

    started = time.monotonic()
    took = under_outages(outages, send_chat)
    wait_until(
        lambda: all(set(texts_to(graph, c)) >= set(replies[c]) for c in customers),
        90,
        "every reply on WhatsApp",
    )
    wait_until(lambda: all_delivered("outbound"), 30, "every reply recorded delivered")
    time.sleep(1.0)  # a late duplicate would go out now
    print(
        f"\nload {took:.1f}s, all sent {time.monotonic() - started:.1f}s after it began; "
        f"outages: {outages.done}"
    )
    duplicates = {
        c: {t: n for t, n in Counter(texts_to(graph, c)).items() if n > 1} for c in customers
    }
    assert {c: d for c, d in duplicates.items() if d} == {}
    for to in customers:
        assert texts_to(graph, to) == replies[to]


def _signed_reply(
    chatwoot: FakeChatwoot, inbox_id: int, message_id: int
) -> tuple[bytes, dict[str, str]]:
    return hooks.signed_request(
        hooks.message_created_body(chatwoot, message_id), chatwoot.inboxes[inbox_id]["secret"]
    )
