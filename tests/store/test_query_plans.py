"""Every hot-path query uses an index (issue 9): none reads the whole event table.

Rather than copying each query (copies drift), the test runs the real function on a small store
and records every statement it sends (peewee logs each one at DEBUG), then asks the database how
it would run each statement that reads ``relay_event``, ``chat_alias`` or ``message_map``:

* SQLite: ``EXPLAIN QUERY PLAN``; a line ``SCAN <table>`` without ``USING [COVERING] INDEX`` is a
  full scan;
* PostgreSQL: ``EXPLAIN`` with ``enable_seqscan = off`` (a sequential scan then shows only when
  no index can serve the query); a ``Seq Scan on <table>`` is a full scan.

None of these functions calls a remote system. The drain's pending query is its private
``_pending`` (the query a lane runs before each batch).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import peewee
import pytest

from app.config import Settings
from app.management import failed_events, retention
from app.management.accounts import create_account
from app.management.instances import CloudSettings, NewInstance, create_instance
from app.management.integrations import save_request
from app.management.provisioning import IntegrationRequest
from app.relay import confirmations, message_map
from app.relay.inbound.intake import store_inbound
from app.relay.lanes import drain, recovery
from app.relay.messages import InboundMessage, StatusUpdate
from app.relay.outbound.chatwoot_webhook import AgentReply
from app.relay.outbound.intake import store_reply
from app.store.db import database
from app.store.models import (
    DIRECTION_INBOUND,
    EVENT_DELIVERED,
    STATE_ACTIVE,
    ChatwootIntegration,
    RelayEvent,
    utcnow,
)

HOT_TABLES = ("relay_event", "chat_alias", "message_map")
PHONE = "5511987654321"
BSUID = "US.13491208655302741918"
Statement = tuple[str, tuple[Any, ...]]


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[Statement] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, tuple) and len(record.msg) == 2:
            sql, params = record.msg
            self.statements.append((str(sql), tuple(params or ())))


@contextmanager
def recorded() -> Iterator[list[Statement]]:
    """The statements peewee sends inside the block."""
    recorder = _Recorder()
    log = logging.getLogger("peewee")
    previous = log.level
    log.addHandler(recorder)
    log.setLevel(logging.DEBUG)
    try:
        yield recorder.statements
    finally:
        log.removeHandler(recorder)
        log.setLevel(previous)


def _is_postgres() -> bool:
    return isinstance(database.obj, peewee.PostgresqlDatabase)


def plan(sql: str, params: tuple[Any, ...]) -> list[str]:
    if _is_postgres():
        with database.atomic():
            database.execute_sql("SET LOCAL enable_seqscan = off")
            rows = database.execute_sql(f"EXPLAIN {sql}", params).fetchall()
        return [str(r[0]) for r in rows]
    rows = database.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    return [str(r[-1]) for r in rows]


def hot_names(sql: str) -> set[str]:
    """The hot tables the statement reads, by name and by alias (SQLite's plan names the
    alias: ``SCAN t1``; PostgreSQL's names the table: ``Seq Scan on relay_event t1``)."""
    names = {table for table in HOT_TABLES if f'"{table}"' in sql}
    aliased = re.findall(r'"(\w+)" AS "(\w+)"', sql)
    return names | {alias for table, alias in aliased if table in HOT_TABLES}


def full_scans(sql: str, params: tuple[Any, ...]) -> list[str]:
    """The plan lines of ``sql`` that read a whole hot table."""
    names = hot_names(sql)
    found = []
    for line in plan(sql, params):
        if _is_postgres():
            scan = re.search(r"Seq Scan on (\w+)", line)
            hit = scan is not None and scan.group(1) in names
        else:
            scan = re.search(r"\bSCAN (\w+)", line)
            hit = scan is not None and scan.group(1) in names and "INDEX" not in line
        if hit:
            found.append(line.strip())
    return found


def hot_statements(statements: list[Statement]) -> list[Statement]:
    """The reads, updates and deletes that touch a hot table (inserts need no plan)."""
    return [
        (sql, params)
        for sql, params in statements
        if sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE"))
        and any(f'"{table}"' in sql for table in HOT_TABLES)
    ]


def assert_indexed(action: Callable[[], object], must_touch: str = "relay_event") -> None:
    with recorded() as statements:
        action()
    checked = hot_statements(statements)
    assert any(f'"{must_touch}"' in sql for sql, _ in checked), "nothing recorded"
    scans = {sql: full_scans(sql, params) for sql, params in checked}
    assert {sql: lines for sql, lines in scans.items() if lines} == {}


@pytest.fixture
def integration(store_settings: Settings) -> Iterator[ChatwootIntegration]:
    """An active integration with a few events of every kind, so plans see real tables."""
    cloud = CloudSettings("106540352242922", "access-token", "app-secret", "verify-token")
    request = IntegrationRequest("https://chatwoot.example.com", 5, "cw-token", "WA")
    with database.connection_context():
        account, _ = create_account("Acme")
        spec = NewInstance(name="suporte", provider="cloud", cloud=cloud)
        created, _ = save_request(create_instance(account, spec).instance, request)
        ChatwootIntegration.update(state=STATE_ACTIVE, chatwoot_inbox_id=7).where(
            ChatwootIntegration.id == created.id
        ).execute()
        for n in range(5):
            store_inbound(created, [_text(f"wamid.SEED{n}", f"55119876543{n:02d}")])
        store_reply(created, AgentReply(1, 2, PHONE, content="hi"))
        yield ChatwootIntegration.get_by_id(created.id)


def _text(message_id: str, chat_id: str = PHONE) -> InboundMessage:
    return InboundMessage(message_id, chat_id, chat_id, "text", text="hi", chat_aliases=(BSUID,))


def test_the_checker_sees_a_full_scan(integration: ChatwootIntegration) -> None:
    query = RelayEvent.select().where(RelayEvent.last_error == "no index on this")
    sql, params = query.sql()
    assert full_scans(sql, tuple(params)) != []


def test_intake_natural_key_and_alias_lookups(integration: ChatwootIntegration) -> None:
    assert_indexed(lambda: store_inbound(integration, [_text("wamid.NEW")]))
    assert_indexed(lambda: store_inbound(integration, [_text("wamid.NEW")]), "chat_alias")
    status = StatusUpdate("wamid.OUT", "read", BSUID)
    assert_indexed(lambda: store_inbound(integration, [status]))


def test_outbound_intake(integration: ChatwootIntegration) -> None:
    reply = AgentReply(9, 2, PHONE, content="x")
    assert_indexed(lambda: store_reply(integration, reply), "message_map")


def test_the_lane_pending_query(integration: ChatwootIntegration) -> None:
    assert_indexed(lambda: drain._pending(DIRECTION_INBOUND, integration.id, PHONE))


def test_recovery_ready_lanes(integration: ChatwootIntegration) -> None:
    assert_indexed(lambda: recovery.ready_lanes())
    assert_indexed(lambda: recovery.ready_lanes(integration.id, idle_seconds=10))


def test_message_map_lookups_and_status_wake(integration: ChatwootIntegration) -> None:
    store_inbound(integration, [StatusUpdate("wamid.OUT", "read", PHONE)])
    assert_indexed(lambda: message_map.remember_message(integration, "wamid.OUT", 5, 2, "outgoing"))
    link = message_map.MessageLink("wamid.OUT2", 6, 2, "outgoing")
    assert_indexed(lambda: message_map.remember_messages(integration.id, [link]))
    assert_indexed(lambda: message_map.furthest_tick(integration, 5), "message_map")
    read = message_map.Tick("read")
    assert_indexed(lambda: message_map.claim_tick(integration, "wamid.OUT", read), "message_map")
    assert_indexed(lambda: message_map.record_sent(integration, 5), "message_map")


def test_confirmations(integration: ChatwootIntegration) -> None:
    assert_indexed(lambda: confirmations.send_in_progress(integration, PHONE))
    assert_indexed(lambda: confirmations.adopt(integration, PHONE, "wamid.ECHO"))


def test_the_retention_purge(integration: ChatwootIntegration) -> None:
    RelayEvent.update(status=EVENT_DELIVERED, delivered_at=utcnow() - dt.timedelta(days=40)).where(
        RelayEvent.natural_key == "msg:wamid.SEED0"
    ).execute()
    assert_indexed(lambda: retention.purge(30))
    cutoff = utcnow()
    for query in (retention.delivered_due(cutoff), retention.waiting_due(cutoff)):
        sql, params = query.limit(retention.PURGE_BATCH).sql()
        assert full_scans(sql, tuple(params)) == []


def test_the_failed_list_retry_and_oldest_pending(integration: ChatwootIntegration) -> None:
    assert_indexed(lambda: failed_events.list_failed(integration))
    assert_indexed(lambda: failed_events.list_failed(integration, "inbound", 10, 1_000))
    assert_indexed(lambda: failed_events.retry_failed(integration))
    assert_indexed(lambda: failed_events.oldest_pending_at(integration))
