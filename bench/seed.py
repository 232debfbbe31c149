"""Seeding a named database with millions of stored, delivered inbound events for the scale run.

The events belong to an instance named ``seed`` (created through the API on first use) and are
copies of one real stored event (the bridge's own payload format) with their own ids, chats and
dates over the last 25 days, written by the database itself (PostgreSQL ``generate_series``,
SQLite a recursive CTE) in chunks that each commit, with the matching counter bumps in the same
transaction. Resumable: a run tops the seed up to the requested count and reuses what is there.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import peewee

from app.store.counters import bump_counters
from app.store.db import database
from app.store.models import EVENT_DELIVERED, ChatwootIntegration, Instance, RelayEvent
from bench.bridge import Bridge, cloud_requests
from bench.stack import BenchStack, wait_for

SEED = "seed"
SEED_PHONE_NUMBER_ID = "999000111222"
CHUNK = 250_000
CHATS = 10_000
SPREAD_SECONDS = 25 * 86_400


def seed_integration() -> ChatwootIntegration | None:
    with database.connection_context():
        instance = Instance.get_or_none(Instance.name == SEED)
        if instance is None:
            return None
        found: ChatwootIntegration | None = ChatwootIntegration.get_or_none(
            ChatwootIntegration.instance == instance
        )
        return found


def create_seed_instance(stack: BenchStack) -> ChatwootIntegration:
    body = {
        "name": SEED,
        "provider": "cloud",
        "cloudPhoneNumberId": SEED_PHONE_NUMBER_ID,
        "cloudAccessToken": "EAAG-seed",
        "cloudAppSecret": "seed-app-secret",
        "cloudApiBaseUrl": stack.graph_url,
        "chatwootEnabled": True,
        "chatwootBaseUrl": stack.chatwoot_url,
        "chatwootAccountId": stack.chatwoot_account,
        "chatwootApiToken": stack.chatwoot_token,
    }
    stack.api("POST", "/api/instance/new", json=body).raise_for_status()
    created = seed_integration()
    assert created is not None
    return created


def repoint(stack: BenchStack, bridge: Bridge) -> None:
    """Give the seed instance to this run's account and this run's fake Chatwoot inbox."""
    with database.connection_context():
        ours = ChatwootIntegration.get_by_id(bridge.integration_id)
        seed = seed_integration()
        assert seed is not None
        seed.chatwoot_base_url = stack.chatwoot_url
        seed.chatwoot_account_id = stack.chatwoot_account
        seed.chatwoot_inbox_id = ours.chatwoot_inbox_id
        seed.set_secret("chatwoot_api_token", stack.chatwoot_token)
        seed.save()
        Instance.update(account=ours.instance.account).where(Instance.name == SEED).execute()


def template_event(stack: BenchStack, bridge: Bridge) -> dict[str, Any]:
    """One real stored event (posted while the integration is paused), as column values."""
    stack.api("POST", f"/api/chatwoot/pause/{bridge.instance}").raise_for_status()
    request = next(cloud_requests(bridge.instance, "SEEDTEMPLATE", 1, 1))
    stack.api("POST", request.path, content=request.body, headers=request.headers)
    query = RelayEvent.select().where(RelayEvent.message_id == "wamid.SEEDTEMPLATE.0")

    def stored() -> bool:
        with database.connection_context():
            return bool(query.exists())

    wait_for(stored, 30, "the template event")
    with database.connection_context():
        row: dict[str, Any] = query.dicts().get()  # type: ignore[assignment]
    stack.api("POST", f"/api/chatwoot/resume/{bridge.instance}").raise_for_status()
    return row


def seeded_count(integration_id: str) -> int:
    with database.connection_context():
        return int(RelayEvent.select().where(RelayEvent.integration == integration_id).count())


def seed(stack: BenchStack, bridge: Bridge, total: int) -> tuple[int, float]:
    """Top the seed up to ``total`` events; returns (events added, seconds it took)."""
    integration = seed_integration() or create_seed_instance(stack)
    have = seeded_count(integration.id)
    if have >= total:
        return 0, 0.0
    template = template_event(stack, bridge)
    begin = time.monotonic()
    for start in range(have, total, CHUNK):
        end = min(start + CHUNK, total)
        with database.atomic():
            database.execute_sql(*insert_sql(template, integration.id, start, end, total))
            bump_counters(
                [
                    (integration.id, "inbound", "received", end - start),
                    (integration.id, "inbound", "relayed", end - start),
                ]
            )
        print(f"  seeded {end:,} of {total:,} events", flush=True)
    return total - have, time.monotonic() - begin


def insert_sql(
    row: dict[str, Any], integration_id: str, start: int, end: int, total: int
) -> tuple[str, list[Any]]:
    """INSERT … SELECT over the numbers start..end-1, one event each, copying ``row``."""
    postgres = isinstance(database.obj, peewee.PostgresqlDatabase)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    step = SPREAD_SECONDS / total
    if postgres:
        numbers = "generate_series(%s, %s) AS s(g)"
        text = "CAST(g AS TEXT)"
        chat = "'1650' || lpad(CAST(g %% {chats} AS TEXT), 7, '0')"
        when = "CAST(%s AS TIMESTAMP) - make_interval(secs => ({total} - g) * {step})"
    else:
        numbers = "s"
        text = "CAST(g AS TEXT)"
        chat = "printf('1650%%07d', g %% {chats})"
        when = (
            "strftime('%%Y-%%m-%%d %%H:%%M:%%f', %s, '-' || (({total} - g) * {step}) || ' seconds')"
        )
    chat = chat.format(chats=CHATS)
    when = when.format(total=total, step=step)
    columns, values, params = [], [], []
    for field in RelayEvent._meta.sorted_fields:
        name = field.column_name
        if name == "id":
            continue
        columns.append(name)
        if name in ("payload", "natural_key", "message_id"):
            values.append(f"replace(%s, 'SEEDTEMPLATE.0', 'seed.' || {text})")
            params.append(row[field.name])
        elif name == "chat_key":
            values.append(chat)
        elif name in ("created_at", "updated_at", "delivered_at"):
            values.append(when)
            params.append(now)
        elif name == "integration_id":
            values.append("%s")
            params.append(integration_id)
        elif name in ("claim_token", "claimed_until", "next_attempt_at"):
            values.append("NULL")
        else:
            values.append("%s")
            params.append(EVENT_DELIVERED if name == "status" else field.db_value(row[field.name]))
    table = RelayEvent._meta.table_name
    # names from the model and fixed SQL fragments; every value is a parameter
    sql = f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} FROM {numbers}"  # noqa: S608
    if postgres:
        return sql, [*params, start, end - 1]
    cte = "WITH RECURSIVE s(g) AS (SELECT %s UNION ALL SELECT g + 1 FROM s WHERE g < %s) "
    return (cte + sql).replace("%%", "%").replace("%s", "?"), [start, end - 1, *params]
