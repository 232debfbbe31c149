"""The operations of the OpenAPI document, route by route (docs/api.md is the prose twin)."""

from __future__ import annotations

from app.api.chatwoot import NO_INTEGRATION_TO_DELETE
from app.api.instances import NAME_TAKEN, NO_ENCRYPTION_KEY, TOKEN_TAKEN
from app.api.openapi import (
    ACCOUNT_ONLY,
    AUTH,
    CHATWOOT,
    INSTANCE_PARAM,
    INVALID_BODY,
    ON_INSTANCE,
    SET_ERRORS,
    WEBHOOK,
    WHATSAPP_WEBHOOK,
    Messages,
    header_param,
    json_response,
    merge,
    operation,
    path_param,
    query_param,
    text_response,
)
from app.api.openapi_schemas import Schema

URL_REFUSED = "<field> is not allowed: <reason>"


def _instances() -> dict[str, Schema]:
    new = operation(
        "createInstance",
        "Create an instance, optionally with its Chatwoot integration",
        "instances",
        {201: json_response("Instance created", "NewInstanceResponse")},
        merge(
            AUTH,
            ACCOUNT_ONLY,
            {
                400: [INVALID_BODY, URL_REFUSED],
                409: [NAME_TAKEN, TOKEN_TAKEN],
                503: [NO_ENCRYPTION_KEY],
            },
        ),
        body="NewInstanceRequest",
        description="Account token only. When the inline Chatwoot activation fails the "
        "instance is still created (201) and `chatwoot.status` is `error`. Rate limit: "
        "20 requests a minute.",
    )
    listing = operation(
        "listInstances",
        "List instances",
        "instances",
        {200: json_response("The instances the token may see", "InstanceList")},
        AUTH,
        params=[
            query_param("instanceName", "comma-separated names (account token)", {"type": "string"})
        ],
    )
    delete = operation(
        "deleteInstance",
        "Delete an instance and everything queued for it",
        "instances",
        {200: json_response("Instance deleted", "InstanceDeleted")},
        merge(AUTH, ON_INSTANCE),
        params=[INSTANCE_PARAM],
        description="Account token only. Nothing in Chatwoot is touched.",
    )
    return {
        "/api/instance/new": {"post": new},
        "/api/instance/list": {"get": listing},
        "/api/instance/delete/{instance}": {"delete": delete},
    }


def _chatwoot_op(
    op_id: str,
    summary: str,
    success: dict[int, Schema],
    errors: Messages = CHATWOOT,
    body: str | None = None,
    description: str = "",
) -> Schema:
    return operation(
        op_id,
        summary,
        "chatwoot",
        success,
        errors,
        params=[INSTANCE_PARAM],
        body=body,
        description=description,
    )


def _chatwoot() -> dict[str, Schema]:
    set_errors = merge(AUTH, ON_INSTANCE, {503: CHATWOOT[503]}, SET_ERRORS)
    failed_params = [
        INSTANCE_PARAM,
        query_param(
            "direction", "only this direction", {"type": "string", "enum": ["inbound", "outbound"]}
        ),
        query_param(
            "limit", "page size", {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}
        ),
        query_param(
            "before",
            "an event id: the page after it (`next_before`)",
            {"type": "integer", "minimum": 1},
        ),
    ]
    return {
        "/api/chatwoot/set/{instance}": {
            "post": _chatwoot_op(
                "setChatwoot",
                "Create or update the Chatwoot integration",
                {
                    201: json_response("Integration activated", "SetResponse"),
                    202: json_response(
                        "Still provisioning; `list` shows the outcome", "SetResponse"
                    ),
                },
                errors=set_errors,
                body="SetRequest",
                description="Checks the token, creates (or updates) an API-channel inbox, stores "
                "everything encrypted and starts relaying. Waits up to SET_WAIT_SECONDS.",
            )
        },
        "/api/chatwoot/list/{instance}": {
            "get": _chatwoot_op(
                "getChatwoot",
                "Show the integration and its relay counters",
                {200: json_response("The integration", "Integration")},
            )
        },
        "/api/chatwoot/delete/{instance}": {
            "delete": _chatwoot_op(
                "deleteChatwoot",
                "Remove the integration (the inbox stays in Chatwoot)",
                {200: json_response("Integration removed", "IntegrationDeleted")},
                errors=merge(
                    AUTH, ON_INSTANCE, {503: CHATWOOT[503]}, {404: [NO_INTEGRATION_TO_DELETE]}
                ),
            )
        },
        "/api/chatwoot/pause/{instance}": {
            "post": _chatwoot_op(
                "pauseChatwoot",
                "Hold relaying in both directions (ours)",
                {200: json_response("Paused", "PauseState")},
            )
        },
        "/api/chatwoot/resume/{instance}": {
            "post": _chatwoot_op(
                "resumeChatwoot",
                "Deliver everything held, in order (ours)",
                {200: json_response("Resumed", "PauseState")},
            )
        },
        "/api/chatwoot/failed/{instance}": {
            "get": operation(
                "listFailed",
                "Events that could not be relayed for good, newest first (ours)",
                "chatwoot",
                {200: json_response("A page of failed events", "FailedPage")},
                merge(CHATWOOT, {400: ["invalid query: <parameter>: <problem>"]}),
                params=failed_params,
            )
        },
        "/api/chatwoot/retry/{instance}": {
            "post": _chatwoot_op(
                "retryFailed",
                "Replay failed events in their chat's order (ours)",
                {202: json_response("The events are pending again", "RetryResponse")},
                errors=merge(CHATWOOT, {400: [INVALID_BODY, "invalid body: ids: <problem>"]}),
                body="RetryRequest",
                description="Body `{}` replays every failed event of the instance; "
                '`{"ids": [...]}` the listed ones (unknown or not-failed ids are skipped).',
            )
        },
    }


