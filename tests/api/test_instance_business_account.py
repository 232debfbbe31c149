"""``cloudBusinessAccountId`` on ``POST /api/instance/new``: stored, validated, kept by ``set``,
and described in the OpenAPI document."""

from __future__ import annotations

from dramatiq import Worker
from starlette.testclient import TestClient

from app.store.db import database
from app.store.models import Instance
from tests.api.helpers import (
    auth,
    cloud_instance_body,
    error_message,
    gateway_instance_body,
    seed_chatwoot,
    set_body,
)
from tests.fakes.chatwoot import FakeChatwoot

WABA_ID = "102290129340398"


def stored(name: str) -> Instance:
    with database.connection_context():
        found: Instance = Instance.get(Instance.name == name)
    return found


def test_the_business_account_id_is_stored(client: TestClient, account_token: str) -> None:
    body = cloud_instance_body(cloudBusinessAccountId=f" {WABA_ID} ")

    response = client.post("/api/instance/new", json=body, headers=auth(account_token))

    assert response.status_code == 201, response.text
    assert stored("suporte").cloud_business_account_id == WABA_ID


def test_it_is_optional(client: TestClient, account_token: str) -> None:
    response = client.post(
        "/api/instance/new", json=cloud_instance_body(), headers=auth(account_token)
    )

    assert response.status_code == 201, response.text
    assert stored("suporte").cloud_business_account_id is None


def test_it_must_be_digits_in_a_string(client: TestClient, account_token: str) -> None:
    for value, problem in [
        ("WABA-1", "must match [0-9]{1,32}"),
        (102290129340398, "must be a string"),
        ("1" * 33, "must be at most 32 characters"),
    ]:
        body = cloud_instance_body(cloudBusinessAccountId=value)
        response = client.post("/api/instance/new", json=body, headers=auth(account_token))
        assert error_message(response, 400) == f"invalid body: cloudBusinessAccountId: {problem}"


def test_a_gateway_instance_ignores_it(client: TestClient, account_token: str) -> None:
    body = gateway_instance_body(cloudBusinessAccountId=WABA_ID)

    response = client.post("/api/instance/new", json=body, headers=auth(account_token))

    assert response.status_code == 201, response.text
    assert stored("vendas").cloud_business_account_id is None


def test_set_keeps_it(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    body = cloud_instance_body(cloudBusinessAccountId=WABA_ID)
    assert (
        client.post("/api/instance/new", json=body, headers=auth(account_token)).status_code == 201
    )
    account_id, user_token = seed_chatwoot(chatwoot)

    response = client.post(
        "/api/chatwoot/set/suporte",
        json=set_body(chatwoot, account_id, user_token),
        headers=auth(account_token),
    )

    assert response.status_code == 201, response.text
    assert stored("suporte").cloud_business_account_id == WABA_ID


def test_the_openapi_document_describes_it(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    [request] = [s for s in schemas.values() if "cloudBusinessAccountId" in s.get("properties", {})]

    field = request["properties"]["cloudBusinessAccountId"]
    assert field["type"] == "string" and field["pattern"] == "^[0-9]{1,32}$"
