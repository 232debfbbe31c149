"""Figures for ``GET /metrics`` (Prometheus text format), read from the store.

The store is the source of truth for the relay, so every web process reports the same numbers
and nothing is lost when a worker restarts. Aggregates over all accounts; no secret, no
content, no identifier beyond direction and status.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import cast

import peewee

from app.store.models import (
    EVENT_DELIVERED,
    EVENT_PENDING,
    ChatwootIntegration,
    RelayEvent,
    utcnow,
)

LATENCY_SAMPLE = 1000


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _line(name: str, labels: dict[str, str], value: float) -> str:
    rendered = ",".join(f'{key}="{_escape(val)}"' for key, val in labels.items())
    return f"{name}{{{rendered}}} {value:g}" if rendered else f"{name} {value:g}"


def _events_by_outcome() -> list[str]:
    rows = cast(
        "Iterable[tuple[str, str, int, int]]",
        RelayEvent.select(
            RelayEvent.direction,
            RelayEvent.status,
            peewee.fn.COUNT(RelayEvent.id),
            peewee.fn.SUM(RelayEvent.attempts),
        )
        .group_by(RelayEvent.direction, RelayEvent.status)
        .tuples(),
    )
    lines = [
        "# HELP wootbridge_relay_events Relay events in the store, by direction and outcome.",
        "# TYPE wootbridge_relay_events gauge",
    ]
    retries: dict[str, int] = {}
    for direction, status, count, attempts in rows:
        lines.append(
            _line("wootbridge_relay_events", {"direction": direction, "status": status}, count)
        )
        retries[direction] = retries.get(direction, 0) + max(int(attempts or 0) - int(count), 0)
    lines += [
        "# HELP wootbridge_relay_retries Attempts beyond the first, over stored events.",
        "# TYPE wootbridge_relay_retries gauge",
    ]
    lines += [_line("wootbridge_relay_retries", {"direction": d}, n) for d, n in retries.items()]
    return lines


def _queue_lag() -> list[str]:
    rows = cast(
        "Iterable[tuple[str, object]]",
        RelayEvent.select(RelayEvent.direction, peewee.fn.MIN(RelayEvent.created_at))
        .where(RelayEvent.status == EVENT_PENDING)
        .group_by(RelayEvent.direction)
        .tuples(),
    )
    lines = [
        "# HELP wootbridge_relay_queue_lag_seconds Age of the oldest undelivered event.",
        "# TYPE wootbridge_relay_queue_lag_seconds gauge",
    ]
    now = utcnow()
    for direction, oldest in rows:
        stamp = dt.datetime.fromisoformat(oldest) if isinstance(oldest, str) else oldest
        if isinstance(stamp, dt.datetime):
            lag = (now - stamp).total_seconds()
            lines.append(_line("wootbridge_relay_queue_lag_seconds", {"direction": direction}, lag))
    return lines


def _latency() -> list[str]:
    """Stored → delivered, over the most recent deliveries of each direction."""
    lines = [
        "# HELP wootbridge_relay_latency_seconds Stored-to-delivered time, recent deliveries.",
        "# TYPE wootbridge_relay_latency_seconds summary",
    ]
    for direction in ("inbound", "outbound"):
        recent = list(
            RelayEvent.select(RelayEvent.created_at, RelayEvent.delivered_at)
            .where((RelayEvent.direction == direction) & (RelayEvent.status == EVENT_DELIVERED))
            .order_by(RelayEvent.id.desc())
            .limit(LATENCY_SAMPLE)
        )
        seconds = sorted(
            (row.delivered_at - row.created_at).total_seconds()
            for row in recent
            if row.delivered_at is not None
        )
        if not seconds:
            continue
        for quantile in (0.5, 0.99):
            value = seconds[min(int(quantile * len(seconds)), len(seconds) - 1)]
            labels = {"direction": direction, "quantile": str(quantile)}
            lines.append(_line("wootbridge_relay_latency_seconds", labels, value))
        lines.append(
            _line("wootbridge_relay_latency_seconds_count", {"direction": direction}, len(seconds))
        )
    return lines


def _integrations() -> list[str]:
    lines = [
        "# HELP wootbridge_integrations Chatwoot integrations by status.",
        "# TYPE wootbridge_integrations gauge",
    ]
    counts: dict[str, int] = {}
    for integration in ChatwootIntegration.select(
        ChatwootIntegration.state, ChatwootIntegration.paused
    ):
        counts[integration.status] = counts.get(integration.status, 0) + 1
    lines += [_line("wootbridge_integrations", {"status": s}, n) for s, n in sorted(counts.items())]
    return lines


def render() -> str:
    """The whole exposition (call inside a database connection)."""
    sections = [_events_by_outcome(), _queue_lag(), _latency(), _integrations()]
    return "\n".join(line for section in sections for line in section) + "\n"
