"""Chatwoot integration lifecycle: record a ``set``, wait for provisioning, pause, resume,
delete, and the relay counters ``list`` shows."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import peewee

from app.management import provisioning
from app.management.lookup_cache import bump_config_version
from app.management.provisioning import IntegrationRequest, ProvisioningFailure
from app.store.counters import DIRECTIONS, counters_of, last_bumped_at
from app.store.db import database
from app.store.ids import new_id, new_token
from app.store.models import (
    EVENT_FAILED,
    EVENT_PENDING,
    STATE_ACTIVE,
    STATE_ERROR,
    STATE_PROVISIONING,
    ChatwootIntegration,
    Instance,
    RelayEvent,
    utcnow,
)

logger = logging.getLogger(__name__)


def save_request(
    instance: Instance, request: IntegrationRequest
) -> tuple[ChatwootIntegration, int]:
    """Store the configuration of a ``set`` and claim the next provisioning generation.

    A repeat ``set`` keeps the integration id, webhook secret and stored inbox id, so the
    worker updates the inbox it made before instead of creating another.
    """
    with database.atomic():
        integration = ChatwootIntegration.get_or_none(ChatwootIntegration.instance == instance)
        created = integration is None
        if integration is None:
            integration = ChatwootIntegration(id=new_id("int"), instance=instance)
            integration.set_secret("webhook_secret", new_token())
            integration.state = STATE_PROVISIONING
        _apply_request(integration, request)
        integration.paused = False
        integration.save(force_insert=created)
        ChatwootIntegration.update(
            provision_requested=ChatwootIntegration.provision_requested + 1
        ).where(ChatwootIntegration.id == integration.id).execute()
        generation = int(
            ChatwootIntegration.select(ChatwootIntegration.provision_requested)
            .where(ChatwootIntegration.id == integration.id)
            .scalar()
        )
    bump_config_version()
    return integration, generation


def record_failure(
    integration_id: str, generation: int, failure: ProvisioningFailure
) -> ChatwootIntegration | None:
    """Settle ``generation`` as failed without a job; returns the updated integration."""
    provisioning.record_failure(integration_id, generation, failure)
    return reload(integration_id)


def _apply_request(integration: ChatwootIntegration, request: IntegrationRequest) -> None:
    integration.chatwoot_base_url = request.base_url
    integration.chatwoot_account_id = request.account_id
    integration.set_secret("chatwoot_api_token", request.api_token)
    integration.chatwoot_inbox_name = request.inbox_name
    integration.sign_messages = request.sign_messages
    integration.ignore_groups = request.ignore_groups
    integration.start_as_pending = request.start_as_pending
    integration.reopen_resolved = request.reopen_resolved
    integration.mark_read = request.mark_read


def reload(integration_id: str) -> ChatwootIntegration | None:
    found: ChatwootIntegration | None = ChatwootIntegration.get_or_none(
        ChatwootIntegration.id == integration_id
    )
    return found


def settled(integration_id: str, generation: int) -> tuple[bool, ChatwootIntegration | None]:
    """Whether the job for ``generation`` has recorded its outcome, with the current row.

    A deleted integration counts as settled (there is nothing left to wait for).
    """
    integration = reload(integration_id)
    if integration is None:
        return True, None
    return integration.provision_completed >= generation, integration


def set_paused(integration: ChatwootIntegration, paused: bool) -> ChatwootIntegration:
    """Pause, or resume. Resuming an integration that the relay turned ``error`` (credentials
    refused, inbox gone) makes it ``active`` again so that its held events are retried; if the
    cause persists, the relay finds out again. One that never got an inbox stays ``error``."""
    fields: dict[str, object] = {"paused": paused, "updated_at": utcnow()}
    if not paused and integration.state == STATE_ERROR and integration.chatwoot_inbox_id:
        fields.update(state=STATE_ACTIVE, last_error="", last_error_http_status=None)
    with database.atomic():
        ChatwootIntegration.update(**fields).where(
            ChatwootIntegration.id == integration.id
        ).execute()
    bump_config_version()
    for name, value in fields.items():
        setattr(integration, name, value)
    logger.info("integration %s %s", integration.id, "paused" if paused else "resumed")
    return integration


def delete_integration(integration: ChatwootIntegration) -> int:
    """Remove the integration (Chatwoot data stays); returns the pending events dropped."""
    with database.atomic():
        dropped = pending_events(ChatwootIntegration.id == integration.id)
        RelayEvent.delete().where(RelayEvent.integration == integration.id).execute()
        integration.delete_instance()
    bump_config_version()
    logger.info("integration %s deleted; %d pending relay events dropped", integration.id, dropped)
    return dropped


def pending_events(integration_filter: peewee.Expression) -> int:
    return int(
        RelayEvent.select()
        .join(ChatwootIntegration)
        .where(integration_filter & (RelayEvent.status == EVENT_PENDING))
        .count()
    )


@dataclass(frozen=True)
class RelayCounters:
    pending: int
    delivered: int
    failed: int
    last_delivered_at: str | None


def relay_counters(integration: ChatwootIntegration) -> RelayCounters:
    """What ``list`` shows, without counting over the integration's history.

    ``delivered`` and ``last_delivered_at`` come from the ``relayed`` counters (bumped in the
    transaction that records a delivery). ``pending`` and ``failed`` are what is in the store
    *now*: counts over the index ``(integration, status, id)``, which read only the pending or
    failed rows (the backlog, and failures kept until retried or deleted), never delivered ones.
    Counters could not give ``failed``: a deleted failed event moves no counter.
    """
    counted = counters_of(str(integration.id))
    delivered = sum(counted[(direction, "relayed")] for direction in DIRECTIONS)
    last = last_bumped_at(str(integration.id), "relayed") if delivered else None
    return RelayCounters(
        pending=_count_with_status(integration, EVENT_PENDING),
        delivered=delivered,
        failed=_count_with_status(integration, EVENT_FAILED),
        last_delivered_at=rfc3339(last) if last is not None else None,
    )


def count_with_status_query(integration_id: str, status: str) -> Any:
    """The integration's events in ``status``, counted over the ``(integration, status, id)``
    index (an index-only range on SQLite and PostgreSQL)."""
    return RelayEvent.select(peewee.fn.COUNT(RelayEvent.id)).where(
        (RelayEvent.integration == integration_id) & (RelayEvent.status == status)
    )


def _count_with_status(integration: ChatwootIntegration, status: str) -> int:
    return int(count_with_status_query(str(integration.id), status).scalar() or 0)


def rfc3339(value: object) -> str:
    """Format a stored UTC timestamp as ``2026-04-20T10:15:30Z``.

    Aggregates (``MAX``) come back from SQLite as text, so strings are parsed first.
    """
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise TypeError(f"not a timestamp: {type(value).__name__}")
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")
