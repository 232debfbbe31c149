"""Retention: a delivered event's message content is erased ``RETENTION_DAYS`` after delivery.

What stays of an erased event: its row (id, natural key, chat key, direction, kind, status,
attempts, timestamps), so a redelivered webhook is still recognised (idempotency), counters and
the failed list are unchanged, and a status can still be matched to its message. What goes: the
payload, replaced by a *stub* that is still a valid event of its type (the relay could read it)
but holds no text, caption, media URL or id, name, location, shared contact, sender or alias:
only the message id, its kind and direction, and the chat key the row already has.

Which events:

* ``delivered`` events whose ``delivered_at`` is older than the retention. A delivered event is
  final: nothing reads its payload again (the lanes read ``pending`` events only, replay and the
  failed list read ``failed`` ones, and the failed list never reads the payload).
* ``waiting`` statuses (a tick for a message we never saw) stored longer ago than the retention.
  Their stub keeps what applying the tick needs (message id, status, error code and WhatsApp's
  error title; the recipient becomes the chat key), so if their message still appears they are
  woken and applied as before.
* ``failed`` and ``pending`` events are never touched: they are kept until relayed, retried or
  deleted with their integration.

Other tables hold no message content: ``message_map`` holds ids and the last tick, ``chat_link``
and ``chat_alias`` the chat's identifiers (needed for as long as the chat exists).

Gone from disk, not only from the column: SQLite runs with ``secure_delete`` (app/store/db.py),
so the old cells are zeroed, and the WAL is checkpointed and truncated after a purge, so the old
page images are in neither file. PostgreSQL keeps an updated row's old version as a dead tuple
until ``VACUUM``, which runs after a purge; the bytes of vacuumed tuples stay in the table's free
space until it is reused (``VACUUM FULL`` rewrites the table, under an exclusive lock, if that
matters more than availability).

Each batch (``PURGE_BATCH`` rows) is one short transaction, so a purge never holds the writer
for long; batches are read through the partial index ``relayevent_retention``, which holds only
events whose content is still there.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import peewee

from app.relay.messages import InboundMessage, StatusUpdate
from app.relay.outbound.chatwoot_webhook import AgentReply
from app.store.db import database
from app.store.models import EVENT_DELIVERED, EVENT_WAITING, RelayEvent, utcnow

logger = logging.getLogger(__name__)

PURGE_BATCH = 1_000
UNKNOWN_STUB = json.dumps({"type": "unknown"})


@dataclass(frozen=True)
class PurgeResult:
    """What one purge erased, and how the erased bytes were removed from disk."""

    delivered: int
    waiting: int
    reclaimed: str  # "wal checkpointed", "vacuumed", … or "nothing to reclaim"

    def summary(self) -> str:
        return (
            f"erased the content of {self.delivered} delivered events and {self.waiting} "
            f"waiting statuses; {self.reclaimed}"
        )


def delivered_due(cutoff: dt.datetime) -> Any:
    """Delivered events with content, delivered at or before ``cutoff`` (index
    ``relayevent_retention``: ``status = ?`` and a range on ``delivered_at``)."""
    return _due((RelayEvent.status == EVENT_DELIVERED) & (RelayEvent.delivered_at <= cutoff))


def waiting_due(cutoff: dt.datetime) -> Any:
    """Waiting statuses with content, stored at or before ``cutoff`` (index
    ``relayevent_retention``: ``status = ?``, ``created_at`` filtered)."""
    return _due((RelayEvent.status == EVENT_WAITING) & (RelayEvent.created_at <= cutoff))


def _due(condition: Any) -> Any:
    return RelayEvent.select(
        RelayEvent.id, RelayEvent.status, RelayEvent.chat_key, RelayEvent.payload
    ).where(condition & RelayEvent.content_erased_at.is_null())


def content_stub(payload: str, chat_key: str) -> str:
    """The payload with its content erased: still a valid event of its type (``message``,
    ``status`` or ``agent_reply``), holding only ids, kind, direction and ``chat_key``."""
    try:
        data = json.loads(payload)
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "message":
            return _message_stub(data, chat_key)
        if kind == "status":
            return _status_stub(data, chat_key)
        if kind == "agent_reply":
            return _reply_stub(data, chat_key)
    except (ValueError, KeyError, TypeError):
        pass  # not a payload we wrote: nothing of it is kept
    return UNKNOWN_STUB


def _message_stub(data: dict[str, Any], chat_key: str) -> str:
    return InboundMessage(
        message_id=str(data["message_id"]),
        chat_id=chat_key,
        sender_id="",
        kind=data["kind"],
        direction=data.get("direction", "incoming"),
        is_group=bool(data.get("is_group", False)),
    ).to_json()


def _status_stub(data: dict[str, Any], chat_key: str) -> str:
    code = data.get("error_code")
    title = data.get("error_title")
    return StatusUpdate(
        message_id=str(data["message_id"]),
        status=data["status"],
        recipient_id=chat_key,
        error_code=code if isinstance(code, int) else None,
        error_title=title if isinstance(title, str) else None,
    ).to_json()


def _reply_stub(data: dict[str, Any], chat_key: str) -> str:
    return AgentReply(
        chatwoot_message_id=int(data["chatwoot_message_id"]),
        conversation_id=int(data["conversation_id"]),
        recipient=chat_key,
        message_type=str(data.get("message_type", "outgoing")),
    ).to_json()


def purge(
    retention_days: int,
    batch_size: int = PURGE_BATCH,
    now: dt.datetime | None = None,
    keep_alive: Callable[[], object] | None = None,
) -> PurgeResult:
    """Erase the content of the events older than ``retention_days`` (``0``: every delivered
    event so far), batch by batch, then remove the erased bytes from disk.

    ``keep_alive`` is called after each batch (the workers extend their purge lock with it).
    """
    if retention_days < 0:
        raise ValueError("retention_days must be 0 or more")
    cutoff = (now or utcnow()) - dt.timedelta(days=retention_days)
    delivered = _erase_all(lambda: delivered_due(cutoff), batch_size, keep_alive)
    waiting = _erase_all(lambda: waiting_due(cutoff), batch_size, keep_alive)
    reclaimed = reclaim_space() if delivered or waiting else "nothing to reclaim"
    result = PurgeResult(delivered, waiting, reclaimed)
    logger.info("retention purge (%d days): %s", retention_days, result.summary())
    return result


def _erase_all(query: Callable[[], Any], batch_size: int, keep_alive: Any) -> int:
    total = 0
    while True:
        seen, erased = _erase_batch(query(), batch_size)
        total += erased
        if keep_alive is not None:
            keep_alive()
        if seen < batch_size or erased == 0:
            return total


def _erase_batch(query: Any, batch_size: int) -> tuple[int, int]:
    """One transaction: read up to ``batch_size`` due rows, replace each payload by its stub.

    Each update repeats the row's status and ``content_erased_at IS NULL``, so a waiting status
    woken meanwhile (now pending) keeps its content; ``updated_at`` is left as it was (erasing
    is not something that happened to the event)."""
    erased = 0
    with database.atomic():
        rows = cast("Iterable[tuple[int, str, str, str]]", query.limit(batch_size).tuples())
        batch = list(rows)
        at = utcnow()
        for event_id, status, chat_key, payload in batch:
            erased += (
                RelayEvent.update(
                    payload=content_stub(payload, chat_key),
                    content_erased_at=at,
                    updated_at=RelayEvent.updated_at,
                )
                .where(
                    (RelayEvent.id == event_id)
                    & (RelayEvent.status == status)
                    & RelayEvent.content_erased_at.is_null()
                )
                .execute()
            )
    return len(batch), erased


def reclaim_space() -> str:
    """Remove erased bytes from the database files (outside any transaction).

    SQLite: checkpoint the WAL into the database and truncate it (``secure_delete`` already
    zeroed the old cells). PostgreSQL: ``VACUUM relay_event`` (the dead tuples' space is
    marked reusable; their bytes stay until it is reused).
    """
    if database.in_transaction():
        raise RuntimeError("reclaim_space must run outside a transaction")
    engine = database.obj
    if isinstance(engine, peewee.SqliteDatabase):
        busy, _, _ = database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            logger.warning("WAL checkpoint blocked by readers; erased bytes leave at the next")
            return "wal checkpoint incomplete (busy)"
        return "wal checkpointed"
    if isinstance(engine, peewee.PostgresqlDatabase):
        database.execute_sql(f"VACUUM {RelayEvent._meta.table_name}")
        return "vacuumed"
    return "nothing to reclaim"
