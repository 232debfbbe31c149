"""``GET /api/chatwoot/failed/:instance`` and ``POST /api/chatwoot/retry/:instance`` over the
HTTP API, on SQLite and PostgreSQL: paging, filters, tenancy, bad input, what a retry changes,
and that the queries read an index. Events are stored rows here (no worker: what a replay
delivers is tested in ``test_failed_replay.py``)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import peewee
import pytest
from starlette.testclient import TestClient

from app.config import Settings
from app.management import failed_events
from app.management.accounts import create_account
from app.store.db import database
from app.store.models import (
    EVENT_DELIVERED,
    EVENT_FAILED,
    EVENT_PENDING,
    RelayEvent,
    utcnow,
)
from tests.api.failed_helpers import PHONE, add_event, seed_integration
from tests.api.helpers import auth, create_instance, error_message
from tests.conftest import make_client

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
BSUID = "US.13491208655302741918"


@dataclass
class Api:
    client: TestClient
    account_token: str
    other_token: str
    instance_token: str
    integration_id: str

    def failed(self, query: str = "", token: str | None = None, name: str = "suporte") -> Any:
        return self.client.get(
            f"/api/chatwoot/failed/{name}{query}", headers=auth(token or self.account_token)
        )

    def retry(self, body: Any, token: str | None = None, name: str = "suporte") -> Any:
        return self.client.post(
            f"/api/chatwoot/retry/{name}", json=body, headers=auth(token or self.account_token)
        )


@pytest.fixture
def api(store_settings: Settings) -> Iterator[Api]:
    with make_client(store_settings) as client:
        with database.connection_context():
            _, account_token = create_account("Acme")
            _, other_token = create_account("Globex")
        instance_token = create_instance(client, account_token, "suporte")
        create_instance(client, other_token, "vendas")
        yield Api(client, account_token, other_token, instance_token, seed_integration("suporte"))


def ids_of(response: Any) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["failed"]]


# ---- failed: shape, paging, filters --------------------------------------------------------


def test_failed_lists_newest_first_without_content(api: Api) -> None:
    first = add_event(api.integration_id, 1, attempts=3, last_error="media unavailable: gone")
    add_event(api.integration_id, 2, status=EVENT_DELIVERED)
    add_event(api.integration_id, 3, status=EVENT_PENDING)
    second = add_event(api.integration_id, 4, direction="outbound", chat_key=BSUID, kind="reply")

    response = api.failed()

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"instance", "failed", "next_before"}
    assert body["instance"] == "suporte"
    assert body["next_before"] is None
    newest, oldest = body["failed"]
    assert newest["id"] == second
    assert (newest["direction"], newest["chat"], newest["kind"]) == ("outbound", BSUID, "reply")
    assert oldest == {
        "id": first,
        "direction": "inbound",
        "chat": "+" + PHONE,
        "kind": "text",
        "reason": "media unavailable: gone",
        "attempts": 3,
        "first_attempt_at": oldest["first_attempt_at"],
        "last_attempt_at": oldest["last_attempt_at"],
    }
    assert RFC3339.match(oldest["first_attempt_at"])
    assert RFC3339.match(oldest["last_attempt_at"])
    assert "secret content" not in response.text


def test_failed_pages_with_before_and_next_before(api: Api) -> None:
    ids = [add_event(api.integration_id, n) for n in range(7)]
    newest_first = list(reversed(ids))

    page1 = api.failed("?limit=3")
    assert ids_of(page1) == newest_first[:3]
    assert page1.json()["next_before"] == newest_first[2]
    page2 = api.failed(f"?limit=3&before={newest_first[2]}")
    assert ids_of(page2) == newest_first[3:6]
    page3 = api.failed(f"?limit=3&before={page2.json()['next_before']}")
    assert ids_of(page3) == newest_first[6:]
    assert page3.json()["next_before"] is None
    exact = api.failed("?limit=7")
    assert ids_of(exact) == newest_first
    assert exact.json()["next_before"] is None


def test_failed_defaults_to_50_and_filters_by_direction(api: Api) -> None:
    inbound = [add_event(api.integration_id, n) for n in range(51)]
    outbound = [add_event(api.integration_id, 100 + n, direction="outbound") for n in range(2)]

    everything = api.failed()
    assert len(ids_of(everything)) == 50
    assert ids_of(everything)[:2] == list(reversed(outbound))
    assert ids_of(api.failed("?direction=outbound")) == list(reversed(outbound))
    only_in = api.failed("?direction=inbound&limit=200")
    assert ids_of(only_in) == list(reversed(inbound))
    assert only_in.json()["next_before"] is None


def test_failed_lists_only_the_instances_own_events(api: Api) -> None:
    other = seed_integration("vendas")
    add_event(other, 1)
    mine = add_event(api.integration_id, 2)

    assert ids_of(api.failed()) == [mine]
    assert ids_of(api.failed(token=api.other_token, name="vendas")) != [mine]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?direction=sideways", "invalid query: direction: must be inbound or outbound"),
        ("?direction=", "invalid query: direction: must be inbound or outbound"),
        ("?limit=0", "invalid query: limit: must be an integer from 1 to 200"),
        ("?limit=201", "invalid query: limit: must be an integer from 1 to 200"),
        ("?limit=ten", "invalid query: limit: must be an integer from 1 to 200"),
        ("?limit=%2B5", "invalid query: limit: must be an integer from 1 to 200"),
        ("?limit=%D9%A5", "invalid query: limit: must be an integer from 1 to 200"),
        ("?before=-3", "invalid query: before: must be an event id"),
        ("?before=99999999999999999999", "invalid query: before: must be an event id"),
    ],
)
def test_failed_refuses_bad_query_values(api: Api, query: str, message: str) -> None:
    assert error_message(api.failed(query), 400) == message


# ---- tenancy ------------------------------------------------------------------------------


def test_tenancy_of_failed_and_retry(api: Api) -> None:
    event = add_event(api.integration_id, 1)
    for response in (api.failed(token=api.other_token), api.retry({}, token=api.other_token)):
        assert error_message(response, 404) == "instance not found"
    with_instance_token = api.failed(token=api.instance_token)
    assert ids_of(with_instance_token) == [event]
    for response in (
        api.failed(token=api.instance_token, name="vendas"),
        api.retry({}, token=api.instance_token, name="vendas"),
    ):
        assert error_message(response, 403) == "Instance token does not match this instance"
    for response in (api.failed(name="nobody"), api.retry({}, name="nobody")):
        assert error_message(response, 404) == "instance not found"
    assert error_message(api.failed(token=api.other_token, name="vendas"), 404) == (
        "no chatwoot integration for this instance"
    )
    answer = api.retry({"ids": [event]}, token=api.instance_token)
    assert answer.status_code == 202, answer.text
    assert answer.json()["retrying"] == 1


# ---- retry --------------------------------------------------------------------------------


def event_row(event_id: int) -> RelayEvent:
    with database.connection_context():
        found: RelayEvent = RelayEvent.get_by_id(event_id)
        return found


def test_retry_all_puts_every_failed_event_back_to_pending(api: Api) -> None:
    claimed_until = utcnow() + dt.timedelta(minutes=5)
    inbound = add_event(api.integration_id, 1, attempts=30, last_error="gave up", in_flight=False)
    outbound = add_event(
        api.integration_id,
        2,
        direction="outbound",
        progress=1,
        unconfirmed=True,
        sending=True,
        claim_token="gone-worker",
        claimed_until=claimed_until,
        next_attempt_at=claimed_until,
    )
    delivered = add_event(api.integration_id, 3, status=EVENT_DELIVERED)

    response = api.retry({})

    assert response.status_code == 202, response.text
    assert response.json() == {"instance": "suporte", "retrying": 2, "skipped": []}
    replayed = event_row(inbound)
    assert replayed.status == EVENT_PENDING
    assert replayed.attempts == 1  # > 0: the lane delivers it interrupted (looks first)
    assert replayed.in_flight is True
    assert replayed.last_error == "retrying: gave up"
    reply = event_row(outbound)
    assert (reply.status, reply.progress, reply.attempts) == (EVENT_PENDING, 1, 1)
    assert (reply.unconfirmed, reply.sending) == (False, False)
    assert (reply.claim_token, reply.claimed_until, reply.next_attempt_at) == (None, None, None)
    assert event_row(delivered).status == EVENT_DELIVERED
    assert ids_of(api.failed()) == []
    assert api.retry({}).json() == {"instance": "suporte", "retrying": 0, "skipped": []}


def test_retry_by_ids_skips_unknown_and_not_failed_ids(api: Api) -> None:
    wanted = add_event(api.integration_id, 1)
    untouched = add_event(api.integration_id, 2)
    pending = add_event(api.integration_id, 3, status=EVENT_PENDING)
    theirs = add_event(seed_integration("vendas"), 4)

    response = api.retry({"ids": [wanted, pending, 999_999, theirs, wanted]})

    assert response.status_code == 202, response.text
    assert response.json() == {
        "instance": "suporte",
        "retrying": 1,
        "skipped": sorted([pending, 999_999, theirs]),
    }
    assert event_row(wanted).status == EVENT_PENDING
    assert event_row(untouched).status == EVENT_FAILED
    assert event_row(theirs).status == EVENT_FAILED
    again = api.retry({"ids": [wanted]})
    assert again.json() == {"instance": "suporte", "retrying": 0, "skipped": [wanted]}
    assert api.retry({"ids": []}).json() == {"instance": "suporte", "retrying": 0, "skipped": []}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"ids": "1,2"}, "invalid body: ids: must be a list of event ids"),
        ({"ids": [1, "2"]}, "invalid body: ids: must be a list of event ids (positive integers)"),
        ({"ids": [True]}, "invalid body: ids: must be a list of event ids (positive integers)"),
        ({"ids": [0]}, "invalid body: ids: must be a list of event ids (positive integers)"),
        ({"ids": [2**63]}, "invalid body: ids: must be a list of event ids (positive integers)"),
        ({"ids": list(range(1, 1002))}, "invalid body: ids: must have at most 1000 ids"),
        ([1, 2], "invalid body: body: must be a JSON object"),
    ],
)
def test_retry_refuses_bad_bodies(api: Api, body: Any, message: str) -> None:
    failed = add_event(api.integration_id, 1)
    assert error_message(api.retry(body), 400) == message
    assert event_row(failed).status == EVENT_FAILED


# ---- list: oldest_pending_at ------------------------------------------------------------


def test_list_shows_when_the_oldest_pending_event_arrived(api: Api) -> None:
    def relay() -> dict[str, Any]:
        response = api.client.get("/api/chatwoot/list/suporte", headers=auth(api.account_token))
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()["relay"]
        return found

    assert relay()["oldest_pending_at"] is None
    add_event(api.integration_id, 1, status=EVENT_DELIVERED)
    oldest = add_event(api.integration_id, 2, status=EVENT_PENDING)
    add_event(api.integration_id, 3, status=EVENT_PENDING)
    with database.connection_context():
        stamp = dt.datetime(2026, 4, 20, 10, 15, 30)
        RelayEvent.update(created_at=stamp).where(RelayEvent.id == oldest).execute()

    assert relay()["oldest_pending_at"] == "2026-04-20T10:15:30Z"


# ---- the queries read an index ------------------------------------------------------------


def plan_of(query: Any) -> str:
    """The database's plan for ``query`` (PostgreSQL told to avoid sequential scans, which
    it prefers on tables this small)."""
    sql, params = query.sql()
    if isinstance(database.obj, peewee.SqliteDatabase):
        rows = database.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
        return " | ".join(str(row[-1]) for row in rows)
    with database.atomic():
        database.execute_sql("SET LOCAL enable_seqscan = off")
        rows = database.execute_sql(f"EXPLAIN {sql}", params).fetchall()
    return " | ".join(str(row[0]) for row in rows)


def test_failed_and_oldest_pending_queries_use_the_index(api: Api) -> None:
    for n in range(5):
        add_event(api.integration_id, n)
    with database.connection_context():
        queries = [
            failed_events.failed_select(api.integration_id, None, None).limit(51),
            failed_events.failed_select(api.integration_id, "outbound", 1000).limit(51),
            failed_events.oldest_pending_select(api.integration_id),
        ]
        for query in queries:
            plan = plan_of(query)
            assert "relay_event_integration_id_status_id" in plan, plan
            assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan  # no sort step
