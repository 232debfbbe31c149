"""Fenced delivery (DESIGN invariant 10): who may deliver an event is decided by the database.

A drain owns the events it claimed: ``claim_token`` (its lane lock token, which names the
worker process) and a lease, ``claimed_until``. Every claim is a compare-and-set: an event is
taken only if it is unclaimed, or if its owner — exactly the token the drain read — is
provably gone (:func:`app.relay.lanes.liveness.owner_gone`), or if its lease has run out. A
drain posts only while its lease has at least half of its length left (:data:`lease_seconds`
is twice what one event's delivery may take); below that it renews the lease of every event
it holds in one write (:func:`renew`) before the next post. Every outcome is written only
where the claim is still its own. A write that finds the claim gone raises
:class:`ClaimLost`: someone else owns the lane now, and this drain stops.

``in_flight`` keeps its old meaning: the event was claimed, so an attempt may have reached the
remote side; a drain that takes an event over from another owner delivers it ``interrupted``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from peewee import Case

from app.config import get_settings
from app.relay.lanes.liveness import owner_gone
from app.store.models import EVENT_PENDING, RelayEvent, utcnow
from app.store.prepared import update_where


class ClaimLost(Exception):
    """Another drain owns the event now; this one must not post or record anything for it."""

    def __init__(self, event_id: int) -> None:
        super().__init__(f"event {event_id} is claimed by another worker")
        self.event_id = event_id


def lock_seconds() -> float:
    """How long a lane stays locked in Redis without its holder renewing it: long enough for
    one remote call's worst case (every in-call attempt timing out)."""
    settings = get_settings()
    return settings.remote_timeout_seconds * (settings.remote_retry_attempts + 1) + 10


def call_seconds() -> float:
    """One remote call's worst case: every in-call attempt timing out, with the waits between."""
    settings = get_settings()
    attempts = settings.remote_retry_attempts + 1
    return settings.remote_timeout_seconds * attempts + settings.remote_retry_max_wait * (
        attempts - 1
    )


def lease_seconds() -> float:
    """How long a claim holds without being renewed. A drain renews it whenever less than half
    is left, so the half covers one event's delivery (two remote calls' worst case); it lets
    events held by a live but stuck owner go, while a dead owner's are taken over as soon as
    it stops beating."""
    return 4 * call_seconds()


def lease_end() -> dt.datetime:
    return utcnow() + dt.timedelta(seconds=lease_seconds())


def claimable_prefix(batch: Sequence[RelayEvent], own_token: str) -> list[RelayEvent]:
    """The leading events of ``batch`` (a lane's oldest pending events) that ``own_token`` may
    claim: unclaimed, its own already, of an owner that is gone, or with an expired lease.
    Stops at the first event that a live owner holds, so a lane is never delivered by two
    drains at once."""
    now = utcnow()
    verdicts: dict[str, bool] = {own_token: True}
    prefix: list[RelayEvent] = []
    for row in batch:
        token = row.claim_token
        if token is not None and not _expired(row, now):
            if token not in verdicts:
                verdicts[token] = owner_gone(str(token))
            if not verdicts[token]:
                break
        prefix.append(row)
    return prefix


def _expired(row: RelayEvent, now: dt.datetime) -> bool:
    return row.claimed_until is not None and row.claimed_until < now


def claim(rows: Sequence[RelayEvent], token: str) -> int:
    """Compare-and-set: take each row only if it is still as read (unclaimed, or held by the
    very token judged gone, or with its lease still expired). Returns how many were taken."""
    if not rows:
        return 0
    now = utcnow()
    unclaimed = [row.id for row in rows if row.claim_token is None]
    expired = [row.id for row in rows if row.claim_token is not None and _expired(row, now)]
    stale = [row for row in rows if row.claim_token is not None and not _expired(row, now)]
    condition = RelayEvent.id.in_(unclaimed) & RelayEvent.claim_token.is_null()
    if expired:
        condition |= RelayEvent.id.in_(expired) & (RelayEvent.claimed_until < now)
    for previous in {str(row.claim_token) for row in stale}:
        ids = [row.id for row in stale if row.claim_token == previous]
        condition |= RelayEvent.id.in_(ids) & (RelayEvent.claim_token == previous)
    until = lease_end()
    taken: int = (
        RelayEvent.update(claim_token=token, claimed_until=until, in_flight=True)
        .where((RelayEvent.status == EVENT_PENDING) & condition)
        .execute()
    )
    return taken


def renew(token: str, ids: Sequence[int]) -> None:
    """Renew the lease of the events ``ids`` this drain holds, in one write; :class:`ClaimLost`
    when any of them is no longer its own."""
    if not ids:
        return
    renewed = (
        RelayEvent.update(claimed_until=lease_end())
        .where(
            RelayEvent.id.in_(list(ids))
            & (RelayEvent.claim_token == token)
            & (RelayEvent.status == EVENT_PENDING)
        )
        .execute()
    )
    if renewed < len(ids):
        raise ClaimLost(min(ids))


def reassert(row: RelayEvent, **fields: Any) -> None:
    """Right before a remote post: the claim is still ours (its lease renewed, ``fields``
    written with it), or :class:`ClaimLost`."""
    update_owned(row, claimed_until=lease_end(), **fields)


def update_owned(row: RelayEvent, **fields: Any) -> None:
    """Write ``fields`` (plain values) on ``row`` only while this drain owns it; else
    :class:`ClaimLost`. Runs for every part sent: its SQL is built once
    (:func:`app.store.prepared.update_where`)."""
    owned: dict[str, Any] = {"id": row.id, "claim_token": row.claim_token, "status": EVENT_PENDING}
    if update_where(RelayEvent, fields, **owned) == 0:
        raise ClaimLost(row.id)


def released() -> dict[str, Any]:
    """The fields that end a claim (with an outcome written by :func:`update_owned`)."""
    return {"claim_token": None, "claimed_until": None, "in_flight": False}


def release(token: str, untouched: Sequence[int]) -> None:
    """Give up every event ``token`` still holds. Those never attempted and claimed fresh
    (``untouched``) are as if never claimed; the others keep ``in_flight`` (an attempt may
    have reached the remote side, or a previous owner's did)."""
    in_flight: Any = RelayEvent.in_flight
    if untouched:
        in_flight = Case(None, [(RelayEvent.id.in_(list(untouched)), False)], RelayEvent.in_flight)
    RelayEvent.update(claim_token=None, claimed_until=None, in_flight=in_flight).where(
        (RelayEvent.claim_token == token) & (RelayEvent.status == EVENT_PENDING)
    ).execute()
