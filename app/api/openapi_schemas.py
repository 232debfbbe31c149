"""Component schemas of the OpenAPI document (``app.api.openapi``), as plain data.

Response schemas list the fields every answer carries as ``required`` and leave the objects
open (no ``additionalProperties: false``) so that a field added later does not break clients
that validate against the document. The error envelope is closed: it is exactly
``{"success": false, "error": {"message": "..."}}``.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

TIMESTAMP: Schema = {
    "type": "string",
    "format": "date-time",
    "description": "RFC 3339 in UTC, e.g. 2026-04-20T10:15:30Z",
}
NULLABLE_TIMESTAMP: Schema = {**TIMESTAMP, "type": ["string", "null"]}
INSTANCE_NAME: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
STATUS: Schema = {
    "type": "string",
    "enum": ["active", "paused", "error", "provisioning"],
    "description": "integration status",
}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Schema], required: list[str] | None = None, **extra: Any) -> Schema:
    """An object schema; ``required`` defaults to every property."""
    schema: Schema = {"type": "object", "properties": properties}
    schema["required"] = list(properties) if required is None else required
    schema.update(extra)
    return schema


def _string(description: str, **extra: Any) -> Schema:
    return {"type": "string", "description": description, **extra}


HEADER_SAFE = "^[\\x21-\\x7e]+$"
"""Tokens Wootbridge passes on in an HTTP header can only be visible ASCII. The server does not
refuse others yet: see the xfail test in tests/api/test_schemathesis.py."""


def _flag(description: str) -> Schema:
    return {"type": "boolean", "description": description}


ERROR_ENVELOPE = obj(
    {
        "success": {"type": "boolean", "const": False},
        "error": obj({"message": {"type": "string"}}, additionalProperties=False),
    },
    additionalProperties=False,
    description="Every error, on every route. Clients branch on the status and the message.",
)

_CLOUD_FIELDS: dict[str, Schema] = {
    "cloudPhoneNumberId": _string("cloud: required; the phone number id", maxLength=64),
    "cloudAccessToken": _string(
        "cloud: required; encrypted at rest", maxLength=2000, pattern=HEADER_SAFE
    ),
    "cloudAppSecret": _string("cloud: required; verifies X-Hub-Signature-256", maxLength=500),
    "cloudVerifyToken": _string("cloud: webhook handshake token; generated when absent"),
    "cloudApiBaseUrl": _string("cloud: Graph API base URL", format="uri"),
    "cloudBusinessAccountId": _string(
        "cloud: the WhatsApp Business Account id; its message templates are synced into the "
        "inbox's template picker",
        pattern="^[0-9]{1,32}$",
    ),
    "cloudMessagesPerSecond": {
        "type": "integer",
        "minimum": 1,
        "maximum": 1000,
        "default": 80,
        "description": "cloud, ours: the number's send pace; sends as this number never exceed "
        "it in any one-second window (Meta's throughput: 80 by default, 20 for a number shared "
        "with the WhatsApp Business app, up to 1000 after Meta's upgrade)",
    },
}
_GATEWAY_FIELDS: dict[str, Schema] = {
    "gatewayBaseUrl": _string("gateway: required; http(s) URL of the gateway", format="uri"),
    "gatewayInstance": _string("gateway: the instance name there; defaults to name"),
    "gatewayToken": _string(
        "gateway: required; encrypted at rest", maxLength=2000, pattern=HEADER_SAFE
    ),
}
_CHATWOOT_FLAGS: dict[str, Schema] = {
    "signMessages": _flag("prefix agent messages with the agent's name"),
    "ignoreGroups": _flag("do not relay group messages"),
    "startAsPending": _flag("new conversations start as pending"),
    "reopenResolved": _flag("a new message reopens a resolved conversation"),
    "markRead": {
        **_flag("ours: agent typing and replies mark the customer's messages read on WhatsApp"),
        "default": True,
    },
}
_SET_FIELDS: dict[str, Schema] = {
    "chatwootBaseUrl": _string("http(s) URL; a trailing / is dropped", format="uri"),
    "chatwootAccountId": {"type": "integer", "minimum": 1, "maximum": 2147483647},
    "chatwootApiToken": _string(
        "an administrator's API token; encrypted at rest", pattern=HEADER_SAFE
    ),
    "inboxName": _string("inbox name; defaults to the instance name", maxLength=255),
    "chatwootInboxName": _string("same as inboxName", maxLength=255),
}

NEW_INSTANCE_REQUEST = obj(
    {
        "name": {**INSTANCE_NAME, "description": "unique across the deployment"},
        "token": _string("a chosen instance token", pattern="^[\\x21-\\x7e]{8,256}$"),
        "provider": {"type": "string", "enum": ["cloud", "gateway"]},
        **_CLOUD_FIELDS,
        **_GATEWAY_FIELDS,
        "chatwootEnabled": _flag("activate the Chatwoot integration in the same request"),
        **{k: v for k, v in _SET_FIELDS.items() if k != "inboxName"},
        **{f"chatwoot{k[0].upper()}{k[1:]}": v for k, v in _CHATWOOT_FLAGS.items()},
    },
    required=["name", "provider"],
    allOf=[
        {
            "if": {"properties": {"provider": {"const": "cloud"}}},
            "then": {"required": ["cloudPhoneNumberId", "cloudAccessToken", "cloudAppSecret"]},
        },
        {
            "if": {"properties": {"provider": {"const": "gateway"}}},
            "then": {"required": ["gatewayBaseUrl", "gatewayToken"]},
        },
        {
            "if": {
                "properties": {"chatwootEnabled": {"const": True}},
                "required": ["chatwootEnabled"],
            },
            "then": {"required": ["chatwootBaseUrl", "chatwootAccountId", "chatwootApiToken"]},
        },
    ],
    description="Cloud instances need the three required cloud* fields, gateway instances "
    "gatewayBaseUrl and gatewayToken; with chatwootEnabled the chatwoot* fields are "
    "validated like the body of set.",
)

INLINE_CHATWOOT = obj(
    {
        "status": STATUS,
        "bridge_integration_id": {"type": "string"},
        "chatwoot_inbox_id": {"type": ["integer", "null"]},
        "error": _string("present when status is error: what set would have answered"),
    },
    required=["status"],
)

NEW_INSTANCE_RESPONSE = obj(
    {
        "success": {"type": "boolean", "const": True},
        "message": {"type": "string", "const": "Instance created"},
        "instance": obj(
            {
                "name": {"type": "string"},
                "token": _string("the instance token, shown once"),
                "provider": {"type": "string", "enum": ["cloud", "gateway"]},
                "webhookUrl": _string("where the WhatsApp side must send its events"),
                "verifyToken": _string("cloud only: the webhook handshake token"),
                "createdAt": TIMESTAMP,
            },
            required=["name", "token", "provider", "webhookUrl", "createdAt"],
        ),
        "chatwoot": ref("InlineChatwoot"),
    },
    required=["success", "message", "instance"],
)

INSTANCE_SUMMARY = obj(
    {
        "name": {"type": "string"},
        "provider": {"type": "string"},
        "webhookUrl": {"type": "string"},
        "createdAt": TIMESTAMP,
        "chatwoot": obj({"enabled": {"type": "boolean"}, "status": {"type": ["string", "null"]}}),
    }
)

INSTANCE_LIST = obj(
    {
        "success": {"type": "boolean", "const": True},
        "message": _string("`N Instances found` (`1 Instance found`)"),
        "instances": {"type": "array", "items": ref("InstanceSummary")},
    }
)

INSTANCE_DELETED = obj(
    {
        "success": {"type": "boolean", "const": True},
        "message": {"type": "string", "const": "Instance deleted"},
        "instance": obj({"status": {"type": "string", "const": "deleted"}}),
    }
)

SET_REQUEST = obj(
    {
        **_SET_FIELDS,
        **_CHATWOOT_FLAGS,
        **{f"chatwoot{k[0].upper()}{k[1:]}": v for k, v in _CHATWOOT_FLAGS.items()},
    },
    required=["chatwootBaseUrl", "chatwootAccountId", "chatwootApiToken"],
)

SET_RESPONSE = obj(
    {
        "instance": {"type": "string"},
        "status": STATUS,
        "bridge_integration_id": {"type": "string"},
        "message": {
            "type": "string",
            "enum": [
                "chatwoot integration activated",
                "chatwoot integration is being provisioned",
            ],
        },
    }
)

RELAY_COUNTERS = obj(
    {
        "pending": {"type": "integer", "minimum": 0},
        "delivered": {"type": "integer", "minimum": 0},
        "failed": {"type": "integer", "minimum": 0},
        "last_delivered_at": NULLABLE_TIMESTAMP,
        "oldest_pending_at": {
            **NULLABLE_TIMESTAMP,
            "description": "when the oldest event still waiting was received; null: none waits",
        },
    },
    required=["pending", "delivered", "failed"],
)

INTEGRATION = obj(
    {
        "instance_name": {"type": "string"},
        "status": STATUS,
        "bridge_integration_id": {"type": "string"},
        "chatwoot_base_url": {"type": "string"},
        "chatwoot_account_id": {"type": "integer"},
        "chatwoot_api_token": {"type": ["string", "null"]},
        "chatwoot_inbox_id": {"type": ["integer", "null"]},
        "chatwoot_inbox_name": {"type": ["string", "null"]},
        "last_error": {"type": ["string", "null"]},
        "created_at": TIMESTAMP,
        "sign_messages": {"type": "boolean"},
        "ignore_groups": {"type": "boolean"},
        "start_as_pending": {"type": "boolean"},
        "reopen_resolved": {"type": "boolean"},
        "mark_read": {"type": "boolean"},
        "webhook_url": _string("Chatwoot's inbox webhook: /webhooks/chatwoot/<id>/<secret>"),
        "relay": ref("RelayCounters"),
    },
    required=[
        "instance_name",
        "status",
        "bridge_integration_id",
        "chatwoot_base_url",
        "chatwoot_account_id",
        "chatwoot_inbox_id",
        "last_error",
        "created_at",
        "sign_messages",
        "ignore_groups",
        "start_as_pending",
        "reopen_resolved",
        "mark_read",
        "webhook_url",
        "relay",
    ],
)

INTEGRATION_DELETED = obj(
    {"message": {"type": "string", "const": "chatwoot integration deactivated"}}
)

PAUSE_STATE = obj({"instance": {"type": "string"}, "status": STATUS})

FAILED_EVENT = obj(
    {
        "id": {"type": "integer"},
        "direction": {"type": "string", "enum": ["inbound", "outbound"]},
        "chat": _string("the customer's number or username as WhatsApp sent it"),
        "kind": {"type": "string"},
        "reason": {"type": "string"},
        "attempts": {"type": "integer", "minimum": 0},
        "first_attempt_at": NULLABLE_TIMESTAMP,
        "last_attempt_at": NULLABLE_TIMESTAMP,
    },
    required=["id", "direction", "reason"],
)

FAILED_PAGE = obj(
    {
        "instance": {"type": "string"},
        "failed": {"type": "array", "items": ref("FailedEvent")},
        "next_before": {
            "type": ["integer", "null"],
            "description": "pass as `before` for the next page; null on the last page",
        },
    }
)

RETRY_REQUEST = obj(
    {
        "ids": {
            "type": "array",
            "items": {"type": "integer", "minimum": 1},
            "maxItems": 1000,
            "description": "the failed events to replay; absent: all of the instance's",
        }
    },
    required=[],
)

RETRY_RESPONSE = obj(
    {
        "instance": {"type": "string"},
        "retrying": {"type": "integer", "minimum": 0},
        "skipped": {
            "type": "array",
            "items": {"type": "integer"},
            "description": "listed ids that are unknown or not failed",
        },
    },
)

HEALTH = obj({"status": {"type": "string", "const": "ok"}})
CHECK: Schema = {"type": "string", "enum": ["ok", "unavailable"]}
READY = obj(
    {
        "status": {"type": "string", "enum": ["ready", "unavailable"]},
        "database": CHECK,
        "redis": CHECK,
    }
)

WEBHOOK_BODY = obj(
    {},
    required=[],
    description="The sender's webhook JSON, taken as it is (see the operation's description).",
)
WEBHOOK_ACCEPTED = obj(
    {
        "received": {"type": "integer", "minimum": 0},
        "stored": {"type": "integer", "minimum": 0},
    }
)
CHATWOOT_WEBHOOK_ACCEPTED = obj(
    {
        "stored": {"type": "integer", "minimum": 0},
        "ignored": _string("why nothing was stored"),
        "conversation_status": _string("a conversation status change recorded"),
        "typing": {
            "type": "string",
            "enum": ["on", "off"],
            "description": "ours: an agent's typing, handed to a worker (never stored)",
        },
        "queued": {"type": "boolean", "description": "whether the typing reached the queue"},
    },
    required=["stored"],
)

SCHEMAS: dict[str, Schema] = {
    "ErrorEnvelope": ERROR_ENVELOPE,
    "NewInstanceRequest": NEW_INSTANCE_REQUEST,
    "NewInstanceResponse": NEW_INSTANCE_RESPONSE,
    "InlineChatwoot": INLINE_CHATWOOT,
    "InstanceSummary": INSTANCE_SUMMARY,
    "InstanceList": INSTANCE_LIST,
    "InstanceDeleted": INSTANCE_DELETED,
    "SetRequest": SET_REQUEST,
    "SetResponse": SET_RESPONSE,
    "RelayCounters": RELAY_COUNTERS,
    "Integration": INTEGRATION,
    "IntegrationDeleted": INTEGRATION_DELETED,
    "PauseState": PAUSE_STATE,
    "FailedEvent": FAILED_EVENT,
    "FailedPage": FAILED_PAGE,
    "RetryRequest": RETRY_REQUEST,
    "RetryResponse": RETRY_RESPONSE,
    "Health": HEALTH,
    "Ready": READY,
    "WebhookBody": WEBHOOK_BODY,
    "WebhookAccepted": WEBHOOK_ACCEPTED,
    "ChatwootWebhookAccepted": CHATWOOT_WEBHOOK_ACCEPTED,
}
