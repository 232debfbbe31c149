"""Figures for ``GET /metrics`` (Prometheus text format), none of them counted over events.

- ``wootbridge_events_{received,relayed,failed,retried}_total{direction}``: counters summed
  over the ``relay_counter`` table (a few rows per integration, bumped in the transactions that
  make the changes: :mod:`app.store.counters`), so every web process reports the same numbers.
- ``wootbridge_remote_call_seconds{remote,outcome}``: a histogram of each HTTP exchange with
  Chatwoot or WhatsApp, kept in Redis by every process (:mod:`app.integrations.latency`).
- ``wootbridge_queue_lag_seconds``: age of the oldest pending event, read from the first entry
  of each integration's ``(integration, status, id)`` index for ``pending``.
- ``wootbridge_integrations{status}``: integrations by status (the integrations table).
- ``wootbridge_latency_store_up``: 1 when the histograms could be read from Redis.

No secret, no content, no identifier beyond direction, remote and status.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from peewee import fn
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from app.integrations.latency import Histogram
from app.store.counters import DIRECTIONS, OUTCOMES, Totals, totals
from app.store.models import (
    EVENT_PENDING,
    STATE_ACTIVE,
    STATE_ERROR,
    STATE_PROVISIONING,
    STATUS_PAUSED,
    ChatwootIntegration,
    RelayEvent,
    utcnow,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATUSES = (STATE_PROVISIONING, STATE_ACTIVE, STATE_ERROR, STATUS_PAUSED)
_HELP = {
    "received": "Events stored from webhooks (WhatsApp or Chatwoot), by direction.",
    "relayed": "Events delivered to the other side, by direction.",
    "failed": "Events whose delivery failed for good (until retried), by direction.",
    "retried": "Delivery attempts beyond the first, by direction.",
}


@dataclass(frozen=True)
class StoreFigures:
    counters: Totals
    queue_lag_seconds: float
    integrations: dict[str, int]


def oldest_pending_query() -> Any:
    """The creation time of the oldest pending event: for each integration, the first
    ``pending`` entry of its ``(integration, status, id)`` index (a correlated ``LIMIT 1``),
    then the minimum over integrations (a small table)."""
    first_pending = (
        RelayEvent.select(RelayEvent.created_at)
        .where(
            (RelayEvent.integration == ChatwootIntegration.id)
            & (RelayEvent.status == EVENT_PENDING)
        )
        .order_by(RelayEvent.id)
        .limit(1)
    )
    return ChatwootIntegration.select(fn.MIN(first_pending))


def integrations_query() -> Any:
    return ChatwootIntegration.select(
        ChatwootIntegration.state, ChatwootIntegration.paused, fn.COUNT(ChatwootIntegration.id)
    ).group_by(ChatwootIntegration.state, ChatwootIntegration.paused)


def _queue_lag() -> float:
    oldest = oldest_pending_query().scalar()
    if isinstance(oldest, str):
        oldest = dt.datetime.fromisoformat(oldest)
    if not isinstance(oldest, dt.datetime):
        return 0.0
    return max((utcnow() - oldest).total_seconds(), 0.0)


def _integrations() -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    rows = cast("Iterable[tuple[str, bool, int]]", integrations_query().tuples())
    for state, paused, n in rows:
        status = ChatwootIntegration(state=state, paused=bool(paused)).status
        counts[status] = counts.get(status, 0) + int(n)
    return counts


def read_store() -> StoreFigures:
    """Everything ``/metrics`` takes from the database (call inside a connection)."""
    return StoreFigures(totals(), _queue_lag(), _integrations())


class _Snapshot(Collector):
    def __init__(self, store: StoreFigures, histograms: list[Histogram] | None) -> None:
        self._store = store
        self._histograms = histograms

    def collect(self) -> Iterator[Metric]:
        for outcome in OUTCOMES:
            counter = CounterMetricFamily(
                f"wootbridge_events_{outcome}", _HELP[outcome], labels=["direction"]
            )
            for direction in DIRECTIONS:
                counter.add_metric([direction], self._store.counters[(direction, outcome)])
            yield counter
        yield GaugeMetricFamily(
            "wootbridge_queue_lag_seconds",
            "Age of the oldest pending event (0 when none is pending).",
            value=self._store.queue_lag_seconds,
        )
        integrations = GaugeMetricFamily(
            "wootbridge_integrations", "Chatwoot integrations by status.", labels=["status"]
        )
        for status, n in sorted(self._store.integrations.items()):
            integrations.add_metric([status], n)
        yield integrations
        yield from self._latency()

    def _latency(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "wootbridge_latency_store_up",
            "1 when the remote call histograms could be read from Redis, else 0.",
            value=0 if self._histograms is None else 1,
        )
        family = HistogramMetricFamily(
            "wootbridge_remote_call_seconds",
            "Duration of each HTTP exchange with a remote system (to the response head).",
            labels=["remote", "outcome"],
        )
        for histogram in self._histograms or []:
            family.add_metric(
                [histogram.remote, histogram.outcome],
                buckets=list(histogram.buckets),
                sum_value=histogram.sum_seconds,
            )
        yield family


def render(store: StoreFigures, histograms: list[Histogram] | None) -> bytes:
    """The exposition; ``histograms`` None means Redis could not be read."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(store, histograms))
    return generate_latest(registry)
