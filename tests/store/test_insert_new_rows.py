"""``insert_new_events`` (app/relay/intake_lock.py, on ``insert_new_rows``): the intake's
insert that lets the unique index decide what is new — stored rows are skipped untouched,
and exactly the rows written are reported, on both databases."""

from __future__ import annotations

from typing import Any

from app.config import Settings
from app.relay.intake_lock import ROWS_PER_INSERT, insert_new_events
from app.store.db import database
from app.store.models import RelayEvent
from tests.store.rows import integration_named


def _row(integration_id: str, key: str, payload: str, direction: str = "inbound") -> Any:
    return {
        "integration_id": integration_id,
        "direction": direction,
        "natural_key": key,
        "chat_key": "15550001111",
        "kind": "message",
        "payload": payload,
    }


def _stored() -> dict[tuple[str, str], str]:
    return {(e.direction, e.natural_key): e.payload for e in RelayEvent.select()}


def test_stored_rows_are_skipped_untouched_and_only_new_ones_reported(
    store_settings: Settings,
) -> None:
    with database.connection_context(), database.atomic():
        integration = integration_named("acme").id
        first = [_row(integration, f"msg:{i}", "first") for i in range(3)]
        assert insert_new_events(first) == {
            "msg:0",
            "msg:1",
            "msg:2",
        }

        again = [_row(integration, f"msg:{i}", "redelivered") for i in range(5)]
        new = insert_new_events(again)

        assert new == {"msg:3", "msg:4"}
        stored = _stored()
        assert len(stored) == 5
        assert [stored[("inbound", f"msg:{i}")] for i in range(5)] == [
            "first",
            "first",
            "first",
            "redelivered",
            "redelivered",
        ]


def test_the_same_key_in_the_other_direction_is_new(store_settings: Settings) -> None:
    with database.connection_context(), database.atomic():
        integration = integration_named("acme").id
        insert_new_events([_row(integration, "k", "in")])
        outbound = [_row(integration, "k", "out", direction="outbound")]

        assert insert_new_events(outbound) == {"k"}
        assert _stored() == {("inbound", "k"): "in", ("outbound", "k"): "out"}


def test_every_chunk_reports_its_new_rows_and_a_key_twice_is_written_once(
    store_settings: Settings,
) -> None:
    count = ROWS_PER_INSERT * 2 + 7
    with database.connection_context(), database.atomic():
        integration = integration_named("acme").id
        rows = [_row(integration, f"msg:{i}", f"p{i}") for i in range(count)]
        rows.append(_row(integration, "msg:5", "a second copy in the same call"))

        new = insert_new_events(rows)

        assert new == {f"msg:{i}" for i in range(count)}
        stored = _stored()
        assert len(stored) == count and stored[("inbound", "msg:5")] == "p5"
        ids = [e.id for e in RelayEvent.select().order_by(RelayEvent.id)]
        keys = [e.natural_key for e in RelayEvent.select().order_by(RelayEvent.id)]
        assert keys == [f"msg:{i}" for i in range(count)]  # ids follow the rows' order
        assert ids == sorted(ids)


def test_no_rows_write_nothing(store_settings: Settings) -> None:
    with database.connection_context():
        assert insert_new_events([]) == set()
        assert RelayEvent.select().count() == 0
