"""A Cloud webhook reported that message templates changed: ask the workers to sync them again
(debounced, :func:`app.management.templates.request_sync`). Never a reason to refuse the
webhook: when Redis is unreachable the periodic sync catches up."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from app.api.common import settings_of
from app.management import templates
from app.management.lookup_cache import WebhookInstance

logger = logging.getLogger(__name__)


async def request_template_sync(
    request: Request, instance: WebhookInstance, business_account_ids: list[str]
) -> None:
    delay = settings_of(request).template_sync_debounce_seconds
    try:
        armed = await run_in_threadpool(
            templates.request_sync, instance.id, business_account_ids, delay
        )
    except (RedisError, OSError) as exc:
        logger.warning(
            "templates of %s changed; sync not requested (%s), the periodic sync catches up",
            instance.name,
            type(exc).__name__,
        )
        return
    if armed:
        logger.info("templates of %s changed; sync requested in %.0fs", instance.name, delay)
