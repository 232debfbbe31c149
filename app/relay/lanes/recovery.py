"""Finding lanes with events that are stored but not delivered.

Used after a worker restart, periodically (a killed worker's jobs come back from Dramatiq only
after minutes, if at all), after ``resume`` and after a successful ``set``. Enqueueing a lane
twice is harmless: a lane drains under its lock and an empty lane costs one query.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import cast

from app.store.models import (
    EVENT_PENDING,
    STATE_ACTIVE,
    ChatwootIntegration,
    RelayEvent,
    utcnow,
)

Lane = tuple[str, str, str]  # direction, integration id, chat key


def ready_lanes(integration_id: str | None = None, idle_seconds: float = 0.0) -> list[Lane]:
    """Lanes of deliverable integrations whose oldest ready event is at least ``idle_seconds``
    old (so lanes being worked on right now are left alone by the periodic sweep)."""
    now = utcnow()
    cutoff = now - dt.timedelta(seconds=idle_seconds)
    query = (
        RelayEvent.select(RelayEvent.direction, RelayEvent.integration, RelayEvent.chat_key)
        .join(ChatwootIntegration)
        .where(
            (RelayEvent.status == EVENT_PENDING)
            & (RelayEvent.created_at <= cutoff)
            & (RelayEvent.next_attempt_at.is_null() | (RelayEvent.next_attempt_at <= now))
            & (ChatwootIntegration.state == STATE_ACTIVE)
            & (ChatwootIntegration.paused == False)  # noqa: E712 (SQL comparison)
            & ChatwootIntegration.chatwoot_inbox_id.is_null(False)
        )
        .distinct()
        .tuples()
    )
    if integration_id is not None:
        query = query.where(RelayEvent.integration == integration_id)
    rows = cast("Iterable[tuple[str, str, str]]", query)
    return [(str(direction), str(integration), str(chat)) for direction, integration, chat in rows]
