"""``POST /webhooks/chatwoot/:bridge_integration_id/:secret``: agent replies to relay.

Authenticated by the unguessable path secret (constant time) and, when Chatwoot sends one
(v4.13+), ``X-Chatwoot-Signature`` over ``"{timestamp}.{raw body}"`` with the inbox's signing
secret, with stale timestamps refused. Only what must go to WhatsApp is stored; the rest is
acknowledged cheaply. Chatwoot gives up after 5 s and never retries, so nothing slow happens here:
the integration and its secrets come from the process's lookup cache, and storing goes through
the group-committing writer (:mod:`app.api.intake_writer`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.api.common import secrets_equal
from app.api.errors import ApiError
from app.api.intake_writer import submit_outbound
from app.api.lookups import webhook_integration
from app.api.names import ROW_ID
from app.api.typing_jobs import enqueue_agent_typing
from app.api.webhook_body import parse_json, parse_or_400, read_raw_body
from app.management.lookup_cache import WebhookIntegration
from app.relay.outbound.chatwoot_webhook import (
    AgentTyping,
    ConversationStatusChanged,
    Ignored,
    parse_chatwoot_webhook,
)
from app.relay.outbound.intake_batch import OutboundRequest

logger = logging.getLogger(__name__)

MAX_CLOCK_SKEW_SECONDS = 300


async def _integration(request: Request) -> WebhookIntegration:
    integration_id = request.path_params["integration"]
    if ROW_ID.fullmatch(integration_id) is None:
        raise ApiError(404, "integration not found")
    found = await webhook_integration(request, integration_id)
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
    integration = await _integration(request)
    if not secrets_equal(request.path_params["secret"], integration.webhook_secret):
        raise ApiError(401, "invalid secret")
    verify_signature(
        raw,
        request.headers.get("x-chatwoot-signature"),
        request.headers.get("x-chatwoot-timestamp"),
        integration.inbox_secret,
        time.time(),
    )
    body = parse_json(raw)
    parsed = parse_or_400(lambda: parse_chatwoot_webhook(body), "chatwoot")
    if isinstance(parsed, Ignored):
        if parsed.malformed:
            # an agent's message or a status change we could not read: visible in the log
            logger.warning("chatwoot webhook for %s not relayed: %s", integration.id, parsed.reason)
        return JSONResponse({"stored": 0, "ignored": parsed.reason})
    if isinstance(parsed, AgentTyping):  # ephemeral: a typing job, nothing stored
        queued = await enqueue_agent_typing(integration.id, parsed)
        return JSONResponse({"stored": 0, "typing": "on" if parsed.on else "off", "queued": queued})
    outcome = await submit_outbound(request, OutboundRequest(integration.id, parsed))
    if not outcome.integration_found:  # deleted since it was looked up
        raise ApiError(404, "integration not found")
    if isinstance(parsed, ConversationStatusChanged):
        return JSONResponse({"stored": 0, "conversation_status": parsed.status})
    return JSONResponse({"stored": int(outcome.stored)})


routes = [
    Route("/webhooks/chatwoot/{integration}/{secret}", chatwoot_webhook, methods=["POST"]),
]