def _webhook(
    op_id: str,
    summary: str,
    success: Schema,
    errors: dict[int, list[str]],
    params: list[Schema],
    description: str,
) -> Schema:
    return operation(
        op_id,
        summary,
        "webhooks",
        {200: success},
        errors,
        secured=False,
        params=params,
        body="WebhookBody",
        description=description,
    )


def _webhooks() -> dict[str, Schema]:
    instance = path_param("instance", "the instance name")
    accepted = json_response("Stored (or a repeated delivery)", "WebhookAccepted", False)
    gateway_errors = merge(WHATSAPP_WEBHOOK, {401: ["invalid token"]})
    gateway_doc = (
        "Authenticated by `instanceData.token` (the instance's gateway token); "
        "a `/:event` suffix must agree with the body's `event`."
    )
    return {
        "/webhooks/whatsapp/cloud/{instance}": {
            "get": operation(
                "cloudVerify",
                "Meta's subscription handshake",
                "webhooks",
                {200: text_response("The echoed hub.challenge", "text/plain")},
                {
                    403: ["verification failed"],
                    404: WHATSAPP_WEBHOOK[404],
                    503: WHATSAPP_WEBHOOK[503],
                },
                secured=False,
                params=[instance]
                + [
                    query_param(name, text, {"type": "string"})
                    for name, text in [
                        ("hub.mode", "must be `subscribe`"),
                        ("hub.verify_token", "the instance's verify token"),
                        ("hub.challenge", "echoed back"),
                    ]
                ],
            ),
            "post": _webhook(
                "cloudWebhook",
                "WhatsApp Cloud API events",
                accepted,
                merge(WHATSAPP_WEBHOOK, {401: ["invalid signature"]}),
                [
                    instance,
                    header_param(
                        "X-Hub-Signature-256", "sha256=<HMAC-SHA256 of the raw body, app secret>"
                    ),
                ],
                "Answers 200 once every event is committed; changes for another "
                "phone_number_id are skipped.",
            ),
        },
        "/webhooks/whatsapp/gateway/{instance}": {
            "post": _webhook(
                "gatewayWebhook",
                "Gateway events",
                accepted,
                gateway_errors,
                [instance],
                gateway_doc,
            )
        },
        "/webhooks/whatsapp/gateway/{instance}/{event}": {
            "post": _webhook(
                "gatewayEventWebhook",
                "Gateway events, one URL per event",
                accepted,
                gateway_errors,
                [instance, path_param("event", "the event name")],
                gateway_doc,
            )
        },
        "/webhooks/chatwoot/{bridge_integration_id}/{secret}": {
            "post": _webhook(
                "chatwootWebhook",
                "Chatwoot inbox events",
                json_response(
                    "Stored, or acknowledged and ignored", "ChatwootWebhookAccepted", False
                ),
                merge(
                    WEBHOOK,
                    {
                        401: ["invalid secret", "invalid signature", "stale timestamp"],
                        404: ["integration not found"],
                    },
                ),
                [
                    path_param("bridge_integration_id", "the integration id"),
                    path_param("secret", "the unguessable path secret"),
                    header_param(
                        "X-Chatwoot-Signature",
                        'sha256=<HMAC-SHA256 of "{timestamp}.{raw body}", inbox secret>',
                    ),
                    header_param("X-Chatwoot-Timestamp", "unix seconds; older than 5 minutes: 401"),
                ],
                "Chatwoot v4.13+ signs its webhooks; unsigned ones rely on the path secret.",
            )
        },
    }


def _plain(
    op_id: str, summary: str, response: Schema, errors: dict[int, list[str]] | None = None
) -> Schema:
    return operation(op_id, summary, "operations", {200: response}, errors or {}, secured=False)


def _operations() -> dict[str, Schema]:
    ready = _plain(
        "readyz", "The database and Redis answer", json_response("Ready", "Ready", False)
    )
    ready["responses"]["503"] = json_response(
        "A check failed (marked `unavailable`)", "Ready", False
    )
    return {
        "/": {
            "get": _plain(
                "statusPage",
                "The status page (HTML; paste an account token)",
                text_response("The page", "text/html"),
            )
        },
        "/healthz": {
            "get": _plain("healthz", "The process is up", json_response("Up", "Health", False))
        },
        "/readyz": {"get": ready},
        "/metrics": {
            "get": _plain(
                "metrics", "Prometheus text exposition", text_response("Metrics", "text/plain")
            )
        },
        "/openapi.json": {
            "get": _plain(
                "openapi",
                "This document",
                {
                    "description": "OpenAPI 3.1",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
            )
        },
        "/docs": {
            "get": _plain(
                "docs", "This document as an HTML page", text_response("The reference", "text/html")
            )
        },
    }


def paths() -> dict[str, Schema]:
    return {**_instances(), **_chatwoot(), **_webhooks(), **_operations()}
