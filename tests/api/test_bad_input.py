"""Bad input never answers 5xx (issue 7 item 6): the documented 400, nothing stored or
half-created, and no secret or raw path in any log line, the 500 handler's included."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.datastructures import Secret

from app.config import Settings
from app.management.accounts import create_account
from app.store.db import database
from tests.api.bad_input_stack import (
    GATEWAY_TOKEN,
    Stack,
    chatwoot_fields,
    cloud_fields,
    raw_json,
)
from tests.conftest import SecretLogCapture, make_client
from tests.fakes import gateway_samples
from tests.relay.bridge import text_body

NOT_JSON = "invalid body: body: not valid JSON"
TOO_DEEP = "invalid body: body: nested deeper than 64 levels"
ACCOUNT_ID_RANGE = "invalid body: chatwootAccountId: must be an integer from 1 to 2147483647"
NOT_ALLOWED_SCHEME = "is not allowed: scheme must be http or https"


@pytest.fixture
def stack(store_settings: Settings) -> Iterator[Stack]:
    """The app on SQLite and on PostgreSQL; provisioning is never waited for (no worker)."""
    with database.connection_context():
        _, token = create_account("Acme")
    with make_client(replace(store_settings, set_wait_seconds=0.05)) as client:
        yield Stack(client, token)


@pytest.fixture
def ready(stack: Stack) -> Stack:
    stack.create_instances()
    return stack


def message(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False, body
    text: str = body["error"]["message"]
    return text


def new_body(account_id: Any = 7, name: str = "novo") -> dict[str, Any]:
    return {**cloud_fields(name), **chatwoot_fields(account_id)}


# ---- integers ---------------------------------------------------------------------------------

OUT_OF_RANGE = [
    pytest.param(str(2**31), ACCOUNT_ID_RANGE, id="2^31"),
    pytest.param(str(2**64), ACCOUNT_ID_RANGE, id="2^64"),
    pytest.param("9" * 5000, ACCOUNT_ID_RANGE, id="5000-digits"),
    pytest.param("1e400", ACCOUNT_ID_RANGE, id="1e400"),
    pytest.param("-1", "invalid body: chatwootAccountId: must be greater than 0", id="negative"),
    pytest.param("true", "invalid body: chatwootAccountId: must be an integer", id="boolean"),
    pytest.param("7.5", "invalid body: chatwootAccountId: must be an integer", id="float"),
    pytest.param("NaN", NOT_JSON, id="NaN"),
    pytest.param("Infinity", NOT_JSON, id="Infinity"),
    pytest.param("-Infinity", NOT_JSON, id="minus-Infinity"),
]


@pytest.mark.parametrize(("literal", "expected"), OUT_OF_RANGE)
def test_new_with_bad_account_id_is_400_and_creates_nothing(
    stack: Stack, literal: str, expected: str
) -> None:
    before = stack.snapshot()

    response = stack.new(raw_json(new_body(), chatwootAccountId=literal))

    assert message(response) == expected
    assert stack.snapshot() == before
    assert before.instances == ()


@pytest.mark.parametrize(("literal", "expected"), OUT_OF_RANGE)
def test_set_with_bad_account_id_is_400_and_changes_nothing(
    ready: Stack, literal: str, expected: str
) -> None:
    before = ready.snapshot()
    body = {"chatwootBaseUrl": "https://cw.example.com", "chatwootApiToken": "other-token"}

    response = ready.set(raw_json(body, chatwootAccountId=literal))

    assert message(response) == expected
    assert ready.snapshot() == before


def test_largest_32_bit_account_id_is_stored(stack: Stack) -> None:
    response = stack.new(json.dumps(new_body(2**31 - 1)).encode())

    assert response.status_code == 201, response.text
    listed = stack.client.get("/api/chatwoot/list/novo", headers=stack.headers())
    assert listed.json()["chatwoot_account_id"] == 2**31 - 1


# ---- strings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cloudPhoneNumberId", "1065\u00004035"),
        ("cloudAccessToken", "EAAG\ud800"),
        ("name", "a\u0000b"),
        ("chatwootApiToken", "tok\udfffen"),
        ("chatwootInboxName", "Whats\u0000App"),
        ("chatwootBaseUrl", "https://chat\u0000woot.example.com"),
    ],
)
def test_nul_or_lone_surrogate_in_a_field_is_400_naming_it(
    stack: Stack, field: str, value: str
) -> None:
    response = stack.new(json.dumps({**new_body(), field: value}).encode())

    assert message(response) == (
        f"invalid body: {field}: must not contain NUL or unpaired surrogate characters"
    )
    assert stack.snapshot().instances == ()


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"name": "caf\xe9", "provider": "cloud"}', id="latin-1"),
        pytest.param(b'{"name": "x"} trailing', id="trailing-garbage"),
        pytest.param(b"\x00\x00\x00{", id="nul-bytes"),
    ],
)
def test_undecodable_management_body_is_not_valid_json(stack: Stack, raw: bytes) -> None:
    assert message(stack.new(raw)) == NOT_JSON
    assert stack.snapshot().instances == ()


def test_utf8_encoded_surrogate_is_a_field_error(stack: Stack) -> None:
    """``json.loads`` lets CESU-style surrogates through; the field check catches them."""
    raw = json.dumps({**new_body(), "name": "@"}).encode().replace(b'"@"', b'"\xed\xa0\x80"')

    assert message(stack.new(raw)) == (
        "invalid body: name: must not contain NUL or unpaired surrogate characters"
    )


def test_huge_management_body_is_400(stack: Stack) -> None:
    raw = json.dumps({**new_body(), "padding": "x" * (2 * 1024 * 1024)}).encode()

    assert message(stack.new(raw)) == "invalid body: body: too large"
    assert stack.snapshot().instances == ()


# ---- nesting, on every JSON-reading endpoint --------------------------------------------------

DEEP = [
    pytest.param(b"[" * 20_000 + b"]" * 20_000, NOT_JSON, id="arrays-20000"),
    pytest.param(b'{"a":' * 10_000 + b"1" + b"}" * 10_000, NOT_JSON, id="objects-10000"),
    pytest.param(b'{"a":' * 100 + b"1" + b"}" * 100, TOO_DEEP, id="objects-100"),
    pytest.param(b'{"event": ' + b"[" * 500 + b"]" * 500 + b"}", TOO_DEEP, id="inner-500"),
]
ENDPOINTS = ["new", "set", "cloud", "gateway", "chatwoot"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(("raw", "expected"), DEEP)
def test_deep_nesting_is_400_everywhere(
    ready: Stack, endpoint: str, raw: bytes, expected: str
) -> None:
    before = ready.snapshot()

    response = getattr(ready, endpoint)(raw)

    assert message(response) == expected
    assert ready.snapshot() == before


@pytest.mark.parametrize("endpoint", ["cloud", "gateway", "chatwoot"])
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"object": "whatsapp_business_account", "x": "\xff"}', id="bad-utf-8"),
        pytest.param(b'{"object": NaN}', id="NaN"),
        pytest.param(b"", id="empty"),
    ],
)
def test_undecodable_webhook_is_400_and_stores_nothing(
    ready: Stack, endpoint: str, raw: bytes
) -> None:
    before = ready.snapshot()

    response = getattr(ready, endpoint)(raw)

    assert message(response) == NOT_JSON
    assert ready.snapshot() == before


@pytest.mark.parametrize("endpoint", ["cloud", "gateway", "chatwoot"])
def test_numbers_no_column_holds_are_never_5xx(ready: Stack, endpoint: str) -> None:
    bodies = {
        "cloud": text_body("16505551234", "wamid.N", "oi"),
        "gateway": gateway_samples.webhook_body(
            "message.exchange", gateway_samples.text_data(), "vendas", GATEWAY_TOKEN
        ),
        "chatwoot": {
            "event": "message_created",
            "id": "@@",
            "message_type": "outgoing",
            "content": "reply",
            "conversation": {"id": "@@", "contact_inbox": {"source_id": "5511999998888"}},
        },
    }
    for literal in ["9" * 5000, str(2**64), "1e400", "-" + "9" * 40]:
        raw = json.dumps(bodies[endpoint]).replace('"@@"', literal).encode()
        raw = raw.replace(b'"1749416383"', literal.encode())  # the Cloud timestamp
        raw = raw.replace(b"1777372200", literal.encode())  # the gateway's epoch

        response = getattr(ready, endpoint)(raw)

        assert response.status_code < 500, (literal[:20], response.text)


def test_huge_webhook_is_413(ready: Stack) -> None:
    raw = b'{"x": "' + b"a" * (9 * 1024 * 1024) + b'"}'

    assert message(ready.gateway(raw), 413) == "body too large"


@pytest.mark.parametrize(
    "path",
    [
        "/webhooks/whatsapp/cloud/sup%00orte",
        "/webhooks/whatsapp/gateway/%F0%9F%98%80",
        "/webhooks/chatwoot/int%00x/secret",
        "/api/chatwoot/list/sup%00orte",
        "/api/instance/list?instanceName=%00,suporte",
    ],
)
def test_odd_path_segments_name_nothing(ready: Stack, path: str) -> None:
    method = "GET" if path.startswith("/api/") else "POST"
    response = ready.client.request(method, path, headers=ready.headers(), content=b"{}")

    assert response.status_code < 500, response.text
    if "instanceName" in path:
        assert [i["name"] for i in response.json()["instances"]] == ["suporte"]
    else:
        assert response.status_code == 404, response.text


def test_non_ascii_signature_headers_are_401(ready: Stack) -> None:
    raw = json.dumps(text_body("16505551234", "wamid.X", "oi")).encode()
    latin = "sha256=caf\u00e9".encode("latin-1")
    response = ready.client.post(
        "/webhooks/whatsapp/cloud/suporte",
        content=raw,
        headers=[(b"content-type", b"application/json"), (b"x-hub-signature-256", latin)],
    )

    assert message(response, 401) == "invalid signature"


# ---- NUL and lone surrogates inside valid webhook bodies are stored ---------------------------

ODD = "a\u0000b\ud800c\udfff"
REPLACED = "a\ufffdb\ufffdc\ufffd"


def test_cloud_webhook_with_nul_and_surrogates_is_stored(ready: Stack) -> None:
    body = text_body("16505551234", f"wamid.{ODD}", f"hello {ODD}", name=ODD)

    response = ready.cloud(json.dumps(body).encode())

    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    [event] = ready.events()
    assert REPLACED in event.natural_key
    assert "\u0000" not in event.payload


def test_gateway_webhook_with_nul_and_surrogates_is_stored(ready: Stack) -> None:
    data = gateway_samples.text_data(text=f"oi {ODD}", message_id=f"3EB0{ODD}")
    body = gateway_samples.webhook_body("message.exchange", data, "vendas", GATEWAY_TOKEN)

    response = ready.gateway(json.dumps(body).encode())

    assert response.status_code == 200, response.text
    assert response.json()["stored"] == 1
    [event] = ready.events()
    assert REPLACED in event.natural_key


def test_chatwoot_webhook_with_nul_and_surrogates_is_stored(ready: Stack) -> None:
    body = {
        "event": "message_created",
        "id": 901,
        "message_type": "outgoing",
        "content": f"reply {ODD}",
        "private": False,
        "conversation": {"id": 5, "contact_inbox": {"source_id": f"5511{ODD}"}},
    }

    response = ready.chatwoot(json.dumps(body).encode())

    assert response.status_code == 200, response.text
    assert response.json() == {"stored": 1}
    [event] = ready.events()
    assert event.chat_key == f"5511{REPLACED}"


# ---- URL schemes -----------------------------------------------------------------------------

SCHEMES = ["file:///etc/passwd", "ftp://chatwoot.example.com", "javascript:alert(1)"]


@pytest.mark.parametrize("url", SCHEMES)
def test_set_refuses_non_http_chatwoot_url(ready: Stack, url: str) -> None:
    before = ready.snapshot()
    body = {"chatwootBaseUrl": url, "chatwootAccountId": 3, "chatwootApiToken": "t0ken"}

    response = ready.set(json.dumps(body).encode())

    assert message(response) == f"chatwootBaseUrl {NOT_ALLOWED_SCHEME}"
    assert ready.snapshot() == before


@pytest.mark.parametrize("url", SCHEMES)
@pytest.mark.parametrize(
    ("field", "extra"),
    [
        ("chatwootBaseUrl", chatwoot_fields()),
        ("cloudApiBaseUrl", {}),
    ],
)
def test_new_refuses_non_http_urls_and_creates_nothing(
    stack: Stack, url: str, field: str, extra: dict[str, Any]
) -> None:
    response = stack.new(json.dumps({**cloud_fields("novo"), **extra, field: url}).encode())

    assert message(response) == f"{field} {NOT_ALLOWED_SCHEME}"
    assert stack.snapshot().instances == ()


@pytest.mark.parametrize("url", SCHEMES)
def test_new_refuses_non_http_gateway_url(stack: Stack, url: str) -> None:
    body = {"name": "gw", "provider": "gateway", "gatewayBaseUrl": url, "gatewayToken": "tok3n"}

    assert message(stack.new(json.dumps(body).encode())) == f"gatewayBaseUrl {NOT_ALLOWED_SCHEME}"
    assert stack.snapshot().instances == ()


# ---- the 500 handler -------------------------------------------------------------------------


def _app_lines(logs: SecretLogCapture) -> str:
    """What the app logged: the test's own HTTP client (``httpx``) logs the URLs it calls."""
    return "\n".join(line for line in logs.lines if not line.startswith("httpx "))


