"""create_app(): routes, middleware, exception handlers and lifespan of the web process."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from app.api import (
    chatwoot,
    chatwoot_webhook,
    docs_page,
    instances,
    ops,
    status_page,
    webhooks,
)
from app.api.errors import ApiError, handle_api_error, handle_http_exception, handle_unexpected
from app.api.intake_writer import stop_writer, writer_of
from app.api.lookups import stop_lookups
from app.api.middleware import AccessLog, CatchUnexpected, ChatwootModuleGate, RateLimiter
from app.api.webhook_lane import WebhookFirstApp
from app.config import Settings, get_settings, use_settings
from app.heap import freeze_startup_heap
from app.logs import configure_logging
from app.store import init_store

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    use_settings(settings)
    init_store(settings)
    redis = aioredis.Redis.from_url(
        settings.effective_redis_url(), socket_timeout=2, socket_connect_timeout=2
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        writer_of(app).start()
        try:
            yield
        finally:
            await stop_writer(app)
            await stop_lookups(app)
            await redis.aclose()

    app = WebhookFirstApp(
        routes=[
            # the webhooks first: Starlette tries routes in order (their POSTs take the
            # webhook lane before the middleware, see app.api.webhook_lane)
            *webhooks.routes,
            *chatwoot_webhook.routes,
            *ops.routes,
            *docs_page.routes,
            *status_page.routes,
            *instances.routes,
            *chatwoot.routes,
        ],
        middleware=[
            Middleware(AccessLog),
            Middleware(CatchUnexpected),
            Middleware(ChatwootModuleGate, enabled=settings.chatwoot_module_enabled),
            Middleware(
                RateLimiter,
                redis=redis,
                general=settings.rate_limit_per_minute,
                new_instance=settings.rate_limit_new_instance_per_minute,
                namespace=settings.queue_namespace,
            ),
        ],
        exception_handlers={
            ApiError: handle_api_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.redis = redis
    return app


def asgi_app() -> Starlette:
    """Factory for ``uvicorn --factory app.main:asgi_app`` (reads the environment)."""
    configure_logging()
    app = create_app()
    freeze_startup_heap()  # the process's heap from here on is never walked by the collector
    return app
