"""API.md Authentication, Conventions and Instances: /api/instance/new, list and delete.

Everything goes through the HTTP API; inline Chatwoot activation runs on the real worker
against the fake Chatwoot.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from app.config import Settings
from tests.api.helpers import (
    auth,
    cloud_instance_body,
    create_instance,
    error_message,
    gateway_instance_body,
    seed_chatwoot,
    set_body,
)
from tests.conftest import make_client
from tests.fakes.chatwoot import FakeChatwoot

PUBLIC_URL = "https://bridge.example.com"
RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")

MISSING_TOKEN = "Missing token in header, Authorization header, or query parameter"
INVALID_TOKEN = "Invalid token"
WRONG_INSTANCE = "Instance token does not match this instance"
INSTANCE_NOT_FOUND = "instance not found"
NAME_TAKEN = "Instance name already exists"
NO_INTEGRATION = "no chatwoot integration for this instance"
GATE_MESSAGE = "integration gateway not configured"
TOKEN_REJECTED = "Chatwoot rejected the API token — verify chatwootApiToken. Detail: "

Body = dict[str, Any]


# ---- helpers ----------------------------------------------------------------------------


def assert_error(response: httpx.Response, status: int, message: str) -> None:
    """The response is the error envelope with exactly this status and message."""
    assert response.status_code == status, response.text
    assert response.json() == {"success": False, "error": {"message": message}}


def assert_error_prefix(response: httpx.Response, status: int, prefix: str) -> str:
    """The response is the error envelope; its message starts with ``prefix``."""
    message = error_message(response, status)
    assert message.startswith(prefix), message
    return message


def new(client: TestClient, token: str, body: Any) -> httpx.Response:
    response: httpx.Response = client.post("/api/instance/new", json=body, headers=auth(token))
    return response


def listed(client: TestClient, token: str, query: str = "") -> dict[str, Any]:
    response = client.get(f"/api/instance/list{query}", headers=auth(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def listed_names(client: TestClient, token: str, query: str = "") -> list[str]:
    return sorted(item["name"] for item in listed(client, token, query)["instances"])


def assert_recent_rfc3339(value: str) -> None:
    assert RFC3339_UTC.fullmatch(value), value
    stamp = dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert abs((dt.datetime.now(dt.UTC) - stamp).total_seconds()) < 120


def chatwoot_fields(fake: FakeChatwoot, account_id: int, token: str, **extra: Any) -> Body:
    """The chatwoot* fields of /api/instance/new for the fake Chatwoot."""
    fields: Body = {
        "chatwootEnabled": True,
        "chatwootBaseUrl": fake.base_url,
        "chatwootAccountId": account_id,
        "chatwootApiToken": token,
        "chatwootInboxName": "WhatsApp - Orion",
    }
    fields.update(extra)
    return fields


def without(body: Body, field: str) -> Body:
    return {key: value for key, value in body.items() if key != field}


# ---- POST /api/instance/new: happy paths ---------------------------------------------------


def test_new_cloud_instance_201_body_as_documented(client: TestClient, account_token: str) -> None:
    response = new(client, account_token, cloud_instance_body("suporte"))

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"success", "message", "instance"}
    assert body["success"] is True
    assert body["message"] == "Instance created"
    instance = body["instance"]
    assert set(instance) == {"name", "token", "provider", "webhookUrl", "verifyToken", "createdAt"}
    assert instance["name"] == "suporte"
    assert instance["provider"] == "cloud"
    assert instance["webhookUrl"] == f"{PUBLIC_URL}/webhooks/whatsapp/cloud/suporte"
    assert isinstance(instance["token"], str)
    assert len(instance["token"]) >= 16
    assert instance["token"] != account_token
    assert isinstance(instance["verifyToken"], str)
    assert len(instance["verifyToken"]) >= 16, "a generated verify token must be unguessable"
    assert_recent_rfc3339(instance["createdAt"])


def test_new_cloud_instance_generates_distinct_verify_tokens(
    client: TestClient, account_token: str
) -> None:
    first = new(client, account_token, cloud_instance_body("one")).json()["instance"]
    second = new(client, account_token, cloud_instance_body("two")).json()["instance"]

    assert first["verifyToken"] != second["verifyToken"]
    assert first["token"] != second["token"]


def test_new_cloud_instance_echoes_given_verify_token(
    client: TestClient, account_token: str
) -> None:
    body = cloud_instance_body("suporte", cloudVerifyToken="my-meta-verify-token")

    response = new(client, account_token, body)

    assert response.status_code == 201, response.text
    assert response.json()["instance"]["verifyToken"] == "my-meta-verify-token"


def test_new_gateway_instance_201_body_as_documented(
    client: TestClient, account_token: str
) -> None:
    body = gateway_instance_body("vendas", gatewayInstance="upstream-vendas")

    response = new(client, account_token, body)

    assert response.status_code == 201, response.text
    payload = response.json()
    assert set(payload) == {"success", "message", "instance"}
    assert payload["success"] is True
    assert payload["message"] == "Instance created"
    instance = payload["instance"]
    assert set(instance) == {"name", "token", "provider", "webhookUrl", "createdAt"}
    assert instance["name"] == "vendas"
    assert instance["provider"] == "gateway"
    assert instance["webhookUrl"] == f"{PUBLIC_URL}/webhooks/whatsapp/gateway/vendas"
    assert isinstance(instance["token"], str)
    assert len(instance["token"]) >= 16
    assert_recent_rfc3339(instance["createdAt"])


@pytest.mark.parametrize("name", ["a", "Sup_port-1", "X" * 64, "0123456789"])
def test_new_accepts_every_name_of_the_pattern(
    client: TestClient, account_token: str, name: str
) -> None:
    response = new(client, account_token, gateway_instance_body(name))

    assert response.status_code == 201, response.text
    assert response.json()["instance"]["webhookUrl"] == (
        f"{PUBLIC_URL}/webhooks/whatsapp/gateway/{name}"
    )
    assert listed_names(client, account_token) == [name]


def test_returned_instance_token_works_on_its_instance(
    client: TestClient, account_token: str
) -> None:
    instance_token = create_instance(client, account_token, "suporte")

    own = client.get("/api/chatwoot/list/suporte", headers=auth(instance_token))

    assert_error(own, 404, NO_INTEGRATION)
    assert listed_names(client, instance_token) == ["suporte"]


def test_custom_token_is_the_instance_token(client: TestClient, account_token: str) -> None:
    custom = "my-custom-instance-token-0001"

    response = new(client, account_token, cloud_instance_body("suporte", token=custom))

    assert response.status_code == 201, response.text
    assert response.json()["instance"]["token"] == custom
    assert_error(
        client.get("/api/chatwoot/list/suporte", headers=auth(custom)), 404, NO_INTEGRATION
    )
    body = listed(client, custom)
    assert body["message"] == "1 Instance found"
    assert [item["name"] for item in body["instances"]] == ["suporte"]


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"chatwootEnabled": False},
        {
            "chatwootEnabled": False,
            "chatwootBaseUrl": "https://chatwoot.example.com",
            "chatwootAccountId": 5,
            "chatwootApiToken": "sk_live_abc123",
        },
    ],
    ids=["flag-absent", "flag-false", "flag-false-with-fields"],
)
def test_no_chatwoot_key_unless_chatwoot_enabled(
    client: TestClient, account_token: str, extra: Body
) -> None:
    response = new(client, account_token, cloud_instance_body("suporte", **extra))

    assert response.status_code == 201, response.text
    assert "chatwoot" not in response.json()
    [item] = listed(client, account_token)["instances"]
    assert item["chatwoot"]["enabled"] is False


# ---- POST /api/instance/new: validation -----------------------------------------------------

CLOUD = cloud_instance_body("suporte")
GATEWAY = gateway_instance_body("vendas")
CHATWOOT_OK = {
    "chatwootEnabled": True,
    "chatwootBaseUrl": "https://chatwoot.example.com",
    "chatwootAccountId": 5,
    "chatwootApiToken": "sk_live_abc123",
}

INVALID_BODIES: list[tuple[str, Body, str]] = [
    *[(f"cloud-missing-{f}", without(CLOUD, f), f) for f in CLOUD],
    *[(f"gateway-missing-{f}", without(GATEWAY, f), f) for f in GATEWAY],
    ("name-number", {**CLOUD, "name": 123}, "name"),
    ("name-space", {**CLOUD, "name": "a b"}, "name"),
    ("name-65-chars", {**CLOUD, "name": "a" * 65}, "name"),
    ("name-empty", {**CLOUD, "name": ""}, "name"),
    ("name-slash", {**CLOUD, "name": "a/b"}, "name"),
    ("name-dot", {**CLOUD, "name": "sup.porte"}, "name"),
    ("provider-unknown", {**CLOUD, "provider": "x"}, "provider"),
    ("provider-number", {**CLOUD, "provider": 1}, "provider"),
    ("token-number", {**CLOUD, "token": 12345678}, "token"),
    (
        "cloudPhoneNumberId-number",
        {**CLOUD, "cloudPhoneNumberId": 106540352242922},
        "cloudPhoneNumberId",
    ),
    ("cloudAccessToken-number", {**CLOUD, "cloudAccessToken": 7}, "cloudAccessToken"),
    ("cloudAppSecret-list", {**CLOUD, "cloudAppSecret": ["x"]}, "cloudAppSecret"),
    ("cloudVerifyToken-number", {**CLOUD, "cloudVerifyToken": 5}, "cloudVerifyToken"),
    ("gatewayBaseUrl-no-scheme", {**GATEWAY, "gatewayBaseUrl": "gw.example.com"}, "gatewayBaseUrl"),
    ("gatewayBaseUrl-number", {**GATEWAY, "gatewayBaseUrl": 42}, "gatewayBaseUrl"),
    ("gatewayToken-number", {**GATEWAY, "gatewayToken": 42}, "gatewayToken"),
    ("gatewayInstance-number", {**GATEWAY, "gatewayInstance": 7}, "gatewayInstance"),
    ("chatwootEnabled-string", {**CLOUD, "chatwootEnabled": "true"}, "chatwootEnabled"),
    ("chatwootEnabled-number", {**CLOUD, "chatwootEnabled": 1}, "chatwootEnabled"),
    (
        "chatwootSignMessages-string",
        {**CLOUD, **CHATWOOT_OK, "chatwootSignMessages": "yes"},
        "chatwootSignMessages",
    ),
    (
        "chatwootReopenResolved-number",
        {**CLOUD, **CHATWOOT_OK, "chatwootReopenResolved": 1},
        "chatwootReopenResolved",
    ),
]


@pytest.mark.parametrize(
    ("body", "field"),
    [pytest.param(body, field, id=case) for case, body, field in INVALID_BODIES],
)
def test_new_rejects_invalid_field_and_creates_nothing(
    client: TestClient, account_token: str, body: Body, field: str
) -> None:
    response = new(client, account_token, body)

    assert_error_prefix(response, 400, f"invalid body: {field}: ")
    assert listed(client, account_token)["message"] == "0 Instances found"


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(
            lambda c, h: c.post("/api/instance/new", content=b"{not json", headers=h), id="not-json"
        ),
        pytest.param(
            lambda c, h: c.post("/api/instance/new", json=[CLOUD], headers=h), id="json-array"
        ),
        pytest.param(
            lambda c, h: c.post("/api/instance/new", json="suporte", headers=h), id="json-string"
        ),
        pytest.param(
            lambda c, h: c.post("/api/instance/new", json=None, headers=h), id="json-null"
        ),
        pytest.param(lambda c, h: c.post("/api/instance/new", content=b"", headers=h), id="empty"),
    ],
)
def test_new_rejects_body_that_is_not_a_json_object(
    client: TestClient,
    account_token: str,
    send: Callable[[TestClient, dict[str, str]], httpx.Response],
) -> None:
    response = send(client, auth(account_token))

    assert_error_prefix(response, 400, "invalid body: ")
    assert listed(client, account_token)["message"] == "0 Instances found"


def test_new_ignores_unknown_fields(client: TestClient, account_token: str) -> None:
    response = new(client, account_token, cloud_instance_body("suporte", color="blue", n=[1]))

    assert response.status_code == 201, response.text


def test_duplicate_name_is_409_whatever_the_provider(
    client: TestClient, account_token: str
) -> None:
    create_instance(client, account_token, "suporte")

    again = new(client, account_token, cloud_instance_body("suporte"))
    as_gateway = new(client, account_token, gateway_instance_body("suporte"))

    assert_error(again, 409, NAME_TAKEN)
    assert_error(as_gateway, 409, NAME_TAKEN)
    [item] = listed(client, account_token)["instances"]
    assert item["provider"] == "cloud"


def test_duplicate_name_is_409_across_accounts(
    client: TestClient, account_token: str, other_account_token: str
) -> None:
    create_instance(client, account_token, "suporte")

    response = new(client, other_account_token, gateway_instance_body("suporte"))

    assert_error(response, 409, NAME_TAKEN)
    assert listed(client, other_account_token)["message"] == "0 Instances found"
    assert listed_names(client, account_token) == ["suporte"]


def test_duplicate_custom_token_is_409(
    client: TestClient, account_token: str, other_account_token: str
) -> None:
    custom = "shared-custom-token-0001"
    assert new(client, account_token, cloud_instance_body("one", token=custom)).status_code == 201

    same_account = new(client, account_token, cloud_instance_body("two", token=custom))
    other_account = new(client, other_account_token, cloud_instance_body("three", token=custom))

    for response in (same_account, other_account):
        assert response.status_code == 409, response.text
        assert response.json()["success"] is False
        assert response.json()["error"]["message"]
    assert listed_names(client, account_token) == ["one"]
    assert listed_names(client, other_account_token) == []
    assert listed_names(client, custom) == ["one"], "the token still means the first instance"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (gateway_instance_body("vendas", gatewayBaseUrl="http://127.0.0.1:8080"), "gatewayBaseUrl"),
        (gateway_instance_body("vendas", gatewayBaseUrl="http://10.1.2.3"), "gatewayBaseUrl"),
        (cloud_instance_body("suporte", cloudApiBaseUrl="http://127.0.0.1:9"), "cloudApiBaseUrl"),
    ],
    ids=["gateway-loopback", "gateway-private", "cloud-api-loopback"],
)
def test_private_provider_url_refused_without_allow_private_urls(
    settings: Settings, account_token: str, body: Body, field: str
) -> None:
    with make_client(replace(settings, allow_private_urls=False)) as strict:
        response = new(strict, account_token, body)

        assert_error_prefix(response, 400, f"{field} is not allowed: ")
        assert listed(strict, account_token)["message"] == "0 Instances found"


def test_private_gateway_url_accepted_when_allowed(client: TestClient, account_token: str) -> None:
    body = gateway_instance_body("vendas", gatewayBaseUrl="http://127.0.0.1:8080")

    assert new(client, account_token, body).status_code == 201


def test_instance_token_cannot_create_instances(client: TestClient, account_token: str) -> None:
    instance_token = create_instance(client, account_token, "suporte")

    response = new(client, instance_token, cloud_instance_body("another"))

    assert_error(response, 403, WRONG_INSTANCE)
    assert listed_names(client, account_token) == ["suporte"]


# ---- POST /api/instance/new: inline Chatwoot activation ------------------------------------


def test_inline_activation_active(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    account_id, cw_token = seed_chatwoot(chatwoot)
    body = cloud_instance_body(
        "suporte",
        **chatwoot_fields(
            chatwoot,
            account_id,
            cw_token,
            chatwootSignMessages=True,
            chatwootIgnoreGroups=False,
            chatwootStartAsPending=True,
            chatwootReopenResolved=True,
        ),
    )

    response = new(client, account_token, body)

    assert response.status_code == 201, response.text
    payload = response.json()
    assert set(payload) == {"success", "message", "instance", "chatwoot"}
    assert payload["message"] == "Instance created"
    [inbox] = chatwoot.inboxes.values()
    integration_id = payload["chatwoot"]["bridge_integration_id"]
    assert payload["chatwoot"] == {
        "status": "active",
        "bridge_integration_id": integration_id,
        "chatwoot_inbox_id": inbox["id"],
    }
    assert integration_id.startswith("int_")
    assert inbox["name"] == "WhatsApp - Orion"
    assert inbox["webhook_url"].startswith(f"{PUBLIC_URL}/webhooks/chatwoot/{integration_id}/")
    shown = client.get("/api/chatwoot/list/suporte", headers=auth(account_token)).json()
    assert shown["status"] == "active"
    assert shown["bridge_integration_id"] == integration_id
    assert shown["chatwoot_inbox_id"] == inbox["id"]
    assert shown["chatwoot_account_id"] == account_id
    assert shown["chatwoot_inbox_name"] == "WhatsApp - Orion"
    assert shown["sign_messages"] is True
    assert shown["ignore_groups"] is False
    assert shown["start_as_pending"] is True
    assert shown["reopen_resolved"] is True
    [item] = listed(client, account_token)["instances"]
    assert item["chatwoot"] == {"enabled": True, "status": "active"}


def test_inline_activation_defaults_inbox_name_and_flags(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    account_id, cw_token = seed_chatwoot(chatwoot)
    fields = without(chatwoot_fields(chatwoot, account_id, cw_token), "chatwootInboxName")

    response = new(client, account_token, gateway_instance_body("vendas", **fields))

    assert response.status_code == 201, response.text
    assert response.json()["chatwoot"]["status"] == "active"
    [inbox] = chatwoot.inboxes.values()
    assert inbox["name"] == "vendas"
    shown = client.get("/api/chatwoot/list/vendas", headers=auth(account_token)).json()
    assert shown["chatwoot_inbox_name"] == "vendas"
    flags = ("sign_messages", "ignore_groups", "start_as_pending", "reopen_resolved")
    assert {flag: shown[flag] for flag in flags} == dict.fromkeys(flags, False)


def test_inline_activation_with_rejected_token_still_creates_then_set_fixes_it(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    account_id, cw_token = seed_chatwoot(chatwoot)
    body = cloud_instance_body(
        "suporte", **chatwoot_fields(chatwoot, account_id, "not-a-valid-chatwoot-token")
    )

    response = new(client, account_token, body)

    assert response.status_code == 201, response.text
    payload = response.json()
    assert payload["success"] is True
    assert payload["message"] == "Instance created"
    assert payload["instance"]["name"] == "suporte"
    failed = payload["chatwoot"]
    assert set(failed) == {"status", "error", "bridge_integration_id"}
    assert failed["status"] == "error"
    assert failed["error"].startswith(TOKEN_REJECTED), failed["error"]
    assert failed["bridge_integration_id"].startswith("int_")
    assert chatwoot.inboxes == {}
    [item] = listed(client, account_token)["instances"]
    assert item["name"] == "suporte"
    assert item["chatwoot"] == {"enabled": True, "status": "error"}
    shown = client.get("/api/chatwoot/list/suporte", headers=auth(account_token)).json()
    assert shown["status"] == "error"
    assert shown["last_error"] == failed["error"]

    fixed = client.post(
        "/api/chatwoot/set/suporte",
        json=set_body(chatwoot, account_id, cw_token),
        headers=auth(account_token),
    )

    assert fixed.status_code == 201, fixed.text
    assert fixed.json()["status"] == "active"
    assert fixed.json()["bridge_integration_id"] == failed["bridge_integration_id"]
    assert len(chatwoot.inboxes) == 1
    [item] = listed(client, account_token)["instances"]
    assert item["chatwoot"] == {"enabled": True, "status": "active"}


def test_inline_activation_with_unreachable_chatwoot_is_201_with_502_text(
    client: TestClient, account_token: str, worker: Worker
) -> None:
    url = FakeChatwoot.unused_url()
    body = cloud_instance_body(
        "suporte",
        chatwootEnabled=True,
        chatwootBaseUrl=url,
        chatwootAccountId=5,
        chatwootApiToken="sk_live_abc123",
    )

    response = new(client, account_token, body)

    assert response.status_code == 201, response.text
    failed = response.json()["chatwoot"]
    assert set(failed) == {"status", "error", "bridge_integration_id"}
    assert failed["status"] == "error"
    prefix = f"Chatwoot host unreachable — verify chatwootBaseUrl ({url}). Detail: "
    assert failed["error"].startswith(prefix), failed["error"]
    assert failed["bridge_integration_id"].startswith("int_")
    assert listed_names(client, account_token) == ["suporte"]


def test_inline_activation_with_module_disabled(
    settings: Settings, account_token: str, chatwoot: FakeChatwoot
) -> None:
    account_id, cw_token = seed_chatwoot(chatwoot)
    body = cloud_instance_body("suporte", **chatwoot_fields(chatwoot, account_id, cw_token))

    with make_client(replace(settings, chatwoot_enabled=False)) as off:
        response = new(off, account_token, body)

        assert response.status_code == 201, response.text
        payload = response.json()
        assert payload["message"] == "Instance created"
        assert payload["chatwoot"]["status"] == "error"
        assert payload["chatwoot"]["error"] == GATE_MESSAGE
        assert listed_names(off, account_token) == ["suporte"]
    assert chatwoot.calls == []
    assert chatwoot.inboxes == {}


# ---- GET /api/instance/list -------------------------------------------------------------


def test_list_counts_and_item_shape(client: TestClient, account_token: str) -> None:
    empty = listed(client, account_token)
    assert empty == {"success": True, "message": "0 Instances found", "instances": []}

    create_instance(client, account_token, "suporte")
    one = listed(client, account_token)
    assert set(one) == {"success", "message", "instances"}
    assert one["success"] is True
    assert one["message"] == "1 Instance found"
    [item] = one["instances"]
    assert set(item) == {"name", "provider", "webhookUrl", "createdAt", "chatwoot"}
    assert item["name"] == "suporte"
    assert item["provider"] == "cloud"
    assert item["webhookUrl"] == f"{PUBLIC_URL}/webhooks/whatsapp/cloud/suporte"
    assert_recent_rfc3339(item["createdAt"])
    assert set(item["chatwoot"]) == {"enabled", "status"}
    assert item["chatwoot"]["enabled"] is False

    assert new(client, account_token, gateway_instance_body("vendas")).status_code == 201
    two = listed(client, account_token)
    assert two["message"] == "2 Instances found"
    by_name = {entry["name"]: entry for entry in two["instances"]}
    assert set(by_name) == {"suporte", "vendas"}
    assert by_name["vendas"]["provider"] == "gateway"
    assert by_name["vendas"]["webhookUrl"] == f"{PUBLIC_URL}/webhooks/whatsapp/gateway/vendas"


def test_list_created_at_matches_creation(client: TestClient, account_token: str) -> None:
    created = new(client, account_token, cloud_instance_body("suporte")).json()["instance"]

    [item] = listed(client, account_token)["instances"]

    assert item["createdAt"] == created["createdAt"]


def test_list_filters_by_instance_name(
    client: TestClient, account_token: str, other_account_token: str
) -> None:
    for name in ("a", "b", "c"):
        create_instance(client, account_token, name)
    create_instance(client, other_account_token, "d")

    two = listed(client, account_token, "?instanceName=a,b")
    one = listed(client, account_token, "?instanceName=c")
    foreign = listed(client, account_token, "?instanceName=d,nope")

    assert two["message"] == "2 Instances found"
    assert sorted(item["name"] for item in two["instances"]) == ["a", "b"]
    assert one["message"] == "1 Instance found"
    assert [item["name"] for item in one["instances"]] == ["c"]
    assert foreign == {"success": True, "message": "0 Instances found", "instances": []}


def test_list_is_per_account(
    client: TestClient, account_token: str, other_account_token: str
) -> None:
    create_instance(client, account_token, "suporte")
    create_instance(client, account_token, "vendas")

    assert listed(client, other_account_token) == {
        "success": True,
        "message": "0 Instances found",
        "instances": [],
    }
    create_instance(client, other_account_token, "globex")
    assert listed_names(client, other_account_token) == ["globex"]
    assert listed_names(client, account_token) == ["suporte", "vendas"]


def test_list_with_instance_token_shows_only_its_instance(
    client: TestClient, account_token: str
) -> None:
    token_a = create_instance(client, account_token, "a")
    create_instance(client, account_token, "b")

    body = listed(client, token_a)

    assert body["message"] == "1 Instance found"
    assert [item["name"] for item in body["instances"]] == ["a"]


# ---- DELETE /api/instance/delete/:instance -------------------------------------------------


def test_delete_instance(client: TestClient, account_token: str) -> None:
    create_instance(client, account_token, "suporte")
    create_instance(client, account_token, "vendas")

    response = client.delete("/api/instance/delete/suporte", headers=auth(account_token))

    assert response.status_code == 200, response.text
    assert response.json() == {
        "success": True,
        "message": "Instance deleted",
        "instance": {"status": "deleted"},
    }
    assert listed_names(client, account_token) == ["vendas"]
    again = client.delete("/api/instance/delete/suporte", headers=auth(account_token))
    assert_error(again, 404, INSTANCE_NOT_FOUND)


def test_delete_unknown_instance_is_404(client: TestClient, account_token: str) -> None:
    response = client.delete("/api/instance/delete/nope", headers=auth(account_token))

    assert_error(response, 404, INSTANCE_NOT_FOUND)


def test_delete_with_instance_token_is_403(client: TestClient, account_token: str) -> None:
    token_a = create_instance(client, account_token, "a")
    create_instance(client, account_token, "b")

    own = client.delete("/api/instance/delete/a", headers=auth(token_a))
    other = client.delete("/api/instance/delete/b", headers=auth(token_a))

    assert_error(own, 403, WRONG_INSTANCE)
    assert_error(other, 403, WRONG_INSTANCE)
    assert listed_names(client, account_token) == ["a", "b"]


def test_delete_other_accounts_instance_is_404(
    client: TestClient, account_token: str, other_account_token: str
) -> None:
    create_instance(client, account_token, "suporte")

    response = client.delete("/api/instance/delete/suporte", headers=auth(other_account_token))

    assert_error(response, 404, INSTANCE_NOT_FOUND)
    assert listed_names(client, account_token) == ["suporte"]


def test_delete_removes_integration_keeps_inbox_and_frees_name_and_token(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    account_id, cw_token = seed_chatwoot(chatwoot)
    body = cloud_instance_body("suporte", **chatwoot_fields(chatwoot, account_id, cw_token))
    created = new(client, account_token, body)
    assert created.status_code == 201, created.text
    assert created.json()["chatwoot"]["status"] == "active"
    old_token = created.json()["instance"]["token"]
    inboxes_before = {key: dict(value) for key, value in chatwoot.inboxes.items()}
    calls_before = len(chatwoot.calls)

    response = client.delete("/api/instance/delete/suporte", headers=auth(account_token))

    assert response.status_code == 200, response.text
    assert response.json() == {
        "success": True,
        "message": "Instance deleted",
        "instance": {"status": "deleted"},
    }
    assert chatwoot.inboxes == inboxes_before, "the Chatwoot inbox must be untouched"
    assert [c.method for c in chatwoot.calls[calls_before:] if c.method != "GET"] == []
    assert_error(client.get("/api/instance/list", headers=auth(old_token)), 401, INVALID_TOKEN)
    assert_error(
        client.get("/api/chatwoot/list/suporte", headers=auth(account_token)),
        404,
        INSTANCE_NOT_FOUND,
    )

    reused = new(client, account_token, gateway_instance_body("suporte"))

    assert reused.status_code == 201, reused.text
    assert reused.json()["instance"]["token"] != old_token
    assert_error(
        client.get("/api/chatwoot/list/suporte", headers=auth(account_token)),
        404,
        NO_INTEGRATION,
    )
    [item] = listed(client, account_token)["instances"]
    assert item["provider"] == "gateway"
    assert item["chatwoot"]["enabled"] is False
    assert_error(client.get("/api/instance/list", headers=auth(old_token)), 401, INVALID_TOKEN)


def test_deleted_name_can_be_taken_by_another_account(
    client: TestClient, account_token: str, other_account_token: str
) -> None:
    create_instance(client, account_token, "suporte")
    assert client.delete("/api/instance/delete/suporte", headers=auth(account_token)).is_success

    response = new(client, other_account_token, cloud_instance_body("suporte"))

    assert response.status_code == 201, response.text
    assert listed_names(client, other_account_token) == ["suporte"]
    assert listed_names(client, account_token) == []


# ---- Authentication -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(lambda c, t: c.get("/api/instance/list", headers={"token": t}), id="token"),
        pytest.param(
            lambda c, t: c.get("/api/instance/list", headers={"Authorization": f"Bearer {t}"}),
            id="bearer",
        ),
        pytest.param(lambda c, t: c.get("/api/instance/list", params={"token": t}), id="query"),
    ],
)
def test_token_accepted_in_every_documented_place(
    client: TestClient,
    account_token: str,
    send: Callable[[TestClient, str], httpx.Response],
) -> None:
    create_instance(client, account_token, "suporte")

    response = send(client, account_token)

    assert response.status_code == 200, response.text
    assert response.json()["message"] == "1 Instance found"


@pytest.mark.parametrize(
    "request_",
    [
        pytest.param(lambda c, h: c.get("/api/instance/list", headers=h), id="list"),
        pytest.param(
            lambda c, h: c.post("/api/instance/new", json=cloud_instance_body(), headers=h),
            id="new",
        ),
        pytest.param(lambda c, h: c.delete("/api/instance/delete/suporte", headers=h), id="delete"),
    ],
)
def test_missing_token_is_401(
    client: TestClient,
    account_token: str,
    request_: Callable[[TestClient, dict[str, str]], httpx.Response],
) -> None:
    create_instance(client, account_token, "suporte")

    assert_error(request_(client, {}), 401, MISSING_TOKEN)
    assert_error(request_(client, {"token": ""}), 401, MISSING_TOKEN)
    assert listed_names(client, account_token) == ["suporte"]


@pytest.mark.parametrize(
    "headers_and_params",
    [
        ({"token": "no-such-token-123456"}, {}),
        ({"Authorization": "Bearer no-such-token-123456"}, {}),
        ({}, {"token": "no-such-token-123456"}),
    ],
    ids=["token", "bearer", "query"],
)
def test_unknown_token_is_401_invalid_token(
    client: TestClient,
    account_token: str,
    headers_and_params: tuple[dict[str, str], dict[str, str]],
) -> None:
    headers, params = headers_and_params
    create_instance(client, account_token, "suporte")

    listing = client.get("/api/instance/list", headers=headers, params=params)
    creating = client.post(
        "/api/instance/new", json=cloud_instance_body("x"), headers=headers, params=params
    )
    deleting = client.delete("/api/instance/delete/suporte", headers=headers, params=params)

    for response in (listing, creating, deleting):
        assert_error(response, 401, INVALID_TOKEN)
    assert listed_names(client, account_token) == ["suporte"]


def test_instance_token_on_another_instance_route_is_403(
    client: TestClient, account_token: str
) -> None:
    token_a = create_instance(client, account_token, "a")
    create_instance(client, account_token, "b")

    response = client.get("/api/chatwoot/list/b", headers=auth(token_a))

    assert_error(response, 403, WRONG_INSTANCE)


def test_other_accounts_instance_is_indistinguishable_from_missing(
    client: TestClient, account_token: str, other_account_token: str
) -> None:
    create_instance(client, account_token, "suporte")

    foreign = client.get("/api/chatwoot/list/suporte", headers=auth(other_account_token))
    missing = client.get("/api/chatwoot/list/nope", headers=auth(other_account_token))

    assert_error(foreign, 404, INSTANCE_NOT_FOUND)
    assert_error(missing, 404, INSTANCE_NOT_FOUND)
