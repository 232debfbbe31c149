"""``POST /webhooks/chatwoot/:bridge_integration_id/:secret``: agent replies to relay.

Authenticated by the unguessable path secret (constant time) and, when Chatwoot sends one
(v4.13+), ``X-Chatwoot-Signature`` over ``"{timestamp}.{raw body}"`` with the inbox's signing
secret, with stale timestamps refused. Only what must go to WhatsApp is stored; the rest is
acknowledged cheaply. Chatwoot gives up after 5 s and never retries, so nothing slow happens here.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.api.common import in_db, secrets_equal
from app.api.errors import ApiError
from app.api.names import ROW_ID
from app.api.queue import enqueue_lanes
from app.api.webhook_body import (
    STORAGE_DOWN,
    STORAGE_ERRORS,
    parse_json,
    parse_or_400,
    read_raw_body,
)
from app.relay.lanes.drain import deliverable
from app.relay.outbound.chatwoot_webhook import (
    ConversationStatusChanged,
    Ignored,
    parse_chatwoot_webhook,
)
from app.relay.outbound.intake import record_conversation_status, store_reply
from app.store.models import DIRECTION_OUTBOUND, ChatwootIntegration

logger = logging.getLogger(__name__)

MAX_CLOCK_SKEW_SECONDS = 300


def _integration(integration_id: str) -> ChatwootIntegration:
    if ROW_ID.fullmatch(integration_id) is None:
        raise ApiError(404, "integration not found")
    found: ChatwootIntegration | None = ChatwootIntegration.get_or_none(
        ChatwootIntegration.id == integration_id
    )
    if found is None:
        raise ApiError(404, "integration not found")
    return found


def verify_signature(
    raw: bytes, signature: str | None, timestamp: str | None, secret: str | None, now: float
) -> None:
    """Check ``X-Chatwoot-Signature`` when Chatwoot sent one (raises 401 ApiError)."""
    if not signature:
        return
    if not secret:
        logger.warning("signed Chatwoot webhook but no inbox secret stored; run set to refresh it")
        return
    try:
        sent_at = int(timestamp or "")
    except ValueError as exc:
        raise ApiError(401, "invalid signature") from exc
    if abs(now - sent_at) > MAX_CLOCK_SKEW_SECONDS:
        raise ApiError(401, "stale timestamp")
    expected = hmac.new(secret.encode(), f"{sent_at}.".encode() + raw, hashlib.sha256).hexdigest()
    if not secrets_equal(signature.strip().removeprefix("sha256=").lower(), expected):
        raise ApiError(401, "invalid signature")


async def chatwoot_webhook(request: Request) -> Response:
    raw = await read_raw_body(request)
    try:
        integration = await in_db(_integration, request.path_params["integration"])
    except STORAGE_ERRORS as exc:
        raise ApiError(503, STORAGE_DOWN) from exc
    expected = integration.get_secret("webhook_secret") or ""
    if not secrets_equal(request.path_params["secret"], expected):
        raise ApiError(401, "invalid secret")
    verify_signature(
        raw,
        request.headers.get("x-chatwoot-signature"),
        request.headers.get("x-chatwoot-timestamp"),
        integration.get_secret("inbox_secret"),
        time.time(),
    )
    body = parse_json(raw)
    parsed = parse_or_400(lambda: parse_chatwoot_webhook(body), "chatwoot")
    if isinstance(parsed, Ignored):
        if parsed.malformed:
            # an agent's message or a status change we could not read: visible in the log
            logger.warning("chatwoot webhook for %s not relayed: %s", integration.id, parsed.reason)
        return JSONResponse({"stored": 0, "ignored": parsed.reason})
    try:
        if isinstance(parsed, ConversationStatusChanged):
            await in_db(record_conversation_status, integration, parsed)
            return JSONResponse({"stored": 0, "conversation_status": parsed.status})
        stored = await in_db(store_reply, integration, parsed)
    except STORAGE_ERRORS as exc:
        raise ApiError(503, STORAGE_DOWN) from exc
    if stored and deliverable(integration):
        await enqueue_lanes(DIRECTION_OUTBOUND, integration.id, [parsed.recipient])
    return JSONResponse({"stored": int(stored)})


routes = [
    Route("/webhooks/chatwoot/{integration}/{secret}", chatwoot_webhook, methods=["POST"]),
]
