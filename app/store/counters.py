"""Per-integration event counters: the one place events are counted.

``bump_counters`` is called by whoever makes the change it counts (the intake for
``received``, the drain for ``relayed``/``failed``/``retried``), INSIDE that change's
transaction and once per batch, so a crash never counts something that did not happen and a
count never goes missing. ``/metrics`` and ``list`` read these rows instead of counting over
``relay_event`` (which grows to millions of rows).

The bump is one multi-row ``INSERT … ON CONFLICT (integration, direction, outcome) DO UPDATE
SET value = value + excluded.value`` (SQLite ≥ 3.24 and PostgreSQL). Deltas are summed per key
first and written in a fixed key order, so two concurrent batches lock the same rows in the same
order and cannot deadlock on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Literal, cast

from peewee import Case, fn

from app.store.db import database
from app.store.models import (
    EVENT_DELIVERED,
    EVENT_FAILED,
    ChatwootIntegration,
    RelayCounter,
    RelayEvent,
    utcnow,
)
from app.store.prepared import quoted

Direction = Literal["inbound", "outbound"]
Outcome = Literal["received", "relayed", "failed", "retried"]
CounterDelta = tuple[str, str, str, int]
"""``(integration_id, direction, outcome, n)``: ``n`` more events of that outcome."""

DIRECTIONS: tuple[Direction, ...] = ("inbound", "outbound")
OUTCOMES: tuple[Outcome, ...] = ("received", "relayed", "failed", "retried")
CounterKey = tuple[str, str, str]
_OUTCOME_OF_STATUS = {EVENT_DELIVERED: "relayed", EVENT_FAILED: "failed"}
Totals = dict[tuple[str, str], int]
"""``{(direction, outcome): value}`` with every direction/outcome pair present (0 if none)."""


def _summed(deltas: Iterable[CounterDelta]) -> dict[CounterKey, int]:
    summed: dict[CounterKey, int] = {}
    for integration_id, direction, outcome, n in deltas:
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown counter direction: {direction!r}")
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown counter outcome: {outcome!r}")
        key = (str(integration_id), direction, outcome)
        summed[key] = summed.get(key, 0) + int(n)
    return {key: n for key, n in summed.items() if n}


def bump_counters(deltas: Iterable[CounterDelta]) -> None:
    """Add each delta to its counter (created at 0 if missing), in the caller's transaction.

    One statement whatever the batch size; a no-op when every delta sums to zero.
    """
    summed = _summed(deltas)
    if not summed:
        return
    updated_at: Any = RelayCounter.updated_at
    now = updated_at.db_value(utcnow())
    params: list[Any] = []
    for (integration_id, direction, outcome), n in sorted(summed.items()):
        params += [integration_id, direction, outcome, n, now]
    database.execute_sql(_bump_sql(len(summed)), params)


def _bump_sql(rows: int) -> str:
    """The upsert of ``rows`` counters, written by hand: this runs in every intake batch and
    every delivery flush, and peewee takes longer to build it than the database to run it."""
    table = quoted(RelayCounter._meta.table_name)

    def name(field: Any) -> str:
        return quoted(field.column_name)

    key = [RelayCounter.integration, RelayCounter.direction, RelayCounter.outcome]
    columns = [*key, RelayCounter.value, RelayCounter.updated_at]
    one_row = "(" + ", ".join([database.param] * len(columns)) + ")"
    value, updated = name(RelayCounter.value), name(RelayCounter.updated_at)
    return (
        f"INSERT INTO {table} ({', '.join(map(name, columns))}) "  # noqa: S608 (model names)
        f"VALUES {', '.join([one_row] * rows)} "
        f"ON CONFLICT ({', '.join(map(name, key))}) DO UPDATE SET "
        f"{value} = {table}.{value} + EXCLUDED.{value}, {updated} = EXCLUDED.{updated}"
    )


def _zeroes() -> Totals:
    return {(direction, outcome): 0 for direction in DIRECTIONS for outcome in OUTCOMES}


def counters_query(integration_id: str) -> Any:
    return RelayCounter.select(
        RelayCounter.direction, RelayCounter.outcome, RelayCounter.value
    ).where(RelayCounter.integration == integration_id)


def counters_of(integration_id: str) -> Totals:
    """This integration's counters (a unique-index range read: at most eight rows)."""
    found = _zeroes()
    rows = cast("Iterable[tuple[str, str, int]]", counters_query(integration_id).tuples())
    for direction, outcome, value in rows:
        found[(direction, outcome)] = int(value)
    return found


