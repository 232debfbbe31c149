"""app/store/counters.py: exact per-integration counters, on SQLite and PostgreSQL, across
processes, and their one-time backfill from the events of a deployment that predates them."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from app.management.integrations import relay_counters
from app.store import migrate
from app.store.counters import (
    as_mapping,
    backfill_counters,
    bump_counters,
    counters_of,
    totals,
)
from app.store.db import database
from app.store.models import ChatwootIntegration, RelayCounter, RelayEvent
from tests.store.rows import integration_named

ROOT = Path(__file__).resolve().parents[2]
PER_WRITER = 40


@pytest.fixture
def db(store_settings: Settings) -> Iterator[Settings]:
    with database.connection_context():
        yield store_settings


def test_deltas_add_up_per_key(db: Settings) -> None:
    one, two = integration_named("one"), integration_named("two")
    with database.atomic():
        bump_counters(
            [
                (one.id, "inbound", "received", 2),
                (one.id, "inbound", "received", 3),
                (two.id, "outbound", "relayed", 1),
                (one.id, "outbound", "failed", 0),
            ]
        )
    with database.atomic():
        bump_counters([(one.id, "inbound", "received", 1), (two.id, "outbound", "relayed", 4)])

    assert counters_of(one.id)[("inbound", "received")] == 6
    assert counters_of(one.id)[("outbound", "failed")] == 0
    assert counters_of(two.id)[("outbound", "relayed")] == 5
    assert as_mapping(totals())["inbound"]["received"] == 6
    assert as_mapping(totals())["outbound"] == {
        "received": 0,
        "relayed": 5,
        "failed": 0,
        "retried": 0,
    }
    # a zero-sum key writes no row
    assert RelayCounter.select().where(RelayCounter.outcome == "failed").count() == 0


def test_unknown_outcome_or_direction_is_refused(db: Settings) -> None:
    one = integration_named("one")
    with pytest.raises(ValueError, match="outcome"):
        bump_counters([(one.id, "inbound", "delivered", 1)])
    with pytest.raises(ValueError, match="direction"):
        bump_counters([(one.id, "sideways", "received", 1)])


def test_a_rolled_back_transaction_counts_nothing(db: Settings) -> None:
    one = integration_named("one")
    with pytest.raises(RuntimeError), database.atomic():
        bump_counters([(one.id, "inbound", "received", 7)])
        raise RuntimeError("the change being counted failed")
    assert counters_of(one.id)[("inbound", "received")] == 0


_WRITER = """
import sys
from app.config import Settings
from app.store import init_store
from app.store.counters import bump_counters
from app.store.db import database

init_store(Settings.from_environ())
integration_id, times = sys.argv[1], int(sys.argv[2])
with database.connection_context():
    for _ in range(times):
        with database.atomic():
            bump_counters([(integration_id, "outbound", "relayed", 1),
                           (integration_id, "inbound", "received", 2)])
"""


def _bump_in_thread(integration_id: str) -> None:
    with database.connection_context():
        for _ in range(PER_WRITER):
            with database.atomic():
                bump_counters(
                    [
                        (integration_id, "inbound", "received", 2),
                        (integration_id, "outbound", "relayed", 1),
                    ]
                )


def test_counts_are_exact_across_processes(db: Settings) -> None:
    """Two other processes and a thread of this one bump the same rows at the same time."""
    one = integration_named("one")
    env = {**os.environ, "DATABASE_URL": db.database_url}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, one.id, str(PER_WRITER)], cwd=ROOT, env=env
        )
        for _ in range(2)
    ]
    local = threading.Thread(target=_bump_in_thread, args=(one.id,))
    local.start()
    local.join(timeout=60)
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0]

    counted = counters_of(one.id)
    assert counted[("outbound", "relayed")] == 3 * PER_WRITER
    assert counted[("inbound", "received")] == 6 * PER_WRITER


def _stored(integration: ChatwootIntegration, key: str, **fields: object) -> None:
    values: dict[str, object] = {
        "integration": integration,
        "direction": "inbound",
        "natural_key": key,
        "chat_key": "c",
        "kind": "message",
        "payload": "{}",
        **fields,
    }
    RelayEvent.create(**values)


def test_migrate_backfills_counters_of_stored_events_once(db: Settings) -> None:
    """A deployment that predates the counters keeps its figures (and only once)."""
    import datetime as dt

    one = integration_named("one")
    idle = integration_named("idle")
    last = dt.datetime(2026, 4, 21, 8, 0, 1)
    _stored(one, "d1", status="delivered", attempts=1, delivered_at=last - dt.timedelta(hours=1))
    _stored(one, "d2", status="delivered", attempts=3, delivered_at=last)
    _stored(one, "f1", status="failed", attempts=2)
    _stored(one, "p1", direction="outbound", status="pending")

    migrate(database.obj)
    migrate(database.obj)

    counted = counters_of(one.id)
    assert counted[("inbound", "received")] == 3
    assert counted[("inbound", "relayed")] == 2
    assert counted[("inbound", "failed")] == 1
    assert counted[("inbound", "retried")] == 3  # 2 + 1 attempts beyond the first
    assert counted[("outbound", "received")] == 1
    assert counters_of(idle.id) == {key: 0 for key in counted}
    listed = relay_counters(one)
    assert (listed.pending, listed.delivered, listed.failed) == (1, 2, 1)
    assert listed.last_delivered_at == "2026-04-21T08:00:01Z"
    assert backfill_counters() == 0


def test_deleting_an_integration_deletes_its_counters(db: Settings) -> None:
    one = integration_named("one")
    with database.atomic():
        bump_counters([(one.id, "inbound", "received", 1)])
    one.instance.delete_instance(recursive=True)
    assert RelayCounter.select().count() == 0
