"""Fenced delivery (DESIGN invariant 10): claims in the database, on SQLite and PostgreSQL.

Lanes are drained here by calling :func:`app.relay.lanes.drain.drain` in the test process, with the
real inbound handler posting to the fake Chatwoot, so that a test can make something happen
in the middle of a drain: Redis losing every key (as when it restarts empty), or another
worker taking the lane over while this one is paused past its lease.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import dramatiq
import pytest
from dramatiq import Worker

from app.config import Settings, use_settings
from app.management.accounts import create_account
from app.relay.inbound.deliver import InboundHandler
from app.relay.lanes import claims, liveness
from app.relay.lanes import drain as lanes
from app.store.counters import counters_of
from app.store.db import database
from app.store.models import (
    DIRECTION_INBOUND,
    EVENT_DELIVERED,
    EVENT_PENDING,
    ChatReadState,
    ChatwootIntegration,
    MessageMap,
    RelayEvent,
    utcnow,
)
from app.store.redis_client import get_redis, redis_key
from tests.conftest import NAMESPACE, make_client
from tests.fakes.chatwoot import FakeChatwoot
from tests.relay.bridge import CloudBridge, make_cloud_bridge, text_body

CUSTOMER = "16505559876"
FOREIGN = "f" * 32  # the boot id of a worker process that is not this one


def no_wake(direction: str, integration_id: str, chat_key: str) -> None:
    raise AssertionError("no lane should be woken by text messages")


@pytest.fixture
def bridge(store_settings: Settings, chatwoot: FakeChatwoot) -> Iterator[CloudBridge]:
    """An active Cloud bridge; events are stored by the web app but drained by the test."""
    broker = dramatiq.get_broker()
    broker.flush_all()
    provisioner = Worker(broker, worker_threads=2, worker_timeout=50)
    provisioner.start()
    try:
        with database.connection_context():
            _, token = create_account("Fence")
        with make_client(store_settings) as client:
            made = make_cloud_bridge(client, token, chatwoot)
            provisioner.stop()  # from here on, only the test drains lanes
            yield made
    finally:
        provisioner.stop()
        broker.middleware[:] = [
            m for m in broker.middleware if type(m).__name__ != "_WorkerMiddleware"
        ]
        broker.flush_all()
        get_redis().delete(redis_key("liveness-epoch"), redis_key("alive", FOREIGN))


def store_messages(bridge: CloudBridge, count: int) -> list[str]:
    ids = [f"wamid.fence.{n}" for n in range(count)]
    for n, message_id in enumerate(ids):
        response = bridge.post(text_body(CUSTOMER, message_id, f"message {n}"))
        assert response.status_code == 200, response.text
    return ids


@contextmanager
def connected() -> Iterator[None]:
    """The thread's connection (a drain's, when called from inside one), or a new one."""
    if database.is_closed():
        with database.connection_context():
            yield
    else:
        yield


def pending_rows(bridge: CloudBridge) -> list[RelayEvent]:
    with connected():
        return list(
            RelayEvent.select()
            .where(
                (RelayEvent.integration == bridge.integration_id)
                & (RelayEvent.status == EVENT_PENDING)
            )
            .order_by(RelayEvent.id)
        )


def posted(chatwoot: FakeChatwoot) -> list[str]:
    """Source ids of the relayed messages (not the private notes left for agents)."""
    ordered = sorted(chatwoot.messages.values(), key=lambda m: int(m["id"]))
    return [str(m["source_id"]) for m in ordered if not m.get("private")]


def drain(bridge: CloudBridge, handler: lanes.LaneHandler | None = None) -> lanes.DrainResult:
    return lanes.drain(handler or InboundHandler(no_wake), bridge.integration_id, CUSTOMER)


def drain_in_thread(bridge: CloudBridge) -> lanes.DrainResult:
    with database.connection_context():
        return drain(bridge)


class AfterFirstEvent:
    """The real inbound handler; ``meanwhile`` runs once, right after the first event it
    delivered, while the drain still holds the rest of its batch."""

    direction = DIRECTION_INBOUND

    def __init__(self, meanwhile: Callable[[], None], after: int = 1) -> None:
        self.inner = InboundHandler(no_wake)
        self.meanwhile = meanwhile
        self.after = after
        self.delivered = 0

    def open(self, integration: ChatwootIntegration) -> object:
        return self.inner.open(integration)

    def deliver(self, context: object, row: RelayEvent, interrupted: bool) -> lanes.Step:
        step = self.inner.deliver(context, row, interrupted)
        self.delivered += 1
        if self.delivered == self.after:
            self.meanwhile()
        return step


def forget_everything_in_redis() -> None:
    """What a Redis restarting empty does to us: lane locks, ``alive:`` keys, epoch, gone."""
    redis = get_redis()
    for key in redis.scan_iter(match=f"{NAMESPACE}:*"):
        redis.delete(key)


def expire_leases(ids: list[int]) -> None:
    past = utcnow() - dt.timedelta(seconds=1)
    with connected():
        RelayEvent.update(claimed_until=past).where(RelayEvent.id.in_(ids)).execute()


def redis_uptime() -> int:
    return int(get_redis().info("server")["uptime_in_seconds"])


# ---- claims -----------------------------------------------------------------------------


def test_a_claim_is_compare_and_set(bridge: CloudBridge) -> None:
    store_messages(bridge, 3)
    mine, theirs = liveness.lock_token(), f"{FOREIGN}:other"
    with database.connection_context(), liveness.running(mine):
        read_by_both = pending_rows(bridge)
        assert claims.claim(claims.claimable_prefix(read_by_both, mine), mine) == 3
        # the other drain read the rows unclaimed too: its compare-and-set finds them taken
        assert claims.claim(read_by_both, theirs) == 0
        assert claims.claimable_prefix(pending_rows(bridge), theirs) == []  # owner is live
        assert {row.claim_token for row in pending_rows(bridge)} == {mine}
    # the drain that held ``mine`` ended (this process knows): its claims may be taken over
    with database.connection_context():
        assert len(claims.claimable_prefix(pending_rows(bridge), theirs)) == 3


def test_released_claims_keep_in_flight_only_where_an_attempt_may_have_happened(
    bridge: CloudBridge,
) -> None:
    store_messages(bridge, 3)
    token = liveness.lock_token()
    with database.connection_context():
        cut_short = pending_rows(bridge)[2]
        RelayEvent.update(in_flight=True).where(RelayEvent.id == cut_short.id).execute()
        assert claims.claim(pending_rows(bridge), token) == 3
        never_attempted = pending_rows(bridge)[1]  # the first one was: it stays in flight
        claims.release(token, [never_attempted.id])
        after = [(row.claim_token, row.in_flight) for row in pending_rows(bridge)]
    assert after == [(None, True), (None, False), (None, True)]


def test_a_second_drain_after_redis_forgot_everything_leaves_the_lane(
    bridge: CloudBridge, chatwoot: FakeChatwoot
) -> None:
    """Redis restarts empty mid-drain: the lane lock is free again and a second drain takes
    it, but the events are claimed in the database, so it posts nothing and leaves."""
    ids = store_messages(bridge, 4)
    second: list[lanes.DrainResult] = []

    def redis_restarts_and_another_drain_runs() -> None:
        forget_everything_in_redis()
        other = threading.Thread(target=lambda: second.append(drain_in_thread(bridge)))
        other.start()
        other.join(timeout=30)

    first = drain(bridge, AfterFirstEvent(redis_restarts_and_another_drain_runs))

    assert second == [lanes.DrainResult(yielded=True)]
    assert first.delivered == 4
    assert posted(chatwoot) == ids  # each once, in order
    assert pending_rows(bridge) == []


def counted(bridge: CloudBridge, outcome: str) -> int:
    with connected():
        return counters_of(bridge.integration_id)[(DIRECTION_INBOUND, outcome)]


def lists_of_messages(chatwoot: FakeChatwoot) -> int:
    return len([c for c in chatwoot.calls if c.method == "GET" and c.path.endswith("/messages")])


def test_a_drain_paused_past_its_lease_neither_posts_nor_records(
    bridge: CloudBridge, chatwoot: FakeChatwoot, store_settings: Settings
) -> None:
    """Worker A stalls after posting its first event (not recorded yet: outcomes are written
    in batches) until its lease is over; worker B (another process, alive) claims the lane.
    A must not post the next event, nor record anything for events it no longer owns; B
    delivers them later, each once: the first one, found in Chatwoot, is not posted again."""
    ids = store_messages(bridge, 3)
    # remote calls time out after 0.5 s, not retried: a lease lasts 2 s
    use_settings(replace(store_settings, remote_timeout_seconds=0.5, remote_retry_attempts=0))
    taken_over: list[RelayEvent] = []
    get_redis().set(redis_key("alive", FOREIGN), b"1", ex=60)
    worker_b = f"{FOREIGN}:b"

    def lease_runs_out_and_b_claims() -> None:
        time.sleep(claims.lease_seconds() + 0.2)  # A's own clock runs past its lease
        stale = pending_rows(bridge)  # all three: the first one's delivery is not recorded
        assert claims.claim(claims.claimable_prefix(stale, worker_b), worker_b) == 3
        taken_over.extend(stale)

    result = drain(bridge, AfterFirstEvent(lease_runs_out_and_b_claims))

    assert result == lanes.DrainResult(yielded=True)  # nothing recorded as delivered by A
    assert posted(chatwoot) == ids[:1]
    as_a_read_it = taken_over[1]
    with database.connection_context(), pytest.raises(claims.ClaimLost):
        lanes.finish(as_a_read_it, EVENT_DELIVERED)
    with database.connection_context(), pytest.raises(claims.ClaimLost):
        lanes.retry_later(as_a_read_it, "timeout")
    assert [(row.claim_token, row.status) for row in pending_rows(bridge)] == [
        (worker_b, EVENT_PENDING)
    ] * 3
    assert counted(bridge, "relayed") == 0

    # B stays alive: nobody else may deliver its events
    assert drain(bridge).yielded
    assert posted(chatwoot) == ids[:1]
    # B's lease runs out too: its events are delivered, each once, in order
    expire_leases([row.id for row in taken_over])
    assert drain(bridge).delivered == 3
    assert posted(chatwoot) == ids
    assert lists_of_messages(chatwoot) == 3  # taken over: looked for before posting
    assert counted(bridge, "relayed") == 3


class WorkerKilled(BaseException):
    """Stands for SIGKILL: the drain's error handling must not record anything."""


