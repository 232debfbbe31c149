"""Message templates in Chatwoot's picker: one integration's sync, and what triggers it.

A sync (:func:`sync_integration`) reads the instance's WhatsApp Business Account templates
from Graph (``app.integrations.whatsapp.templates``), keeps the usable ones, and writes them
into the integration's API inbox as ``channel.additional_attributes.message_templates``, with
``agent_reply_time_window: 24`` (Chatwoot's ``Conversations::MessageWindowService`` then closes
free text 24 hours after the customer's last message, and its picker offers the templates:
``getWhatsAppTemplates`` reads an API inbox's ``additional_attributes.message_templates``).

Chatwoot replaces the channel's whole ``additional_attributes`` on update, so the inbox is read
first and every other key it holds is written back unchanged; nothing is written when nothing
changed. What was synced is recorded on the integration (``templates_synced_at``, an index of
the templates for the relay's "unknown template" check, ``templates_error``).

A failed sync never touches relaying: the integration keeps its status (a token that may send
messages often lacks the ``whatsapp_business_management`` permission the template list needs),
the reason goes to ``templates_error`` and the log (never a token), and a transient failure
raises :class:`SyncRetryLater` for the job to try again.

Triggers: ``set`` (after provisioning succeeds), every :data:`SYNC_INTERVAL_SECONDS` (one worker
process at a time, :mod:`workers.templates`), and Meta's ``message_template_status_update``
webhook, debounced per instance and business account (:func:`request_sync`): the first update
arms a Redis key and a delayed job; the job clears the key before it reads, so an update that
arrives while it runs arms the next one, and a burst costs one sync.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from app import jobs
from app.config import Settings, get_settings
from app.integrations.chatwoot import ChatwootClient
from app.integrations.errors import RemoteError, is_transient
from app.integrations.http import shared_client
from app.integrations.whatsapp.cloud_template import TemplateSpec
from app.integrations.whatsapp.templates import (
    TemplateClient,
    TemplateFetchError,
    TemplateList,
    describe_unusable,
    usable_templates,
)
from app.relay.clients import client_for
from app.store.models import (
    PROVIDER_CLOUD,
    STATE_PROVISIONING,
    ChatwootIntegration,
    Instance,
    utcnow,
)
from app.store.redis_client import get_redis, redis_key

logger = logging.getLogger(__name__)

SYNC_INTERVAL_SECONDS = 3 * 3600.0
AGENT_REPLY_TIME_WINDOW = 24  # hours: WhatsApp's customer service window
PENDING_SECONDS = 600  # a webhook-armed sync whose job got lost is re-armable after this
LOCK_SECONDS = 300


class SyncRetryLater(Exception):
    """The sync failed for a reason that may pass (Meta or Chatwoot unavailable)."""


@dataclass(frozen=True)
class SyncResult:
    """``synced`` (written), ``unchanged`` (nothing to write), ``skipped`` (nothing to sync:
    no business account id, no inbox yet, a gateway instance) or ``failed``."""

    outcome: str
    templates: int = 0
    reason: str = ""


# --- one sync -----------------------------------------------------------------------------------


def sync_integration(integration_id: str, settings: Settings | None = None) -> SyncResult:
    """Sync the integration's templates into its inbox (see the module doc). Raises
    :class:`SyncRetryLater` on a transient failure, after recording it."""
    settings = settings or get_settings()
    with _sync_lock(integration_id):
        found = _load(integration_id)
        if isinstance(found, SyncResult):
            return found
        integration, instance = found
        try:
            listed = _template_client(instance, settings).fetch(
                str(instance.cloud_business_account_id)
            )
        except TemplateFetchError as exc:
            return _failed(
                integration_id, f"reading WhatsApp templates: {exc.reason}", exc.transient
            )
        usable = usable_templates(listed.templates)
        _log_left_out(integration_id, listed)
        try:
            changed = _write_inbox(client_for(integration, settings), integration, usable)
        except RemoteError as exc:
            return _failed(
                integration_id, f"writing templates to Chatwoot: {exc}", is_transient(exc)
            )
        _record_synced(integration_id, usable, listed.complete)
        outcome = "synced" if changed else "unchanged"
        logger.info("templates of %s %s: %d usable", integration_id, outcome, len(usable))
        return SyncResult(outcome, len(usable))


def _load(integration_id: str) -> tuple[ChatwootIntegration, Instance] | SyncResult:
    integration: ChatwootIntegration | None = (
        ChatwootIntegration.select(ChatwootIntegration, Instance)
        .join(Instance)
        .where(ChatwootIntegration.id == integration_id)
        .first()
    )
    if integration is None:
        return SyncResult("skipped", reason="the integration was deleted")
    instance: Instance = integration.instance
    if instance.provider != PROVIDER_CLOUD or not instance.cloud_business_account_id:
        return SyncResult("skipped", reason="no WhatsApp Business Account id")
    if integration.chatwoot_inbox_id is None or integration.state == STATE_PROVISIONING:
        return SyncResult("skipped", reason="the inbox is not provisioned yet")
    return integration, instance


def _template_client(instance: Instance, settings: Settings) -> TemplateClient:
    token = instance.get_secret("cloud_access_token")
    assert token is not None and instance.cloud_api_base_url is not None
    return TemplateClient(
        instance.cloud_api_base_url,
        token,
        http=shared_client(allow_private=settings.allow_private_urls),
        retry_attempts=settings.remote_retry_attempts,
        retry_max_wait=settings.remote_retry_max_wait,
        timeout=settings.remote_timeout_seconds,
    )


def _write_inbox(
    client: ChatwootClient, integration: ChatwootIntegration, usable: list[dict[str, Any]]
) -> bool:
    """Merge the templates into the inbox's ``additional_attributes``; False when they were
    there already (nothing written)."""
    inbox_id = integration.chatwoot_inbox_id
    assert inbox_id is not None  # checked by _load
    current = client.get_inbox(inbox_id).get("additional_attributes")
    attributes = dict(current) if isinstance(current, dict) else {}
    wanted = {
        **attributes,
        "message_templates": usable,
        "agent_reply_time_window": AGENT_REPLY_TIME_WINDOW,
    }
    if wanted == attributes:
        return False
    client.set_inbox_additional_attributes(inbox_id, wanted)
    return True


def _record_synced(integration_id: str, usable: list[dict[str, Any]], complete: bool) -> None:
    index = {"complete": complete, "templates": [TemplateSpec.of(t).to_dict() for t in usable]}
    ChatwootIntegration.update(
        templates_synced_at=utcnow(),
        templates_index=json.dumps(index, separators=(",", ":")),
        templates_error="",
    ).where(ChatwootIntegration.id == integration_id).execute()


def _failed(integration_id: str, reason: str, transient: bool) -> SyncResult:
    """Record why the sync failed; relaying is untouched. Transient: raise for a retry."""
    logger.warning("template sync of %s failed: %s", integration_id, reason)
    ChatwootIntegration.update(templates_error=reason).where(
        ChatwootIntegration.id == integration_id
    ).execute()
    if transient:
        raise SyncRetryLater(reason)
    return SyncResult("failed", reason=reason)


def _log_left_out(integration_id: str, listed: TemplateList) -> None:
    if not listed.complete:
        logger.warning(
            "templates of %s: more than %d pages; the rest is not synced",
            integration_id,
            len(listed.templates),
        )
    notes = describe_unusable(listed.templates)
    if notes:
        logger.info("templates of %s not offered: %s", integration_id, "; ".join(notes))


@contextmanager
def _sync_lock(integration_id: str) -> Iterator[None]:
    """One sync of an integration at a time, across every worker process: the inbox is read,
    merged and written back, which two syncs at once could interleave."""
    lock = get_redis().lock(redis_key("templates", "sync", integration_id), timeout=LOCK_SECONDS)
    if not lock.acquire(blocking=True, blocking_timeout=LOCK_SECONDS):
        raise SyncRetryLater(f"another template sync of {integration_id} is still running")
    try:
        yield
    finally:
        lock.release()


# --- what to sync -------------------------------------------------------------------------------


def _syncable() -> Any:
    return (
        ChatwootIntegration.select(ChatwootIntegration.id)
        .join(Instance)
        .where(
            (Instance.provider == PROVIDER_CLOUD)
            & Instance.cloud_business_account_id.is_null(False)
            & ChatwootIntegration.chatwoot_inbox_id.is_null(False)
        )
        .order_by(ChatwootIntegration.id)
    )


def integrations_to_sync() -> list[str]:
    """Every integration whose templates are synced (the periodic sync)."""
    return [str(row.id) for row in _syncable()]


def integrations_of_business_account(instance_id: str, business_account_id: str) -> list[str]:
    """The integrations of the business account, among the instances of the account the
    webhook's instance belongs to (a webhook reaches only its own account's data)."""
    account = Instance.select(Instance.account).where(Instance.id == instance_id)
    query = _syncable().where(
        (Instance.account.in_(account))
        & (Instance.cloud_business_account_id == business_account_id)
    )
    return [str(row.id) for row in query]


# --- the webhook trigger, debounced ---------------------------------------------------------------


def pending_key(instance_id: str, business_account_id: str) -> str:
    return redis_key("templates", "pending", instance_id, business_account_id)


def request_sync(instance_id: str, business_account_ids: list[str], delay_seconds: float) -> int:
    """Arm one delayed ``templates_changed`` job per business account unless one is armed
    already; returns how many were armed. Blocking Redis calls (the web process runs this in
    its thread pool); raises ``RedisError``/``OSError`` when Redis is unreachable."""
    client = get_redis()
    armed = 0
    for business_account_id in business_account_ids:
        key = pending_key(instance_id, business_account_id)
        if not client.set(key, "1", nx=True, ex=PENDING_SECONDS):
            continue
        try:
            jobs.enqueue_later(
                jobs.TEMPLATES_CHANGED, delay_seconds, instance_id, business_account_id
            )
        except BaseException:
            client.delete(key)  # let the next update try again
            raise
        armed += 1
    return armed


def take_pending(instance_id: str, business_account_id: str) -> None:
    """The armed job runs: updates from now on arm the next one."""
    get_redis().delete(pending_key(instance_id, business_account_id))
