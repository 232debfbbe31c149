"""Reading pieces of a Cloud API webhook body without trusting their shape.

Every reader either returns a value of the promised type or raises :class:`Unreadable` naming
the place (never the value found there: it may be message content or a secret). The walkers in
``cloud_webhook`` and ``cloud_content`` turn an :class:`Unreadable` into an ignored note or a
visible ``unsupported`` placeholder; it never leaves the parser.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any


class Unreadable(Exception):
    """One part of the body is not what Meta documents; ``str()`` names the place and the gap."""


def obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Unreadable(f"{where} is missing" if value is None else f"{where} is not an object")
    return value


def req_str(value: Any, where: str) -> str:
    """A non-empty string."""
    if value is None or value == "":
        raise Unreadable(f"{where} missing")
    if not isinstance(value, str):
        raise Unreadable(f"{where} is not a string")
    return value


def opt_str(mapping: dict[str, Any], key: str) -> str | None:
    """``mapping[key]`` when it is a string; anything else reads as absent."""
    value = mapping.get(key)
    return value if isinstance(value, str) else None


def text_of(mapping: dict[str, Any], key: str) -> str | None:
    """A non-blank string at ``key``, else ``None``."""
    value = opt_str(mapping, key)
    return value if value is not None and value.strip() else None


def req_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise Unreadable(f"{where} is missing" if value is None else f"{where} is not a list")
    return value


MAX_MESSAGE_ID = 200  # Meta's wamids are ~60-100 characters; keys built from them must fit 255


def message_id_at(mapping: dict[str, Any], key: str) -> str | None:
    """A WhatsApp message id at ``key``; a blank or absurdly long one reads as absent."""
    value = text_of(mapping, key)
    return value if value is not None and len(value) <= MAX_MESSAGE_ID else None


def list_or_empty(mapping: dict[str, Any], key: str, where: str) -> list[Any]:
    value = mapping.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Unreadable(f"{where}.{key} is not a list")
    return value


def dicts(value: Any) -> list[dict[str, Any]]:
    """The objects of an optional list (anything else in it is not ours to judge)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unreadable(f"{where} is not a number")
    result = float(value)
    if not math.isfinite(result):
        raise Unreadable(f"{where} is not a number")
    return result


def timestamp(value: Any) -> int | None:
    """Unix seconds from an int or a string of digits; anything else reads as unknown."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


def error_text(error: dict[str, Any]) -> str:
    """``"<code>: <title> (<details>)"`` from one of Meta's error objects.

    Newer errors carry ``message`` + ``error_data.details``; older ones a top-level ``details``.
    """
    title = text_of(error, "title") or text_of(error, "message") or "unknown error"
    data = error.get("error_data")
    details = text_of(data, "details") if isinstance(data, dict) else None
    details = details or text_of(error, "details")
    text = f"{error_code(error) or '?'}: {title}"
    return f"{text} ({details})" if details and details != title else text


def error_code(error: dict[str, Any]) -> int | None:
    code = error.get("code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def first_error(mapping: dict[str, Any]) -> dict[str, Any] | None:
    """The first error object of ``mapping["errors"]``, if there is one."""
    errors = dicts(mapping.get("errors"))
    return errors[0] if errors else None


def stable_id(message: dict[str, Any], where: str) -> str:
    """``noid-<hex16>`` from the canonical JSON of ``message``: the same message redelivered
    gets the same id, so the intake stores it once."""
    try:
        canonical = json.dumps(message, sort_keys=True, separators=(",", ":"))
    except (RecursionError, ValueError):
        # Too deep to serialise: its flat fields and its place in the body stand in for it.
        flat = {k: v for k, v in message.items() if isinstance(v, str | int | float | None)}
        canonical = where + json.dumps(flat, sort_keys=True, separators=(",", ":"))
    return "noid-" + hashlib.sha256(canonical.encode()).hexdigest()[:16]
