"""Body parsing: JSON object in, typed values out, or ``400 invalid body: <field>: <problem>``.

Unknown fields are ignored, as API.md says. ``bool`` is never accepted where an integer is
expected (JSON ``true`` is not ``1``).
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request

from app.api.errors import invalid_body

MAX_BODY_BYTES = 64 * 1024


async def read_json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise invalid_body("body", "too large")
    if not raw.strip():
        raise invalid_body("body", "must be a JSON object")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid_body("body", "not valid JSON") from exc
    if not isinstance(body, dict):
        raise invalid_body("body", "must be a JSON object")
    return body


def optional_str(
    body: dict[str, Any], field: str, *, max_len: int = 500, pattern: re.Pattern[str] | None = None
) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_body(field, "must be a string")
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


def optional_bool(body: dict[str, Any], field: str, default: bool = False) -> bool:
    value = body.get(field)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid_body(field, "must be a boolean")
    return value


def required_positive_int(body: dict[str, Any], field: str) -> int:
    value = body.get(field)
    if value is None:
        raise invalid_body(field, "is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_body(field, "must be an integer")
    if value <= 0:
        raise invalid_body(field, "must be greater than 0")
    return value


def http_url(body: dict[str, Any], field: str, *, required: bool) -> str | None:
    """An http(s) URL with a host and no credentials, trailing ``/`` removed."""
    value = optional_str(body, field, max_len=500)
    if value is None:
        if required:
            raise invalid_body(field, "is required")
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid_body(field, "must be an http or https URL")
    if parts.username or parts.password:
        raise invalid_body(field, "must not contain credentials")
    if parts.query or parts.fragment:
        raise invalid_body(field, "must not contain a query or fragment")
    return value.rstrip("/")
