"""``GET /openapi.json`` and ``GET /docs``: a valid OpenAPI 3.1 document of every route.

Error messages: every message of docs/api.md's error tables must be in the document under its
status (placeholders may be named differently: ``<field>`` and ``<parameter>`` are the same
hole); every ``/api`` operation documents the envelope of each auth, rate-limit and module
error it can answer; and the errors the app really answers for a few requests are among the
messages the document gives for that operation and status.
"""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from starlette.routing import Route
from starlette.testclient import TestClient

from app.api.auth import INVALID_TOKEN, MISSING_TOKEN, WRONG_INSTANCE
from app.api.errors import INSTANCE_NOT_FOUND
from app.api.middleware import GATE_MESSAGE, RATE_LIMITED
from tests.api.helpers import auth, create_instance, error_message

ROOT = Path(__file__).resolve().parents[2]
API_DOC = ROOT / "docs" / "api.md"
MESSAGE_ROW = re.compile(r"^\| ([1-5]\d\d) \| `([^`]+)` \|", re.MULTILINE)
PLACEHOLDER = re.compile(r"<[^<>]+>")
METHODS = ("get", "post", "put", "patch", "delete")
ERROR_REF = "#/components/schemas/ErrorEnvelope"

# routes of issue 10 that another change adds; the document describes them from API.md already
ADDED_BY_ISSUE_10 = {
    ("GET", "/api/chatwoot/failed/{}"),
    ("POST", "/api/chatwoot/retry/{}"),
    ("GET", "/"),
}


def _normalise_path(path: str) -> str:
    return re.sub(r"\{\w+\}", "{}", path)


def _normalise_message(message: str) -> str:
    return PLACEHOLDER.sub("<>", message)


def _fetch(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = response.json()
    return document


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, item[method])
        for path, item in document["paths"].items()
        for method in METHODS
        if method in item
    ]


def _messages(response: dict[str, Any]) -> list[str]:
    examples = response.get("content", {}).get("application/json", {}).get("examples", {})
    return [example["value"]["error"]["message"] for example in examples.values()]


def test_the_document_is_valid_openapi_3_1(client: TestClient) -> None:
    document = _fetch(client)
    assert document["openapi"] == "3.1.0"
    validate(document, cls=OpenAPIV31SpecValidator)  # raises on any violation
    schemes = document["components"]["securitySchemes"]
    assert {(s["type"], s.get("in"), s.get("name"), s.get("scheme")) for s in schemes.values()} == {
        ("apiKey", "header", "token", None),
        ("http", None, None, "bearer"),
        ("apiKey", "query", "token", None),
    }


def test_a_broken_document_is_refused_by_the_validator(client: TestClient) -> None:
    """The validation above can fail: a response without a description is refused."""
    document = _fetch(client)
    del document["paths"]["/healthz"]["get"]["responses"]["200"]["description"]
    with pytest.raises(Exception, match="description"):
        validate(document, cls=OpenAPIV31SpecValidator)


def test_the_document_covers_every_route_the_app_serves(client: TestClient) -> None:
    served = set()
    for route in client.app.routes:  # type: ignore[attr-defined]
        assert isinstance(route, Route)
        served |= {(m, _normalise_path(route.path)) for m in route.methods or () if m != "HEAD"}
    documented = {(m, _normalise_path(p)) for m, p, _ in _operations(_fetch(client))}
    assert served - documented == set(), "routes the document lacks"
    assert documented - served <= ADDED_BY_ISSUE_10, "the document lists routes nobody serves"
    assert len(documented) >= 21


def test_every_error_message_of_docs_api_md_is_in_the_document_with_its_status(
    client: TestClient,
) -> None:
    document = _fetch(client)
    in_document = {
        (int(status), _normalise_message(message))
        for _, _, op in _operations(document)
        for status, response in op["responses"].items()
        for message in _messages(response)
    }
    rows = MESSAGE_ROW.findall(API_DOC.read_text(encoding="utf-8"))
    assert len(rows) > 20, "the error tables of docs/api.md were not found"
    missing = [
        (status, message)
        for status, message in rows
        if (int(status), _normalise_message(message)) not in in_document
    ]
    assert missing == [], "docs/api.md messages the OpenAPI document does not give"


