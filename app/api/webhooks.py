"""Webhooks from the WhatsApp side: verify, parse, store, enqueue, answer — nothing else.

No Chatwoot or WhatsApp call happens here (DESIGN invariant 8). A body is answered 200 only
once its events are committed; a redelivery stores nothing new and is still 200.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from app.api.common import in_db, secrets_equal
from app.api.errors import INSTANCE_NOT_FOUND, ApiError
from app.api.jsonbody import storable
from app.api.names import is_instance_name
from app.api.queue import enqueue_lanes
from app.api.webhook_body import (
    STORAGE_DOWN,
    STORAGE_ERRORS,
    parse_json,
    parse_or_400,
    read_raw_body,
)
from app.management.instances import integration_of
from app.relay.inbound.cloud_webhook import parse_cloud_webhook
from app.relay.inbound.gateway_webhook import envelope_token, parse_gateway_webhook
from app.relay.inbound.intake import StoredEvent, store_inbound
from app.relay.lanes.drain import deliverable
from app.relay.messages import Event, InboundMessage, ParsedBody
from app.store.models import (
    DIRECTION_INBOUND,
    PROVIDER_CLOUD,
    PROVIDER_GATEWAY,
    ChatwootIntegration,
    Instance,
)

logger = logging.getLogger(__name__)


def _webhook_instance(name: str, provider: str) -> Instance:
    if not is_instance_name(name):
        raise ApiError(404, INSTANCE_NOT_FOUND)
    instance: Instance | None = Instance.get_or_none(
        (Instance.name == name) & (Instance.provider == provider)
    )
    if instance is None:
        raise ApiError(404, INSTANCE_NOT_FOUND)
    return instance


async def _load_instance(name: str, provider: str) -> Instance:
    try:
        return await in_db(_webhook_instance, name, provider)
    except STORAGE_ERRORS as exc:
        raise ApiError(503, STORAGE_DOWN) from exc


async def cloud_verify(request: Request) -> Response:
    """Meta's subscription handshake: echo ``hub.challenge`` for the right verify token."""
    instance = await _load_instance(request.path_params["instance"], PROVIDER_CLOUD)
    params = request.query_params
    expected = instance.get_secret("cloud_verify_token") or ""
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
    instance = await _load_instance(request.path_params["instance"], PROVIDER_CLOUD)
    raw = await read_raw_body(request)
    app_secret = instance.get_secret("cloud_app_secret") or ""
    if not valid_meta_signature(raw, request.headers.get("x-hub-signature-256"), app_secret):
        raise ApiError(401, "invalid signature")
    body = parse_json(raw)
    phone_number_id = str(instance.cloud_phone_number_id)
    parsed = parse_or_400(lambda: parse_cloud_webhook(body, phone_number_id), "cloud")
    return await _accept(instance, parsed)


async def gateway_webhook(request: Request) -> Response:
    instance = await _load_instance(request.path_params["instance"], PROVIDER_GATEWAY)
    body = parse_json(await read_raw_body(request))
    expected = instance.get_secret("gateway_token") or ""
    given = envelope_token(body) or ""
    if not given or not secrets_equal(given, expected):
        raise ApiError(401, "invalid token")
    path_event = request.path_params.get("event")
    event = None if path_event is None else storable(path_event)
    parsed = parse_or_400(lambda: parse_gateway_webhook(body, event), "gateway")
    return await _accept(instance, parsed)


def _relayed(integration: ChatwootIntegration, events: list[Event]) -> list[Event]:
    """Drop what the integration does not want: group messages when ``ignoreGroups``."""
    if not integration.ignore_groups:
        return events
    return [e for e in events if not (isinstance(e, InboundMessage) and e.is_group)]


def _store(
    instance: Instance, events: list[Event]
) -> tuple[ChatwootIntegration | None, list[StoredEvent]]:
    integration = integration_of(instance)
    if integration is None:
        return None, []
    return integration, store_inbound(integration, _relayed(integration, events))


async def _accept(instance: Instance, parsed: ParsedBody) -> Response:
    for note in parsed.ignored:
        logger.info("webhook for %s: ignored %s", instance.name, note)
    try:
        integration, stored = await in_db(_store, instance, parsed.events)
    except STORAGE_ERRORS as exc:
        logger.error("webhook for %s not stored: %s", instance.name, type(exc).__name__)
        raise ApiError(503, STORAGE_DOWN) from exc
    if integration is None:
        logger.info(
            "webhook for %s: no chatwoot integration; %d events not relayed",
            instance.name,
            len(parsed.events),
        )
    elif stored and deliverable(integration):
        chats = list(dict.fromkeys(s.chat_key for s in stored))
        await enqueue_lanes(DIRECTION_INBOUND, integration.id, chats)
    return JSONResponse({"received": len(parsed.events), "stored": len(stored)})


routes = [
    Route("/webhooks/whatsapp/cloud/{instance}", cloud_verify, methods=["GET"]),
    Route("/webhooks/whatsapp/cloud/{instance}", cloud_webhook, methods=["POST"]),
    Route("/webhooks/whatsapp/gateway/{instance}", gateway_webhook, methods=["POST"]),
    Route("/webhooks/whatsapp/gateway/{instance}/{event}", gateway_webhook, methods=["POST"]),
]
