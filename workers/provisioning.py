"""Actor: provision (or re-provision) a Chatwoot integration."""

from __future__ import annotations

import logging

import dramatiq
from dramatiq.middleware import CurrentMessage

from app import jobs
from app.logs import log_context
from app.management import provisioning as service
from app.store.db import thread_connection
from workers.relay import replay_integration

logger = logging.getLogger(__name__)

MAX_RETRIES = 5


def _is_last_attempt() -> bool:
    message = CurrentMessage.get_current_message()
    return message is None or int(message.options.get("retries", 0)) >= MAX_RETRIES


@dramatiq.actor(
    actor_name=jobs.PROVISION,
    queue_name=jobs.PROVISIONING_QUEUE,
    max_retries=MAX_RETRIES,
    min_backoff=2_000,
    time_limit=120_000,
)
def provision(integration_id: str, generation: int) -> None:
    """Run provisioning for ``integration_id`` if ``generation`` is still the latest request.

    Chatwoot's answers are classified by the service and recorded on the integration; only
    unexpected failures (database down, bugs) raise, and Dramatiq retries those with backoff.
    When the last retry fails too, the failure is recorded so that nobody waits forever.
    """
    with thread_connection(), log_context(integration_id=integration_id):
        try:
            activated = service.provision(integration_id, generation)
        except Exception as exc:
            if _is_last_attempt():
                logger.exception("provisioning %s#%s failed for good", integration_id, generation)
                service.record_internal_failure(integration_id, generation, exc)
            raise
    if activated:
        replay_integration.send(integration_id)