def test_a_crash_before_outcomes_are_recorded_loses_and_duplicates_nothing(
    bridge: CloudBridge, chatwoot: FakeChatwoot
) -> None:
    """Two events posted, their delivery kept in memory, then the worker dies: the next
    drain finds both in Chatwoot (one look-up each) instead of posting them again."""
    ids = store_messages(bridge, 3)

    def killed() -> None:
        raise WorkerKilled

    with pytest.raises(WorkerKilled):
        drain(bridge, AfterFirstEvent(killed, after=2))

    assert posted(chatwoot) == ids[:2]
    rows = pending_rows(bridge)
    assert [(row.status, row.in_flight) for row in rows] == [
        (EVENT_PENDING, True),
        (EVENT_PENDING, True),
        (EVENT_PENDING, False),  # claimed, never attempted
    ]
    assert counted(bridge, "relayed") == 0

    assert drain(bridge).delivered == 3
    assert posted(chatwoot) == ids  # each once, in order
    assert lists_of_messages(chatwoot) == 2
    assert pending_rows(bridge) == []
    assert counted(bridge, "relayed") == 3


def test_delivered_events_are_recorded_in_one_write_per_batch(
    bridge: CloudBridge, chatwoot: FakeChatwoot
) -> None:
    """Ten events: all delivered, their message map rows written, counted once each."""
    ids = store_messages(bridge, 10)
    result = drain(bridge)
    assert result.delivered == 10 and not result.stopped
    assert posted(chatwoot) == ids
    with database.connection_context():
        mapped = {str(m.whatsapp_message_id) for m in MessageMap.select()}
        delivered = RelayEvent.select().where(RelayEvent.status == EVENT_DELIVERED).count()
    assert mapped == set(ids) and delivered == 10
    assert counted(bridge, "relayed") == 10


