"""Sending a finished event back to its lane: the one reset that every replay goes through.

The retry API and CLI (:mod:`app.management.failed_events`) and Chatwoot's Retry button
(:mod:`app.relay.outbound.retry`) both put an event back to ``pending`` here. The reset is a
single conditional ``UPDATE``: only rows still matching ``condition`` (e.g. ``status =
'failed'``) change, so when two replays of one event race (two retry calls, a Retry webhook
delivered twice), the database lets exactly one of them through and the event is sent once.
"""

from __future__ import annotations

from typing import Any

import peewee

from app.store.models import EVENT_PENDING, RETRYING_PREFIX, RelayEvent


def back_to_pending(condition: Any, **fields: Any) -> int:
    """The events matching ``condition`` pending again, unclaimed, with no backoff; returns
    how many changed (0 when another replay got there first).

    ``attempts`` restarts at 1, not 0: the lane then delivers the event *interrupted* (looks
    before posting again); ``progress`` stays (the parts of a reply already sent are not sent
    again) unless ``fields`` says otherwise. ``last_error`` keeps the old reason behind
    ``retrying: `` until the outcome replaces it; ``updated_at`` moves with the update (the
    model sees to it). ``fields`` are written too (e.g. ``progress=0``)."""
    reason = peewee.Value(RETRYING_PREFIX).concat(RelayEvent.last_error)
    changes: dict[str, Any] = {
        "status": EVENT_PENDING,
        "attempts": 1,
        "in_flight": True,
        "sending": False,
        "unconfirmed": False,
        "claim_token": None,
        "claimed_until": None,
        "next_attempt_at": None,
        "delivered_at": None,
        "last_error": reason,
        **fields,
    }
    changed: int = RelayEvent.update(**changes).where(condition).execute()
    return changed
