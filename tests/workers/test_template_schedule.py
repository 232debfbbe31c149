"""The 3-hourly template sync: one worker process enqueues it for every integration with a
business account id, the others skip it (a Redis lock, and a key that lives 3 hours)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from app.config import Settings
from app.store.db import database
from app.store.models import ChatwootIntegration
from app.store.redis_client import get_redis, redis_key
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.graph import FakeGraph
from tests.relay.bridge import (
    APP_SECRET,
    CLOUD_ACCESS_TOKEN,
    PHONE_NUMBER_ID,
    create_with_chatwoot,
    wait_until,
)
from tests.template_catalog import WABA_ID, all_templates
from workers.templates import TemplateScheduler, schedule_if_due

DONE = ("templates", "schedule", "done")
LOCK = ("templates", "schedule", "lock")


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        fake.add_phone_number(PHONE_NUMBER_ID, CLOUD_ACCESS_TOKEN)
        fake.add_business_account(WABA_ID, CLOUD_ACCESS_TOKEN, all_templates())
        yield fake
        assert fake.schema_errors == []


def cloud_fields(name: str, graph: FakeGraph, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "cloud",
        "cloudPhoneNumberId": PHONE_NUMBER_ID,
        "cloudAccessToken": CLOUD_ACCESS_TOKEN,
        "cloudAppSecret": APP_SECRET,
        "cloudApiBaseUrl": graph.base_url,
        **extra,
    }


def synced_at(integration_id: str) -> Any:
    with database.connection_context():
        return ChatwootIntegration.get_by_id(integration_id).templates_synced_at


def template_reads(graph: FakeGraph) -> int:
    return sum(1 for c in graph.calls if c.path.endswith("/message_templates"))


def test_the_periodic_sync_runs_once_across_worker_processes(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
    graph: FakeGraph,
) -> None:
    get_redis().delete(redis_key(*DONE))
    with_waba = create_with_chatwoot(
        client,
        account_token,
        chatwoot,
        cloud_fields("suporte", graph, cloudBusinessAccountId=WABA_ID),
        "WhatsApp",
    )["bridge_integration_id"]
    without = create_with_chatwoot(
        client, account_token, chatwoot, cloud_fields("vendas", graph), "WhatsApp 2"
    )["bridge_integration_id"]
    wait_until(lambda: synced_at(with_waba) is not None, 15, "the sync at set")
    with database.connection_context():
        ChatwootIntegration.update(templates_synced_at=None).execute()
    reads = template_reads(graph)

    assert schedule_if_due() == 1

    wait_until(lambda: synced_at(with_waba) is not None, 15, "the periodic sync")
    assert template_reads(graph) == reads + 1
    assert synced_at(without) is None
    assert schedule_if_due() is None  # any process, within the next three hours
    assert 3 * 3600 - 60 < get_redis().ttl(redis_key(*DONE)) <= 3 * 3600


def test_a_process_holding_the_lock_keeps_the_others_out(settings: Settings) -> None:
    client = get_redis()
    client.delete(redis_key(*DONE))
    held = client.lock(redis_key(*LOCK), timeout=30)
    assert held.acquire(blocking=False)
    try:
        assert schedule_if_due() is None
    finally:
        held.release()

    assert schedule_if_due() == 0  # nothing to sync in an empty store; now done
    assert client.exists(redis_key(*DONE))


def test_the_scheduler_thread_asks_after_boot_and_every_round_and_stops_with_the_worker(
    worker: Worker,
) -> None:
    """The thread each worker process runs: its first check after ``first_check``, then one
    every ``every``, gone at shutdown."""
    client = get_redis()
    client.delete(redis_key(*DONE))
    scheduler = TemplateScheduler(first_check=0.05, every=0.05)
    broker = dramatiq.get_broker()

    scheduler.after_worker_boot(broker, worker)
    try:
        wait_until(lambda: bool(client.exists(redis_key(*DONE))), 10, "the first check")
        client.delete(redis_key(*DONE))
        wait_until(lambda: bool(client.exists(redis_key(*DONE))), 10, "a later round")
    finally:
        scheduler.before_worker_shutdown(broker, worker)
    assert scheduler.thread is not None
    scheduler.thread.join(5)
    assert not scheduler.thread.is_alive()
