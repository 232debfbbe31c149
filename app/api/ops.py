"""Operations endpoints: liveness, readiness and metrics."""

from __future__ import annotations

import logging

import anyio
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from app.api.common import in_db
from app.management.metrics import render as render_metrics
from app.store.db import database

logger = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 2.0


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def _ping_database() -> None:
    database.execute_sql("SELECT 1")


async def readyz(request: Request) -> JSONResponse:
    """200 when the database and Redis both answer within two seconds, else 503."""
    checks = {"database": "unavailable", "redis": "unavailable"}
    try:
        with anyio.fail_after(READY_TIMEOUT_SECONDS):
            await in_db(_ping_database)
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready"; the reason is logged
        logger.warning("readiness: database check failed: %s", type(exc).__name__)
    try:
        with anyio.fail_after(READY_TIMEOUT_SECONDS):
            await request.app.state.redis.ping()
        checks["redis"] = "ok"
    except (RedisError, OSError, TimeoutError) as exc:
        logger.warning("readiness: redis check failed: %s", type(exc).__name__)
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", **checks},
        status_code=200 if ready else 503,
    )


async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text: relays by direction and outcome, queue lag, retries, latency."""
    body = await in_db(render_metrics)
    return PlainTextResponse(body, media_type="text/plain; version=0.0.4")


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
