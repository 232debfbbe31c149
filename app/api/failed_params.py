"""The parameters of ``failed`` (query string) and ``retry`` (body), validated.

Query values are checked as strictly as body fields; a bad one answers
``400 invalid query: <parameter>: <problem>``. Unknown parameters are ignored, as unknown body
fields are. Numbers are plain ASCII digits (no sign, no spaces, no other scripts' digits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams

from app.api.errors import ApiError, invalid_body
from app.management.failed_events import DEFAULT_LIMIT, DIRECTIONS, MAX_EVENT_ID, MAX_LIMIT

MAX_RETRY_IDS = 1000
_DIGITS = re.compile(r"[0-9]{1,19}")


def invalid_query(name: str, problem: str) -> ApiError:
    return ApiError(400, f"invalid query: {name}: {problem}")


@dataclass(frozen=True)
class FailedQuery:
    direction: str | None
    limit: int
    before: int | None


def failed_query(params: QueryParams) -> FailedQuery:
    """``direction=inbound|outbound``, ``limit`` 1 to 200 (default 50), ``before`` an event id."""
    direction = params.get("direction")
    if direction is not None and direction not in DIRECTIONS:
        raise invalid_query("direction", "must be inbound or outbound")
    limit = _query_int(params, "limit", MAX_LIMIT, f"must be an integer from 1 to {MAX_LIMIT}")
    before = _query_int(params, "before", MAX_EVENT_ID, "must be an event id")
    return FailedQuery(direction, DEFAULT_LIMIT if limit is None else limit, before)


def _query_int(params: QueryParams, name: str, maximum: int, problem: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not _DIGITS.fullmatch(raw) or not 1 <= int(raw) <= maximum:
        raise invalid_query(name, problem)
    return int(raw)


def retry_ids(body: dict[str, Any]) -> list[int] | None:
    """The ``ids`` of a ``retry`` body (each once, in the order given), or None for "every
    failed event" (``{}``, or ``"ids": null``). An empty list retries nothing."""
    value = body.get("ids")
    if value is None:
        return None
    if not isinstance(value, list):
        raise invalid_body("ids", "must be a list of event ids")
    if len(value) > MAX_RETRY_IDS:
        raise invalid_body("ids", f"must have at most {MAX_RETRY_IDS} ids")
    for item in value:  # a huge number arrives as a BigNumber (a str): refused too
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= MAX_EVENT_ID:
            raise invalid_body("ids", "must be a list of event ids (positive integers)")
    return list(dict.fromkeys(value))
