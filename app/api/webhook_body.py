"""Reading a webhook body, shared by the WhatsApp and Chatwoot webhook endpoints: size-limited
bytes, lenient JSON, a parser run so that nothing but ``400`` comes of a bad body, and the
``503`` answer when the database is unreachable (the sender retries)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.requests import Request

from app.api.errors import ApiError
from app.api.jsonbody import decode_webhook_json, read_limited
from app.relay.messages import ParseError
from app.store.db import CONNECTION_ERRORS

logger = logging.getLogger(__name__)

MAX_WEBHOOK_BYTES = 8 * 1024 * 1024
STORAGE_DOWN = "storage unavailable"
STORAGE_ERRORS = CONNECTION_ERRORS  # the database is unreachable or busy: the sender retries


async def read_raw_body(request: Request) -> bytes:
    raw = await read_limited(request, MAX_WEBHOOK_BYTES)
    if raw is None:
        raise ApiError(413, "body too large")
    return raw


def parse_json(raw: bytes) -> Any:
    """Decoded, depth-bounded JSON whose strings are storable (``400`` when not JSON)."""
    return decode_webhook_json(raw)


Parsed = TypeVar("Parsed")
PARSER_BUGS = (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError)
UNREADABLE = "invalid body: body: could not be read"


def parse_or_400(parse: Callable[[], Parsed], source: str) -> Parsed:
    """Run a parser: its :class:`ParseError` is ``400 invalid body: <why>``. Any other error is
    a parser bug met on client input: logged loudly, and still a ``400`` (never a 500), with
    nothing stored."""
    try:
        return parse()
    except ParseError as exc:
        raise ApiError(400, f"invalid body: {exc}") from exc
    except PARSER_BUGS as exc:
        logger.error("%s parser failed on a body: %s", source, type(exc).__name__, exc_info=exc)
        raise ApiError(400, UNREADABLE) from exc