def last_bumped_query(integration_id: str, outcome: str) -> Any:
    return RelayCounter.select(RelayCounter.updated_at).where(
        (RelayCounter.integration == integration_id) & (RelayCounter.outcome == outcome)
    )


def last_bumped_at(integration_id: str, outcome: str) -> dt.datetime | None:
    """When this integration's ``outcome`` counters (any direction) last moved, or None; for
    ``relayed`` that is the last delivery."""
    rows = last_bumped_query(integration_id, outcome)
    return max((row.updated_at for row in rows), default=None)


def totals_query() -> Any:
    return RelayCounter.select(
        RelayCounter.direction, RelayCounter.outcome, fn.SUM(RelayCounter.value)
    ).group_by(RelayCounter.direction, RelayCounter.outcome)


def totals() -> Totals:
    """Every integration's counters summed by direction and outcome (one row per integration
    and key: a small table, read whole)."""
    found = _zeroes()
    rows = cast("Iterable[tuple[str, str, int]]", totals_query().tuples())
    for direction, outcome, value in rows:
        found[(direction, outcome)] = int(value or 0)
    return found


def as_mapping(found: Totals) -> Mapping[str, Mapping[str, int]]:
    """``{direction: {outcome: value}}``, handy for JSON."""
    return {d: {o: found[(d, o)] for o in OUTCOMES} for d in DIRECTIONS}


def backfill_counters() -> int:
    """Give each integration that has events but no counters the figures of its stored events
    (one ``GROUP BY`` per such integration, once: afterwards it has counter rows). Run by
    ``wootbridge migrate``, so a deployment that predates the counters keeps its figures.
    Returns how many integrations were backfilled."""
    uncounted = ChatwootIntegration.select(ChatwootIntegration.id).where(
        ~fn.EXISTS(
            RelayCounter.select(RelayCounter.value).where(
                RelayCounter.integration == ChatwootIntegration.id
            )
        )
    )
    done = 0
    for (integration_id,) in cast("Iterable[tuple[str]]", uncounted.tuples()):
        with database.atomic():
            deltas = list(_stored_figures(integration_id))
            bump_counters(deltas)
            _stamp_last_delivery(integration_id)
        done += 1 if deltas else 0
    return done


def _stored_figures(integration_id: str) -> Iterator[CounterDelta]:
    retries = Case(None, ((RelayEvent.attempts > 1, RelayEvent.attempts - 1),), 0)
    rows = cast(
        "Iterable[tuple[str, str, int, int]]",
        RelayEvent.select(
            RelayEvent.direction, RelayEvent.status, fn.COUNT(RelayEvent.id), fn.SUM(retries)
        )
        .where(RelayEvent.integration == integration_id)
        .group_by(RelayEvent.direction, RelayEvent.status)
        .tuples(),
    )
    for direction, status, count, retried in rows:
        if direction not in DIRECTIONS:
            continue
        yield integration_id, direction, "received", int(count)
        yield integration_id, direction, "retried", int(retried or 0)
        if status in _OUTCOME_OF_STATUS:
            yield integration_id, direction, _OUTCOME_OF_STATUS[status], int(count)


def _stamp_last_delivery(integration_id: str) -> None:
    """The backfilled ``relayed`` counters moved when the last stored delivery happened."""
    for direction in DIRECTIONS:
        last = (
            RelayEvent.select(fn.MAX(RelayEvent.delivered_at))
            .where(
                (RelayEvent.integration == integration_id)
                & (RelayEvent.direction == direction)
                & (RelayEvent.status == EVENT_DELIVERED)
            )
            .scalar()
        )
        if last is not None:
            RelayCounter.update(updated_at=last).where(
                (RelayCounter.integration == integration_id)
                & (RelayCounter.direction == direction)
                & (RelayCounter.outcome == "relayed")
            ).execute()
