"""The inbound relay with real processes: order, deduplication and crash recovery."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dramatiq
import pytest

from app.config import Settings
from app.store.db import database
from app.store.models import RelayEvent
from tests.fakes.chatwoot import FakeChatwoot
from tests.integration.stack import Stack
from tests.relay.bridge import text_body, wait_until

pytestmark = pytest.mark.integration


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


def customer(n: int) -> str:
    return f"1650555{n:04d}"


def body(chat: int, seq: int) -> bytes:
    return json.dumps(
        text_body(customer(chat), f"wamid.c{chat}.m{seq}", f"c{chat} m{seq}")
    ).encode()


def by_conversation(chatwoot: FakeChatwoot) -> dict[int, list[str]]:
    grouped: dict[int, list[str]] = defaultdict(list)
    for message in sorted(chatwoot.messages.values(), key=lambda m: int(m["id"])):
        grouped[int(message["conversation_id"])].append(str(message["content"]))
    return grouped


def stored_order(settings: Settings) -> list[str]:
    with database.connection_context():
        rows = RelayEvent.select(RelayEvent.message_id).order_by(RelayEvent.id)
        return [str(row.message_id) for row in rows]


def test_ten_simultaneous_first_messages_make_one_contact_and_keep_order(
    stack: Stack, chatwoot: FakeChatwoot, settings: Settings
) -> None:
    stack.cloud_instance(chatwoot)
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda i: stack.post_signed("carga", body(1, i)), range(10)))

    assert [a.status_code for a in answers] == [200] * 10
    wait_until(lambda: len(chatwoot.messages) >= 10, timeout=30, what="10 messages")
    assert len(chatwoot.contacts) == 1
    assert len(chatwoot.conversations) == 1
    [delivered] = by_conversation(chatwoot).values()
    stored = [f"c1 m{mid.rsplit('.m', 1)[1]}" for mid in stored_order(settings)]
    assert delivered == stored


def test_200_messages_over_20_chats_keep_per_chat_order(
    stack: Stack, chatwoot: FakeChatwoot
) -> None:
    stack.cloud_instance(chatwoot)

    def send_chat(chat: int) -> list[int]:
        return [stack.post_signed("carga", body(chat, seq)).status_code for seq in range(10)]

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = [code for codes in pool.map(send_chat, range(20)) for code in codes]

    assert statuses == [200] * 200
    wait_until(lambda: len(chatwoot.messages) >= 200, timeout=60, what="200 messages")
    conversations = by_conversation(chatwoot)
    assert len(conversations) == 20
    for contents in conversations.values():
        chat = contents[0].split()[0]
        assert contents == [f"{chat} m{seq}" for seq in range(10)]
    assert len(chatwoot.contacts) == 20


def test_workers_killed_mid_run_lose_nothing_and_duplicate_nothing(
    stack: Stack, chatwoot: FakeChatwoot
) -> None:
    stack.cloud_instance(chatwoot)
    chatwoot.set_delay("POST", r"/messages$", 0.05)
    for seq in range(10):
        for chat in range(10):
            assert stack.post_signed("carga", body(chat, seq)).status_code == 200

    wait_until(lambda: len(chatwoot.messages) >= 20, timeout=30, what="some deliveries")
    stack.kill_workers()
    delivered_before_restart = len(chatwoot.messages)
    assert delivered_before_restart < 100
    stack.start_workers(processes=2, threads=8)

    wait_until(lambda: len(chatwoot.messages) >= 100, timeout=90, what="all 100 messages")
    source_ids = [m["source_id"] for m in chatwoot.messages.values()]
    assert len(source_ids) == len(set(source_ids)) == 100
    for contents in by_conversation(chatwoot).values():
        chat_name = contents[0].split()[0]
        assert contents == [f"{chat_name} m{seq}" for seq in range(10)]