def test_500_logs_the_route_template_never_the_path_secret(
    settings: Settings, all_logs: SecretLogCapture
) -> None:
    """A real fault: the database holds secrets written under another ENCRYPTION_KEY (a
    restore with the wrong key). The webhook cannot read its secret and fails with 500."""
    with database.connection_context():
        _, token = create_account("Acme")
    with make_client(replace(settings, set_wait_seconds=0.05)) as client:
        first = Stack(client, token)
        first.create_instances()
    other_key = Secret("A" * 43 + "=")
    with make_client(replace(settings, encryption_key=other_key)) as wrong_key:
        all_logs.lines.clear()
        path = f"/webhooks/chatwoot/{first.integration_id}/{first.webhook_secret}"

        response = wrong_key.post(path + "?token=query-s3cr3t", content=b'{"event": "x"}')

    assert message(response, 500) == "internal error"
    logged = _app_lines(all_logs)
    assert f"POST /webhooks/chatwoot/{first.integration_id}/{{secret}}" in logged
    assert "DecryptionError" in logged
    assert first.webhook_secret not in logged
    assert "query-s3cr3t" not in logged


def test_access_log_has_templates_only(ready: Stack, all_logs: SecretLogCapture) -> None:
    ready.chatwoot(b'{"event": "webwidget_triggered"}')
    ready.client.get("/no/such/path/s3cr3t-typo")
    ready.client.get("/api/chatwoot/list/evil%0Aforged-line", headers=ready.headers())
    ready.client.get("/api/chatwoot/list/suporte", headers=ready.headers())

    access = [line for line in all_logs.lines if line.startswith("wootbridge.access")]
    webhook = f"POST /webhooks/chatwoot/{ready.integration_id}/{{secret}} 200"
    assert any(webhook in line for line in access), access
    assert any("GET (no route) 404" in line for line in access)
    assert any("GET /api/chatwoot/list/{instance} 404" in line for line in access)
    assert any("GET /api/chatwoot/list/suporte 200" in line for line in access)
    assert not any("forged-line" in line for line in all_logs.lines if "wootbridge" in line)
    logged = _app_lines(all_logs)
    assert ready.webhook_secret not in logged
    assert "s3cr3t-typo" not in logged
