"""Helpers shared by the endpoint modules."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from app.api.auth import Principal, authenticate, request_token
from app.config import Settings
from app.store.db import request_connection

P = ParamSpec("P")
T = TypeVar("T")


async def in_db(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking database work in the thread pool (a pooled connection is handed back at
    the end: pool threads may exit when idle)."""

    def run() -> T:
        with request_connection():
            return fn(*args, **kwargs)

    return await run_in_threadpool(run)


async def principal_of(request: Request) -> Principal:
    return await in_db(authenticate, request_token(request))


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def secrets_equal(given: str, expected: str) -> bool:
    """Constant-time comparison of two texts of any content (``hmac.compare_digest`` refuses
    non-ASCII ``str``; lone surrogates cannot be encoded strictly)."""
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )
