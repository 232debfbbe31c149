"""Webhooks from the WhatsApp side: verify, parse, store, enqueue, answer — nothing else.

No Chatwoot or WhatsApp call happens here (DESIGN invariant 8). A body is answered 200 only
once its events are committed; a redelivery stores nothing new and is still 200. The instance
and its secrets come from the process's lookup cache (:mod:`app.api.lookups`); storing goes
through the group-committing writer (:mod:`app.api.intake_writer`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from app.api.common import secrets_equal
from app.api.errors import INSTANCE_NOT_FOUND, ApiError
from app.api.intake_writer import submit_inbound
from app.api.jsonbody import storable
from app.api.lookups import webhook_instance
from app.api.names import is_instance_name
from app.api.template_requests import request_template_sync
from app.api.typing_jobs import enqueue_customer_typing
from app.api.webhook_body import parse_json, parse_or_400, read_raw_body
from app.management.lookup_cache import WebhookInstance
from app.relay.inbound.cloud_webhook import parse_cloud_webhook
from app.relay.inbound.gateway_presence import parse_gateway_presence
from app.relay.inbound.gateway_webhook import envelope_token, parse_gateway_webhook
from app.relay.inbound.intake_batch import InboundRequest
from app.relay.messages import ParsedBody
from app.store.models import PROVIDER_CLOUD, PROVIDER_GATEWAY

logger = logging.getLogger(__name__)


async def _load_instance(request: Request, provider: str) -> WebhookInstance:
    name = request.path_params["instance"]
    if not is_instance_name(name):
        raise ApiError(404, INSTANCE_NOT_FOUND)
    instance = await webhook_instance(request, name, provider)
    if instance is None:
        raise ApiError(404, INSTANCE_NOT_FOUND)
    return instance


async def cloud_verify(request: Request) -> Response:
    """Meta's subscription handshake: echo ``hub.challenge`` for the right verify token."""
    instance = await _load_instance(request, PROVIDER_CLOUD)
    params = request.query_params
    expected = instance.verify_token
    given = params.get("hub.verify_token", "")
    if params.get("hub.mode") != "subscribe" or not secrets_equal(given, expected):
        raise ApiError(403, "verification failed")
    return PlainTextResponse(params.get("hub.challenge", ""))


def valid_meta_signature(raw: bytes, header: str | None, app_secret: str) -> bool:
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``, constant time."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()
    return secrets_equal(header.removeprefix("sha256=").strip().lower(), expected)


async def cloud_webhook(request: Request) -> Response:
    instance = await _load_instance(request, PROVIDER_CLOUD)
    raw = await read_raw_body(request)
    signature = request.headers.get("x-hub-signature-256")
    if not valid_meta_signature(raw, signature, instance.app_secret):
        raise ApiError(401, "invalid signature")
    body = parse_json(raw)
    phone_number_id = instance.phone_number_id
    parsed = parse_or_400(lambda: parse_cloud_webhook(body, phone_number_id), "cloud")
    if parsed.template_accounts:
        await request_template_sync(request, instance, parsed.template_accounts)
    return await _accept(request, instance, parsed)


async def gateway_webhook(request: Request) -> Response:
    instance = await _load_instance(request, PROVIDER_GATEWAY)
    body = parse_json(await read_raw_body(request))
    expected = instance.gateway_token
    given = envelope_token(body) or ""
    if not given or not secrets_equal(given, expected):
        raise ApiError(401, "invalid token")
    path_event = request.path_params.get("event")
    event = None if path_event is None else storable(path_event)
    parsed = parse_or_400(lambda: parse_gateway_webhook(body, event), "gateway")
    presence = parse_gateway_presence(body)  # a customer typing: ephemeral, a typing job
    if presence is not None and instance.integration_id is not None:
        await enqueue_customer_typing(instance.integration_id, presence)
    return await _accept(request, instance, parsed)


async def _accept(request: Request, instance: WebhookInstance, parsed: ParsedBody) -> Response:
    """Store through the group-committing writer; 200 once committed (and enqueued)."""
    for note in parsed.ignored:
        logger.info("webhook for %s: ignored %s", instance.name, note)
    found, stored = False, 0
    if instance.integration_id is not None:
        item = InboundRequest.of(instance.integration_id, parsed.events)
        outcome = await submit_inbound(request, item)
        found, stored = outcome.integration_found, outcome.stored
    if not found:
        logger.info(
            "webhook for %s: no chatwoot integration; %d events not relayed",
            instance.name,
            len(parsed.events),
        )
    return counts_response(len(parsed.events), stored)


def counts_response(received: int, stored: int) -> Response:
    """``{"received": n, "stored": m}`` — JSONResponse's bytes, without a JSON encoder built
    for every webhook."""
    body = b'{"received":%d,"stored":%d}' % (received, stored)
    return Response(body, media_type="application/json")


routes = [
    Route("/webhooks/whatsapp/cloud/{instance}", cloud_verify, methods=["GET"]),
    Route("/webhooks/whatsapp/cloud/{instance}", cloud_webhook, methods=["POST"]),
    Route("/webhooks/whatsapp/gateway/{instance}", gateway_webhook, methods=["POST"]),
    Route("/webhooks/whatsapp/gateway/{instance}/{event}", gateway_webhook, methods=["POST"]),
]
