"""Operations endpoints: liveness, readiness and metrics."""

from __future__ import annotations

import logging

import anyio
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.api.common import in_db
from app.integrations import latency
from app.integrations.latency import Histogram
from app.management.metrics import CONTENT_TYPE, read_store
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


async def _remote_call_histograms(request: Request) -> list[Histogram] | None:
    """The latency histograms from Redis, or None (logged) when Redis does not answer."""
    try:
        with anyio.fail_after(READY_TIMEOUT_SECONDS):
            fields = await request.app.state.redis.hgetall(latency.histogram_key())
    except (RedisError, OSError, TimeoutError) as exc:
        logger.warning("metrics: remote call histograms unavailable: %s", type(exc).__name__)
        return None
    return latency.parse(fields)


async def metrics(request: Request) -> Response:
    """Prometheus text: event counters, queue lag, integrations, remote call latency."""
    store = await in_db(read_store)
    histograms = await _remote_call_histograms(request)
    return Response(render_metrics(store, histograms), media_type=CONTENT_TYPE)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
