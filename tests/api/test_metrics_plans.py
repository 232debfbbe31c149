"""Every query ``/metrics`` and ``list`` run reads ``relay_event`` through an index: the plans
(SQLite ``EXPLAIN QUERY PLAN``; PostgreSQL ``EXPLAIN`` with sequential scans priced out) never
scan the event table, which holds millions of rows in a long-lived deployment."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import peewee
import pytest
from peewee import fn

from app.config import Settings
from app.management import failed_events, metrics
from app.management.accounts import create_account
from app.management.instances import CloudSettings, NewInstance, create_instance
from app.management.integrations import count_with_status_query, save_request
from app.management.provisioning import IntegrationRequest
from app.store.counters import counters_query, last_bumped_query, totals_query
from app.store.db import database
from app.store.models import EVENT_DELIVERED, EVENT_FAILED, EVENT_PENDING, RelayEvent


def _queries(integration_id: str) -> dict[str, Any]:
    return {
        "metrics: counter totals": totals_query(),
        "metrics: oldest pending": metrics.oldest_pending_query(),
        "metrics: integrations": metrics.integrations_query(),
        "list: counters": counters_query(integration_id),
        "list: last delivery": last_bumped_query(integration_id, "relayed"),
        "list: pending": count_with_status_query(integration_id, EVENT_PENDING),
        "list: failed": count_with_status_query(integration_id, EVENT_FAILED),
        "list: oldest pending": failed_events.oldest_pending_select(integration_id),
    }


SEEDED = 3000


def _seed_events() -> str:
    """Enough events (mostly delivered, as in a long-lived store) for the planners to cost
    the indexes as they would in production; returns the integration id."""
    account, _ = create_account("Plans")
    cloud = CloudSettings(phone_number_id="1", access_token="t", app_secret="s")
    instance = create_instance(account, NewInstance(name="plans", provider="cloud", cloud=cloud))
    request = IntegrationRequest(
        base_url="https://cw.example.com", account_id=1, api_token="tok", inbox_name="p"
    )
    integration, _ = save_request(instance.instance, request)
    statuses = [EVENT_DELIVERED] * 97 + [EVENT_PENDING, EVENT_FAILED, EVENT_PENDING]
    rows = [
        {
            "integration": integration.id,
            "direction": "inbound" if i % 2 else "outbound",
            "natural_key": f"k{i}",
            "chat_key": f"c{i % 50}",
            "kind": "message",
            "payload": "{}",
            "status": statuses[i % len(statuses)],
            "message_id": f"m{i}",
        }
        for i in range(SEEDED)
    ]
    with database.atomic():
        for start in range(0, SEEDED, 500):
            RelayEvent.insert_many(rows[start : start + 500]).execute()
    database.execute_sql("ANALYZE")
    return str(integration.id)


@pytest.fixture
def db(store_settings: Settings) -> Iterator[str]:
    with database.connection_context():
        yield _seed_events()


def _sqlite_scans(sql: str, params: list[Any]) -> list[str]:
    """Plan lines that read the event table whole (a table or a full-index ``SCAN``)."""
    aliases = set(re.findall(r'"relay_event" AS "(\w+)"', sql)) | {"relay_event"}
    plan = database.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    details = [str(row[-1]) for row in plan]
    return [d for d in details if re.match(r"SCAN (\w+)", d) and d.split()[1] in aliases]


def _postgres_event_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if node.get("Relation Name") == "relay_event":
        yield node
    for child in node.get("Plans", []):
        yield from _postgres_event_nodes(child)


def _postgres_scans(sql: str, params: list[Any]) -> list[str]:
    """Event-table nodes that are not a bounded index lookup (a sequential scan, a full-index
    scan, or an index range over the history whose rows are then filtered)."""
    with database.atomic():
        database.execute_sql("SET LOCAL enable_seqscan = off")
        (plan,) = database.execute_sql(f"EXPLAIN (FORMAT JSON) {sql}", params).fetchone()
    root = (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]
    return [
        f"{node['Node Type']} {node.get('Index Name', '')}".strip()
        for node in _postgres_event_nodes(root)
        if not _bounded(node)
    ]


def _bounded(node: dict[str, Any]) -> bool:
    """An index lookup that reads either exactly the matching rows, or only rows of one
    status (pending/failed: the backlog, never the delivered history) filtered further."""
    condition = str(node.get("Index Cond", ""))
    return bool(condition) and ("Filter" not in node or "status" in condition)


def _postgres() -> bool:
    return isinstance(database.obj, peewee.PostgresqlDatabase)


def test_no_query_of_metrics_or_list_scans_the_event_table(db: str) -> None:
    postgres = _postgres()
    scans = {}
    for name, query in _queries(db).items():
        sql, params = query.sql()
        found = _postgres_scans(sql, params) if postgres else _sqlite_scans(sql, params)
        if found:
            scans[name] = found
    assert scans == {}


def test_the_checker_sees_a_scan_and_a_filtered_range(db: str) -> None:
    """The plan check itself: a query on an unindexed column, and one whose index covers only
    part of its conditions, are both reported."""
    check = _postgres_scans if _postgres() else _sqlite_scans
    unindexed = RelayEvent.select(RelayEvent.payload).where(RelayEvent.kind == "x")
    assert check(*unindexed.sql()) != []
    if _postgres():
        partial = RelayEvent.select(fn.COUNT(RelayEvent.id)).where(
            (RelayEvent.integration == db) & (RelayEvent.kind == "x")
        )
        assert check(*partial.sql()) != []
