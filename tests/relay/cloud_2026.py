"""The 2026 WhatsApp Cloud reference bodies (BSUIDs, usernames, coexistence), ready to post to a
bridge: media registered in a FakeGraph under the ids the bodies then name."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tests.fakes.graph import FakeGraph
from tests.reference import whatsapp_cloud_dir

MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")


def dir_2026() -> Path:
    return whatsapp_cloud_dir() / "2026"


def body_2026(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((dir_2026() / name).read_text())
    return loaded


def names_2026() -> set[str]:
    return {p.name for p in dir_2026().glob("*.json")}


def value_of(body: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = body["entry"][0]["changes"][0]["value"]
    return value


def messages_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """``messages[]`` or, for a coexistence echo, ``message_echoes[]``."""
    value = value_of(body)
    found: list[dict[str, Any]] = value.get("messages") or value.get("message_echoes") or []
    return found


def media_bytes(seed: str) -> bytes:
    """Distinct, binary (non UTF-8) bytes per message."""
    return b"\xff\x00" + seed.encode() + bytes(range(256)) * 40


def with_graph_media(graph: FakeGraph, name: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The body with each fetchable attachment stored in FakeGraph under the id it now names
    (its lookaside ``url`` dropped, so the relay walks ``GET /{media-id}``); returns the body
    and the bytes per WhatsApp message id. A message whose download Meta reported as failed
    (``errors[]``) keeps its id unregistered: nothing may try to fetch it."""
    body = copy.deepcopy(body_2026(name))
    data: dict[str, bytes] = {}
    for message in messages_of(body):
        kind = message.get("type")
        content = message.get(kind) if isinstance(kind, str) else None
        if kind not in MEDIA_TYPES or not isinstance(content, dict) or message.get("errors"):
            continue
        content.pop("url", None)
        data[message["id"]] = media_bytes(message["id"])
        content["id"] = graph.add_media(data[message["id"]], content["mime_type"])
    return body, data
