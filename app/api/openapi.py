"""``GET /openapi.json``: the OpenAPI 3.1 document of every route (docs/api.md in machine form).

Built from plain data: component schemas live in :mod:`app.api.openapi_schemas`, operations
are listed here with the error messages each one can answer. Error messages are written the
way docs/api.md writes them (``<placeholder>`` for the variable parts); each error response
carries them as examples of the one error envelope.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from app.api.auth import INVALID_TOKEN, MISSING_TOKEN, WRONG_INSTANCE
from app.api.errors import INSTANCE_NOT_FOUND, NO_INTEGRATION
from app.api.middleware import GATE_MESSAGE, RATE_LIMITED
from app.api.openapi_schemas import SCHEMAS, Schema, ref
from app.api.webhook_body import STORAGE_DOWN

VERSION = "0.1.0"
INVALID_BODY = "invalid body: <field>: <problem>"
WEBHOOK_INVALID_BODY = "invalid body: <problem>"
QUEUE_DOWN = "provisioning queue unavailable — try again shortly"

Messages = dict[int, list[str]]
STATUS_TEXT = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Body too large",
    429: "Rate limited",
    502: "Chatwoot unreachable",
    503: "Unavailable",
    504: "Chatwoot timed out",
}

SECURITY_SCHEMES: Schema = {
    "tokenHeader": {"type": "apiKey", "in": "header", "name": "token"},
    "bearerAuth": {"type": "http", "scheme": "bearer"},
    "tokenQuery": {"type": "apiKey", "in": "query", "name": "token"},
}
TOKEN_SECURITY: list[dict[str, list[str]]] = [
    {"tokenHeader": []},
    {"bearerAuth": []},
    {"tokenQuery": []},
]
RATE_HEADERS: Schema = {
    name: {"description": text, "schema": {"type": "integer"}}
    for name, text in [
        ("X-RateLimit-Limit", "requests allowed per minute for this token"),
        ("X-RateLimit-Remaining", "requests left in the current minute"),
        ("X-RateLimit-Reset", "unix seconds when the window resets"),
    ]
}


def merge(*groups: Messages) -> Messages:
    merged: Messages = {}
    for group in groups:
        for status, messages in group.items():
            merged.setdefault(status, [])
            merged[status] += [m for m in messages if m not in merged[status]]
    return dict(sorted(merged.items()))


AUTH: Messages = {401: [MISSING_TOKEN, INVALID_TOKEN], 429: [RATE_LIMITED], 503: [STORAGE_DOWN]}
ACCOUNT_ONLY: Messages = {403: [WRONG_INSTANCE]}
ON_INSTANCE: Messages = {403: [WRONG_INSTANCE], 404: [INSTANCE_NOT_FOUND]}
MODULE: Messages = {503: [GATE_MESSAGE]}
CHATWOOT: Messages = merge(AUTH, ON_INSTANCE, MODULE, {404: [NO_INTEGRATION]})
SET_ERRORS: Messages = {
    400: [
        INVALID_BODY,
        "chatwootBaseUrl is not allowed: <reason>",
        "Chatwoot account or endpoint not found — verify chatwootBaseUrl (<url>) and "
        "chatwootAccountId (<id>). Detail: <detail>",
        "Chatwoot rejected the request as invalid. Detail: <detail>",
    ],
    401: ["Chatwoot rejected the API token — verify chatwootApiToken. Detail: <detail>"],
    403: [
        "Chatwoot denied the request — verify the API token has admin scope on account <id>. "
        "Detail: <detail>"
    ],
    502: ["Chatwoot host unreachable — verify chatwootBaseUrl (<url>). Detail: <detail>"],
    503: [QUEUE_DOWN],
    504: ["Chatwoot did not answer in time — verify chatwootBaseUrl (<url>). Detail: <detail>"],
}
WEBHOOK: Messages = {400: [WEBHOOK_INVALID_BODY], 413: ["body too large"], 503: [STORAGE_DOWN]}
WHATSAPP_WEBHOOK: Messages = merge(WEBHOOK, {404: [INSTANCE_NOT_FOUND]})


def error_response(status: int, messages: list[str]) -> Schema:
    lines = "\n".join(f"- `{m}`" for m in messages)
    examples = {
        f"e{i}": {"value": {"success": False, "error": {"message": m}}}
        for i, m in enumerate(messages, 1)
    }
    content: Schema = {"schema": ref("ErrorEnvelope")}
    if examples:
        content["examples"] = examples
    return {
        "description": f"{STATUS_TEXT.get(status, 'Error')}. Messages:\n{lines}",
        "content": {"application/json": content},
    }


def json_response(description: str, schema: str, rate_limited: bool = True) -> Schema:
    response: Schema = {
        "description": description,
        "content": {"application/json": {"schema": ref(schema)}},
    }
    if rate_limited:
        response["headers"] = RATE_HEADERS
    return response


def text_response(description: str, media_type: str) -> Schema:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


def path_param(name: str, description: str, schema: Schema | None = None) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def query_param(name: str, description: str, schema: Schema) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def header_param(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }


INSTANCE_PARAM = path_param("instance", "the instance name", {"type": "string"})


def operation(
    op_id: str,
    summary: str,
    tag: str,
    success: dict[int, Schema],
    errors: Messages,
    *,
    secured: bool = True,
    params: list[Schema] | None = None,
    body: str | None = None,
    description: str = "",
) -> Schema:
    op: Schema = {"operationId": op_id, "summary": summary, "tags": [tag]}
    if description:
        op["description"] = description
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(body)}},
        }
    op["security"] = TOKEN_SECURITY if secured else []
    responses = {str(status): response for status, response in success.items()}
    responses.update({str(s): error_response(s, m) for s, m in sorted(errors.items())})
    op["responses"] = responses
    return op


@functools.cache
def build_document() -> dict[str, Any]:
    """The whole document (cached: it depends on nothing but this code)."""
    from app.api.openapi_paths import paths  # the operations, kept in their own module

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Wootbridge",
            "version": VERSION,
            "description": (
                "WhatsApp <-> Chatwoot bridge. The management API is wire-compatible with the "
                "Chatwoot module of RyzeAPI. Every error is "
                '`{"success": false, "error": {"message": "<text>"}}`; clients branch on the '
                "HTTP status and the message. Management routes take a token as header "
                "`token`, as `Authorization: Bearer`, or as query parameter `token`."
            ),
        },
        "tags": [
            {"name": "instances", "description": "WhatsApp numbers"},
            {"name": "chatwoot", "description": "the Chatwoot module"},
            {"name": "webhooks", "description": "events received from WhatsApp and Chatwoot"},
            {"name": "operations", "description": "health, metrics, documentation"},
        ],
        "paths": paths(),
        "components": {"schemas": SCHEMAS, "securitySchemes": SECURITY_SCHEMES},
    }


def document() -> dict[str, Any]:
    """A copy of the document that callers may change."""
    return copy.deepcopy(build_document())
