"""``GET /openapi.json`` (the OpenAPI 3.1 document, built in :mod:`app.api.openapi`) and
``GET /docs``: that document as one server-rendered HTML page (no script, no CDN).

The page is a plain reference: every operation with its authentication, parameters, request
body, responses and the error messages of each status, then every component schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from app.api.openapi import build_document

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parents[1] / "templates"))
METHODS = ("get", "post", "put", "patch", "delete")
REF_PREFIX = "#/components/schemas/"


@dataclass(frozen=True)
class ResponseView:
    status: str
    description: str
    schema: str | None
    media_type: str | None
    messages: list[str]


@dataclass(frozen=True)
class OperationView:
    anchor: str
    method: str
    path: str
    summary: str
    description: str
    tag: str
    auth: str
    parameters: list[dict[str, Any]]
    body: str | None
    responses: list[ResponseView] = field(default_factory=list)


def _schema_name(content: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """``(schema name or inline type, media type)`` of a request/response content map."""
    if not content:
        return None, None
    media_type, media = next(iter(content.items()))
    schema = media.get("schema", {})
    if "$ref" in schema:
        return str(schema["$ref"]).removeprefix(REF_PREFIX), media_type
    return str(schema.get("type", "any")), media_type


def _response_view(status: str, response: dict[str, Any]) -> ResponseView:
    schema, media_type = _schema_name(response.get("content"))
    examples = (response.get("content") or {}).get("application/json", {}).get("examples", {})
    messages = [e["value"]["error"]["message"] for e in examples.values()]
    description = str(response.get("description", "")).split("\n", 1)[0]
    return ResponseView(status, description, schema, media_type, messages)


def _auth(op: dict[str, Any]) -> str:
    if op.get("security"):
        return "token (header `token`, `Authorization: Bearer`, or `?token=`)"
    return "none (webhooks authenticate as described)" if "webhooks" in op["tags"] else "none"


def operations(document: dict[str, Any]) -> list[OperationView]:
    views = []
    for path, item in document["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            body, _ = _schema_name((op.get("requestBody") or {}).get("content"))
            views.append(
                OperationView(
                    anchor=op["operationId"],
                    method=method.upper(),
                    path=path,
                    summary=op.get("summary", ""),
                    description=op.get("description", ""),
                    tag=op["tags"][0],
                    auth=_auth(op),
                    parameters=op.get("parameters", []),
                    body=body,
                    responses=[_response_view(s, r) for s, r in op["responses"].items()],
                )
            )
    return views


def page_context(document: dict[str, Any]) -> dict[str, Any]:
    schemas = document["components"]["schemas"]
    return {
        "info": document["info"],
        "tags": document["tags"],
        "operations": operations(document),
        "schemas": {
            name: json.dumps(s, indent=2, ensure_ascii=False) for name, s in schemas.items()
        },
    }


async def docs(request: Request) -> Response:
    return TEMPLATES.TemplateResponse(request, "docs.html", page_context(build_document()))


async def openapi_json(request: Request) -> JSONResponse:
    return JSONResponse(build_document())


routes = [
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
]