def _then(connection: sqlite3.Connection, also: Callable[[sqlite3.Connection], None]) -> Any:
    also(connection)
    return connection


def _transactions(statements: list[str]) -> list[list[str]]:
    """SQL statements grouped by transaction: BEGIN … COMMIT, or a lone autocommit one."""
    grouped: list[list[str]] = []
    current: list[str] | None = None
    for sql in (statement.strip() for statement in statements):
        keyword = sql.split(" ", 1)[0].upper()
        if keyword == "BEGIN":
            current = []
        elif keyword in ("COMMIT", "ROLLBACK") and current is not None:
            grouped.append(current)
            current = None
        elif current is not None:
            current.append(sql)
        else:
            grouped.append([sql])
    return grouped


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_last_customer_message_is_recorded_with_the_delivered_batch(
    bridge: CloudBridge, chatwoot: FakeChatwoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read receipts need the chat's last customer message. It is written in the drain's flush
    transaction, with the delivered marks, never in a commit of its own per message."""
    with database.connection_context():
        ChatwootIntegration.update(mark_read=True).where(
            ChatwootIntegration.id == bridge.integration_id
        ).execute()
    ids = store_messages(bridge, 6)
    by_connection: dict[int, list[str]] = {}  # the drain's and the group commit's (a thread)

    def traced(connection: sqlite3.Connection) -> None:
        connection.set_trace_callback(by_connection.setdefault(id(connection), []).append)

    opened = database.obj._connect
    monkeypatch.setattr(database.obj, "_connect", lambda: _then(opened(), traced))
    database.close()  # this thread's connection is opened again, traced
    with database.connection_context():
        result = drain(bridge)
        state = ChatReadState.get(
            (ChatReadState.integration == bridge.integration_id)
            & (ChatReadState.chat_key == CUSTOMER)
        )
    assert result.delivered == 6 and posted(chatwoot) == ids
    assert state.last_inbound_id == ids[-1] and state.read_id is None
    state_table, event_table = ChatReadState._meta.table_name, RelayEvent._meta.table_name
    writes_of_state = [
        transaction
        for statements in by_connection.values()
        for transaction in _transactions(statements)
        if any(f'"{state_table}"' in sql and not sql.startswith("SELECT") for sql in transaction)
    ]
    assert writes_of_state, by_connection
    for transaction in writes_of_state:
        assert any(
            sql.startswith(f'UPDATE "{event_table}"') and "\"status\" = 'delivered'" in sql
            for sql in transaction
        ), transaction


def test_counters_count_failed_and_retried_events(
    bridge: CloudBridge, chatwoot: FakeChatwoot
) -> None:
    ids = store_messages(bridge, 3)
    chatwoot.fail_next("POST", r"/conversations/\d+/messages$", 422, times=1)
    assert drain(bridge).failed == 1 and counted(bridge, "failed") == 1
    assert posted(chatwoot) == ids[1:]
    assert counted(bridge, "relayed") == 2

    more = [f"wamid.later.{n}" for n in range(2)]
    for message_id in more:
        assert bridge.post(text_body(CUSTOMER, message_id, "later")).status_code == 200
    chatwoot.fail_next("POST", r"/conversations/\d+/messages$", 503, times=50)
    result = drain(bridge)
    chatwoot.clear_faults()
    assert result.retry_after is not None
    assert counted(bridge, "retried") == 1
    with database.connection_context():
        RelayEvent.update(next_attempt_at=utcnow()).where(
            RelayEvent.status == EVENT_PENDING
        ).execute()
    assert drain(bridge).delivered == 2
    assert posted(chatwoot) == ids[1:] + more
    assert (counted(bridge, "relayed"), counted(bridge, "failed")) == (4, 1)
    assert counted(bridge, "retried") == 1


# ---- liveness ---------------------------------------------------------------------------


def test_a_missing_alive_key_proves_nothing_in_a_redis_that_just_came_back(
    bridge: CloudBridge,
) -> None:
    foreign = f"{FOREIGN}:x"
    redis = get_redis()
    redis.set(redis_key("alive", FOREIGN), b"1", ex=60)
    assert not liveness.owner_gone(foreign)

    forget_everything_in_redis()  # restarted empty: no alive key, no epoch
    assert liveness.redis_memory_seconds() == 0
    assert not liveness.owner_gone(foreign)
    lock_key = redis_key("lane", "test", "lock")
    redis.set(lock_key, foreign.encode())
    assert not liveness.take_over_if_orphaned(lock_key)

    liveness.beat()  # the first beat into an empty Redis starts its epoch
    epoch = redis.get(redis_key("liveness-epoch"))
    assert epoch is not None
    liveness.beat()
    assert redis.get(redis_key("liveness-epoch")) == epoch  # later beats keep it
    assert not liveness.owner_gone(foreign)

    if redis_uptime() < liveness.ALIVE_TTL_SECONDS:
        pytest.skip("the shared Redis itself started less than a TTL ago")
    server_now = int(redis.time()[0])
    redis.set(redis_key("liveness-epoch"), str(server_now - liveness.ALIVE_TTL_SECONDS - 1))
    assert liveness.owner_gone(foreign)  # a full TTL without a beat: that worker is dead
    assert liveness.take_over_if_orphaned(lock_key)
    assert redis.get(lock_key) is None


def test_a_token_of_this_process_is_live_while_its_drain_runs(bridge: CloudBridge) -> None:
    token = liveness.lock_token()
    with liveness.running(token):
        assert not liveness.owner_gone(token)
    assert liveness.owner_gone(token)
