"""Starting provisioning from a request and waiting (bounded) for the worker's outcome.

Shared by ``POST /api/chatwoot/set`` and the inline activation of ``POST /api/instance/new``.
The web process never calls Chatwoot here: it stores the request, enqueues the job after the
commit, and watches the integration row.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import anyio

from app.api.common import in_db
from app.api.queue import QUEUE_ERRORS, enqueue_provision
from app.config import Settings
from app.management import integrations
from app.management.provisioning import IntegrationRequest, ProvisioningFailure
from app.store.models import STATE_ACTIVE, ChatwootIntegration, Instance

logger = logging.getLogger(__name__)

QUEUE_DOWN = ProvisioningFailure(503, "provisioning queue unavailable — try again shortly")


@dataclass(frozen=True)
class Activation:
    """Where an activation stands when the request stops waiting."""

    integration: ChatwootIntegration
    settled: bool

    @property
    def active(self) -> bool:
        return self.settled and self.integration.state == STATE_ACTIVE

    @property
    def failure(self) -> ProvisioningFailure | None:
        if not self.settled or self.integration.state == STATE_ACTIVE:
            return None
        return ProvisioningFailure(
            self.integration.last_error_http_status or 502, self.integration.last_error
        )


async def activate(
    settings: Settings, instance: Instance, request: IntegrationRequest
) -> Activation:
    integration, generation = await in_db(integrations.save_request, instance, request)
    return await start(settings, integration, generation)


async def start(
    settings: Settings, integration: ChatwootIntegration, generation: int
) -> Activation:
    """Enqueue the job for a saved request and wait (bounded) for its outcome."""
    try:
        await enqueue_provision(integration.id, generation)
    except QUEUE_ERRORS as exc:
        logger.error("could not enqueue provisioning of %s: %s", integration.id, type(exc).__name__)
        rejected = await in_db(integrations.record_failure, integration.id, generation, QUEUE_DOWN)
        return Activation(rejected or integration, settled=True)
    return await wait_for(integration, generation, settings.set_wait_seconds)


async def wait_for(integration: ChatwootIntegration, generation: int, timeout: float) -> Activation:
    deadline = time.monotonic() + timeout
    pause = 0.02
    latest = integration
    while True:
        done, current = await in_db(integrations.settled, integration.id, generation)
        latest = current or latest
        if done:
            return Activation(latest, settled=current is not None)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Activation(latest, settled=False)
        await anyio.sleep(min(pause, remaining))
        pause = min(pause * 1.5, 0.25)
