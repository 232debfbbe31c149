"""Body parsing: JSON object in, typed values out, or ``400 invalid body: <field>: <problem>``.

Unknown fields are ignored, as API.md says. ``bool`` is never accepted where an integer is
expected (JSON ``true`` is not ``1``). Strings must be storable (no NUL, no lone surrogate);
integers must fit the 32-bit columns they go to.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request

from app.api.errors import ApiError, invalid_body
from app.api.jsonbody import BigNumber, decode_json, has_unstorable, read_limited
from app.integrations.urlguard import UrlNotAllowed, check_url_syntax

MAX_BODY_BYTES = 64 * 1024
MAX_INT32 = 2**31 - 1
"""Chatwoot's ids (accounts, inboxes) are PostgreSQL ``serial`` columns, and so are ours."""


async def read_json_object(request: Request) -> dict[str, Any]:
    raw = await read_limited(request, MAX_BODY_BYTES)
    if raw is None:
        raise invalid_body("body", "too large")
    if not raw.strip():
        raise invalid_body("body", "must be a JSON object")
    body = decode_json(raw)
    if not isinstance(body, dict):
        raise invalid_body("body", "must be a JSON object")
    return body


def optional_str(
    body: dict[str, Any], field: str, *, max_len: int = 500, pattern: re.Pattern[str] | None = None
) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or isinstance(value, BigNumber):
        raise invalid_body(field, "must be a string")
    if has_unstorable(value):
        raise invalid_body(field, "must not contain NUL or unpaired surrogate characters")
    value = value.strip()
    if not value:
        raise invalid_body(field, "must not be empty")
    if len(value) > max_len:
        raise invalid_body(field, f"must be at most {max_len} characters")
    if pattern is not None and not pattern.fullmatch(value):
        raise invalid_body(field, f"must match {pattern.pattern}")
    return value


def required_str(
    body: dict[str, Any], field: str, *, max_len: int = 500, pattern: re.Pattern[str] | None = None
) -> str:
    value = optional_str(body, field, max_len=max_len, pattern=pattern)
    if value is None:
        raise invalid_body(field, "is required")
    return value


HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
"""A credential we send in an HTTP header: visible ASCII, no spaces (httpx cannot send more)."""


def required_header_token(body: dict[str, Any], field: str, *, max_len: int = 2000) -> str:
    """A token that travels as an HTTP header to a remote system (Chatwoot, Graph, gateway)."""
    value = required_str(body, field, max_len=max_len)
    if not HEADER_SAFE.fullmatch(value):
        raise invalid_body(field, "must be printable ASCII without spaces (sent in an HTTP header)")
    return value


def optional_bool(body: dict[str, Any], field: str, default: bool = False) -> bool:
    value = body.get(field)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid_body(field, "must be a boolean")
    return value


def required_positive_int(body: dict[str, Any], field: str, *, maximum: int = MAX_INT32) -> int:
    value = body.get(field)
    if value is None:
        raise invalid_body(field, "is required")
    if isinstance(value, BigNumber):
        raise invalid_body(field, f"must be an integer from 1 to {maximum}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_body(field, "must be an integer")
    if value <= 0:
        raise invalid_body(field, "must be greater than 0")
    if value > maximum:
        raise invalid_body(field, f"must be an integer from 1 to {maximum}")
    return value


def optional_int_between(
    body: dict[str, Any], field: str, *, minimum: int, maximum: int
) -> int | None:
    """An optional integer from ``minimum`` to ``maximum`` (None when absent or null)."""
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | BigNumber):
        raise invalid_body(field, "must be an integer")
    if isinstance(value, BigNumber) or not minimum <= value <= maximum:
        raise invalid_body(field, f"must be an integer from {minimum} to {maximum}")
    return value


def http_url(body: dict[str, Any], field: str, *, required: bool) -> str | None:
    """An http(s) URL with a host and no credentials, trailing ``/`` removed.

    Text that is no URL at all (``chatwoot.example.com``) is ``invalid body``; a URL breaking
    the URL rule (another scheme such as ``ftp://``, ``file://`` or ``javascript:``, no host,
    credentials, a bad port) is ``400 <field> is not allowed: <reason>``, the same message a
    private address gets.
    """
    value = optional_str(body, field, max_len=500)
    if value is None:
        if required:
            raise invalid_body(field, "is required")
        return None
    if ":" not in value:  # no scheme at all: not a URL
        raise invalid_body(field, "must be an http or https URL")
    try:
        check_url_syntax(value)
    except UrlNotAllowed as exc:
        raise ApiError(400, f"{field} is not allowed: {exc}") from exc
    parts = urlsplit(value)
    if parts.query or parts.fragment:
        raise invalid_body(field, "must not contain a query or fragment")
    return value.rstrip("/")
