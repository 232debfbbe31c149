"""Reading request bodies as JSON without ever failing on what a client can send.

Every JSON-reading endpoint goes through here, so that a hostile or broken body is a 4xx and
never a 500: bodies are read with a size cap, numbers that no field can hold are kept as their
text (:class:`BigNumber`), ``NaN``/``Infinity`` are refused as not JSON, nesting is bounded, and
for webhooks the strings are made storable (PostgreSQL refuses NUL; lone surrogates cannot be
encoded as UTF-8) before any parser sees them.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from starlette.requests import Request

from app.api.errors import invalid_body

MAX_DEPTH = 64
"""Deepest nesting accepted. Real bodies nest fewer than 12 levels; the limit keeps every later
recursive step (parsers, ``json.dumps`` of payloads) far from Python's recursion limit."""

MAX_NUMBER_CHARS = 40
"""Longer number literals are kept as text: no field holds them, and ``int()`` is quadratic
(CPython refuses more than 4300 digits outright)."""

NOT_JSON = "not valid JSON"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_MAY_HOLD_UNSTORABLE = re.compile(rb"\x00|\xed[\xa0-\xbf]|\\u(?:0000|[dD][89a-fA-F])")
"""Every way a body can bring NUL or a lone surrogate through ``json.loads``: a ``\\u`` escape,
UTF-8 bytes of a surrogate (``json.loads`` decodes with ``surrogatepass``), or any NUL byte
(which UTF-16 and UTF-32 bodies are full of). A body with none needs no :func:`storable` walk."""
REPLACEMENT = "\ufffd"


class BigNumber(str):
    """A JSON number no field can hold (huge integer, float overflowing to infinity), kept as
    its literal text. It serializes as a JSON string; validators report it as out of range."""


def _parse_int(literal: str) -> int | BigNumber:
    if len(literal) > MAX_NUMBER_CHARS:
        return BigNumber(literal)
    return int(literal)


def _parse_float(literal: str) -> float | BigNumber:
    value = float(literal)
    if len(literal) > MAX_NUMBER_CHARS or not math.isfinite(value):
        return BigNumber(literal)
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The raw body, or ``None`` as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and (len(declared) > 15 or int(declared) > limit):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def decode_json(raw: bytes) -> Any:
    """Decode ``raw`` (UTF-8 JSON, no NaN/Infinity, at most :data:`MAX_DEPTH` deep) or raise
    ``400 invalid body: body: ...``."""
    try:
        value = json.loads(
            raw,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_refuse_constant,
        )
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise invalid_body("body", NOT_JSON) from exc
    if _may_nest_deeper(raw, MAX_DEPTH) and depth_exceeds(value, MAX_DEPTH):
        raise invalid_body("body", f"nested deeper than {MAX_DEPTH} levels")
    return value


def _may_nest_deeper(raw: bytes, limit: int) -> bool:
    """False when ``raw`` has too few brackets to nest beyond ``limit`` (a count at C speed
    spares the walk for every ordinary body)."""
    return raw.count(b"{") + raw.count(b"[") > limit


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether containers nest more than ``limit`` levels (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            children: Any = current.values()
        elif isinstance(current, list):
            children = current
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def has_unstorable(text: str) -> bool:
    """NUL (refused by PostgreSQL) or a lone surrogate (not encodable as UTF-8)."""
    return _UNSTORABLE.search(text) is not None


def storable(value: Any) -> Any:
    """``value`` with NUL and lone surrogates in every string (keys too) replaced by U+FFFD.

    Call only on decoded JSON (bounded depth, so the recursion is bounded too).
    """
    if isinstance(value, str):
        return _UNSTORABLE.sub(REPLACEMENT, value) if has_unstorable(value) else value
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [storable(item) for item in value]
    return value


def decode_webhook_json(raw: bytes) -> Any:
    """The one decoder of the three webhooks: JSON that is safe to parse and to store."""
    value = decode_json(raw)
    return storable(value) if _MAY_HOLD_UNSTORABLE.search(raw) else value
