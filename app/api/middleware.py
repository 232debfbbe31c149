"""ASGI middleware: the module gate, rate limits, access logs and the last-resort 500."""

from __future__ import annotations

import hashlib
import logging
import random
import re
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.datastructures import Headers, MutableHeaders, QueryParams
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.auth import presented_token
from app.api.errors import INTERNAL_ERROR, error_response, log_unexpected, route_template
from app.logs import log_context

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("wootbridge.access")

GATE_MESSAGE = "integration gateway not configured"
RATE_LIMITED = "Rate limit exceeded. Try again later."
WINDOW_SECONDS = 60


class ChatwootModuleGate:
    """``/api/chatwoot/*`` answers 503 before anything else when the module is off."""

    def __init__(self, app: ASGIApp, *, enabled: bool) -> None:
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            not self.enabled
            and scope["type"] == "http"
            and scope["path"].startswith("/api/chatwoot/")
        ):
            await error_response(503, GATE_MESSAGE)(scope, receive, send)
            return
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class Bucket:
    name: str
    limit: int


class RateLimiter:
    """Fixed one-minute windows counted in Redis, per token (per client address without one).

    Every ``/api/`` request counts in the general bucket; ``POST /api/instance/new`` also counts
    in its own, smaller bucket. Headers describe the tightest bucket that applies. If Redis is
    unreachable the request goes through (and the failure is logged): losing rate limiting
    for a moment is better than refusing every management call.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        redis: aioredis.Redis,
        general: int,
        new_instance: int,
        namespace: str = "wootbridge",
    ) -> None:
        self.app = app
        self.redis = redis
        self.namespace = namespace
        self.general = Bucket("all", general)
        self.new_instance = Bucket("new", new_instance)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        buckets = [self.general]
        if scope["method"] == "POST" and scope["path"].rstrip("/") == "/api/instance/new":
            buckets.append(self.new_instance)
        headers = await self._count(_caller_key(scope), buckets)
        if headers is None:
            await self.app(scope, receive, send)
            return
        if int(headers["X-RateLimit-Remaining"]) < 0:
            headers["X-RateLimit-Remaining"] = "0"
            headers["Retry-After"] = str(
                max(1, int(headers["X-RateLimit-Reset"]) - int(time.time()))
            )
            await error_response(429, RATE_LIMITED, headers)(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _count(self, caller: str, buckets: list[Bucket]) -> dict[str, str] | None:
        window = int(time.time()) // WINDOW_SECONDS
        reset = (window + 1) * WINDOW_SECONDS
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for bucket in buckets:
                    key = f"{self.namespace}:rl:{bucket.name}:{caller}:{window}"
                    pipe.incr(key)
                    pipe.expire(key, WINDOW_SECONDS + 5)
                results = await pipe.execute()
        except (RedisError, OSError) as exc:
            logger.warning("rate limiting skipped, Redis unavailable: %s", type(exc).__name__)
            return None
        tightest = min(
            ((b, int(results[i * 2])) for i, b in enumerate(buckets)),
            key=lambda pair: pair[0].limit - pair[1],
        )
        bucket, used = tightest
        return {
            "X-RateLimit-Limit": str(bucket.limit),
            "X-RateLimit-Remaining": str(bucket.limit - used),
            "X-RateLimit-Reset": str(reset),
        }


def _caller_key(scope: Scope) -> str:
    token = presented_token(Headers(scope=scope), QueryParams(scope.get("query_string", b"")))
    if token:
        return "t:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    client = scope.get("client") or ("unknown", 0)
    return f"ip:{client[0]}"


REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_MAX_LENGTH = 64
_REQUEST_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")


def request_id_of(headers: Headers) -> str:
    """The caller's ``X-Request-Id`` (e.g. the platform router's), reduced to
    ``[A-Za-z0-9._:-]`` and 64 characters so it cannot forge log lines; a new one without."""
    given = _REQUEST_ID_UNSAFE.sub("", headers.get(REQUEST_ID_HEADER, ""))
    return given[:REQUEST_ID_MAX_LENGTH] or new_request_id()


def new_request_id() -> str:
    """32 random hex digits. A request id names a request in the logs and is no secret, so it
    comes from the process's PRNG (reseeded in a forked child) rather than from ``os.urandom``:
    ``uuid4`` costs a system call on every request that arrives without an id."""
    return f"{random.getrandbits(128):032x}"


def log_access(scope: Scope, status: int, started: float) -> None:
    """The access line of a finished request (built only when INFO lines are written)."""
    if access_logger.isEnabledFor(logging.INFO):
        access_logger.info(
            "%s %s %s %.1fms",
            scope["method"],
            route_template(scope),
            status,
            (time.perf_counter() - started) * 1000,
        )


class AccessLog:
    """One line per request: method, the route's loggable path (see ``route_template``: never
    the raw path, which may hold the Chatwoot webhook's secret, nor the query string, which may
    hold a token), status, duration.

    Also the request id: every record logged while the request runs carries it (see
    ``app.logs.log_context``), and the response echoes it in ``X-Request-Id``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request_id = request_id_of(Headers(scope=scope))

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        with log_context(request_id=request_id):
            try:
                await self.app(scope, receive, record_status)
            finally:
                log_access(scope, status, started)


class CatchUnexpected:
    """Any exception escaping a handler: logged with the route template, answered
    ``500 internal error`` (Starlette's own last resort would re-raise it to the server, which
    logs it again)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log_unexpected(scope, exc)
            if response_started:
                raise
            await error_response(500, INTERNAL_ERROR)(scope, receive, send)