def test_every_error_response_is_the_envelope_and_every_api_route_documents_auth_errors(
    client: TestClient,
) -> None:
    for method, path, op in _operations(_fetch(client)):
        where = f"{method} {path}"
        for status, response in op["responses"].items():
            if int(status) >= 400 and path != "/readyz":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, where
                assert _messages(response), f"{where} {status} names no message"
        if not path.startswith("/api/"):
            assert op["security"] == [], where
            continue
        assert len(op["security"]) == 3, where
        responses = op["responses"]
        assert {MISSING_TOKEN, INVALID_TOKEN} <= set(_messages(responses["401"])), where
        assert RATE_LIMITED in _messages(responses["429"]), where
        if "{instance}" in path or path == "/api/instance/new":
            assert WRONG_INSTANCE in _messages(responses["403"]), where
        if "{instance}" in path:
            assert INSTANCE_NOT_FOUND in _messages(responses["404"]), where
        if path.startswith("/api/chatwoot/"):
            assert GATE_MESSAGE in _messages(responses["503"]), where


def _documented(document: dict[str, Any], method: str, path: str, status: int) -> list[str]:
    response = document["paths"][path][method.lower()]["responses"][str(status)]
    return _messages(response)


def _matches(message: str, documented: list[str]) -> bool:
    patterns = [
        re.escape(PLACEHOLDER.sub("\0", m)).replace("\\\x00", ".+").replace("\0", ".+")
        for m in documented
    ]
    return any(re.fullmatch(p, message, re.DOTALL) for p in patterns)


def test_errors_the_app_answers_are_the_ones_the_document_gives(
    client: TestClient, account_token: str
) -> None:
    document = _fetch(client)
    instance_token = create_instance(client, account_token, "suporte")
    cases = [
        ("GET", "/api/instance/list", "/api/instance/list", {}, None, 401),
        (
            "GET",
            "/api/chatwoot/list/suporte",
            "/api/chatwoot/list/{instance}",
            {"token": "nope-nope"},
            None,
            401,
        ),
        ("POST", "/api/instance/new", "/api/instance/new", auth(instance_token), {}, 403),
        ("POST", "/api/instance/new", "/api/instance/new", auth(account_token), {"name": "x"}, 400),
        (
            "DELETE",
            "/api/instance/delete/other",
            "/api/instance/delete/{instance}",
            auth(account_token),
            None,
            404,
        ),
        (
            "GET",
            "/api/chatwoot/list/suporte",
            "/api/chatwoot/list/{instance}",
            auth(account_token),
            None,
            404,
        ),
        (
            "POST",
            "/api/chatwoot/set/suporte",
            "/api/chatwoot/set/{instance}",
            auth(account_token),
            {"chatwootBaseUrl": 5},
            400,
        ),
        (
            "POST",
            "/webhooks/whatsapp/cloud/suporte",
            "/webhooks/whatsapp/cloud/{instance}",
            {},
            {"object": "whatsapp_business_account"},
            401,
        ),
        (
            "GET",
            "/webhooks/whatsapp/cloud/suporte?hub.mode=subscribe&hub.verify_token=x",
            "/webhooks/whatsapp/cloud/{instance}",
            {},
            None,
            403,
        ),
    ]
    for method, url, path, headers, body, status in cases:
        response = client.request(method, url, headers=headers, json=body)
        message = error_message(response, status)
        documented = _documented(document, method, path, status)
        assert _matches(message, documented), (method, url, message, documented)


def test_the_docs_page_renders_every_operation_without_external_assets(
    client: TestClient,
) -> None:
    document = _fetch(client)
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for method, path, op in _operations(document):
        assert f'id="{op["operationId"]}"' in page
        assert f"<code>{path}</code>" in page, (method, path)
    assert "Instance token does not match this instance" in page
    assert "verify chatwootBaseUrl (&lt;url&gt;)" in page  # messages are shown, and escaped
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name}"' in page
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert links, "the page links its operations"
    assert all(link.startswith(("#", "/")) for link in links), "no external assets"
    assert "<script" not in page


def test_the_templates_ship_in_a_non_editable_install() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["app"]
    templates = sorted((ROOT / "app" / "templates").iterdir())
    assert any(t.name == "docs.html" for t in templates)
    for template in templates:
        relative = template.relative_to(ROOT / "app").as_posix()
        assert any(fnmatch(relative, p) for p in patterns), relative
