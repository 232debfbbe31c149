"""Actor: provision (or re-provision) a Chatwoot integration."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq

from app import jobs
from app.logs import log_context
from app.management import provisioning as service
from app.store.db import thread_connection
from workers.relay import replay_integration
from workers.templates import sync_templates

logger = logging.getLogger(__name__)

MAX_RETRIES = 5


@dramatiq.actor(
    actor_name=jobs.PROVISION,
    queue_name=jobs.PROVISIONING_QUEUE,
    max_retries=MAX_RETRIES,
    min_backoff=2_000,
    time_limit=120_000,
    on_retry_exhausted=jobs.PROVISION_GAVE_UP,
)
def provision(integration_id: str, generation: int) -> None:
    """Run provisioning for ``integration_id`` if ``generation`` is still the latest request.

    Chatwoot's answers are classified by the service and recorded on the integration; only
    unexpected failures (database down, bugs) raise, and Dramatiq retries those with backoff.
    When the last retry fails too, Dramatiq sends the message to :func:`provision_gave_up`.
    """
    with thread_connection(), log_context(integration_id=integration_id):
        activated = service.provision(integration_id, generation)
    if activated:
        replay_integration.send(integration_id)
        sync_templates.send(integration_id)  # skipped at once without a business account id


@dramatiq.actor(actor_name=jobs.PROVISION_GAVE_UP, queue_name=jobs.PROVISIONING_QUEUE)
def provision_gave_up(message: dict[str, Any], retry_info: dict[str, Any]) -> None:
    """Every retry of a provisioning job failed: record it, so that ``set`` never waits forever
    and ``list`` shows why (the exception's name, from the traceback Dramatiq kept)."""
    integration_id, generation = message["args"]
    error = _exception_name(str(message.get("options", {}).get("traceback", "")))
    with thread_connection(), log_context(integration_id=integration_id):
        logger.error(
            "provisioning %s#%s failed for good after %s retries: %s",
            integration_id,
            generation,
            retry_info.get("retries"),
            error,
        )
        service.record_internal_failure(integration_id, int(generation), error)


def _exception_name(traceback_text: str) -> str:
    """``OperationalError`` from the last line of a traceback (``peewee.OperationalError: …``)."""
    last = traceback_text.strip().rsplit("\n", 1)[-1]
    name = last.split(":", 1)[0].rsplit(".", 1)[-1].strip()
    return name if name.isidentifier() else "error"
