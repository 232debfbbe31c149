"""``cloudMessagesPerSecond`` on ``POST /api/instance/new``: an integer from 1 to 1000 (default
80), refused with the documented ``400 invalid body: <field>: <problem>`` otherwise, stored on
the instance and used as the pace of the number's sender."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from app.relay.clients import cloud_pacer, whatsapp_sender
from app.store.db import database
from app.store.models import Instance
from tests.api.helpers import auth, cloud_instance_body, error_message, gateway_instance_body

FIELD = "cloudMessagesPerSecond"


def stored(name: str) -> Instance:
    with database.connection_context():
        found: Instance = Instance.get(Instance.name == name)
        return found


@pytest.mark.parametrize("value", [1, 20, 80, 1000])
def test_a_rate_from_1_to_1000_is_stored_and_paces_the_number(
    client: TestClient, account_token: str, value: int
) -> None:
    response = client.post(
        "/api/instance/new",
        json={**cloud_instance_body(), FIELD: value},
        headers=auth(account_token),
    )
    assert response.status_code == 201, response.text
    instance = stored("suporte")
    assert instance.cloud_messages_per_second == value
    assert cloud_pacer(instance).messages_per_second == value
    assert "RedisPacer" in repr(whatsapp_sender(instance)._pacer)  # type: ignore[attr-defined]


def test_absent_means_80(client: TestClient, account_token: str) -> None:
    response = client.post(
        "/api/instance/new", json=cloud_instance_body(), headers=auth(account_token)
    )
    assert response.status_code == 201, response.text
    instance = stored("suporte")
    assert instance.cloud_messages_per_second is None
    assert cloud_pacer(instance).messages_per_second == 80


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (0, "must be an integer from 1 to 1000"),
        (-5, "must be an integer from 1 to 1000"),
        (1001, "must be an integer from 1 to 1000"),
        (10**60, "must be an integer from 1 to 1000"),
        ("80", "must be an integer"),
        (80.5, "must be an integer"),
        (True, "must be an integer"),
        ([80], "must be an integer"),
    ],
)
def test_anything_else_is_invalid_body(
    client: TestClient, account_token: str, value: Any, problem: str
) -> None:
    response = client.post(
        "/api/instance/new",
        json={**cloud_instance_body(), FIELD: value},
        headers=auth(account_token),
    )
    assert error_message(response, 400) == f"invalid body: {FIELD}: {problem}"
    with database.connection_context():
        assert not Instance.select().where(Instance.name == "suporte").exists()


def test_a_gateway_instance_ignores_it(client: TestClient, account_token: str) -> None:
    response = client.post(
        "/api/instance/new",
        json={**gateway_instance_body(), FIELD: "anything"},
        headers=auth(account_token),
    )
    assert response.status_code == 201, response.text
    assert stored("vendas").cloud_messages_per_second is None


def test_the_openapi_document_describes_it(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    described = [
        s["properties"][FIELD] for s in schema.values() if FIELD in s.get("properties", {})
    ]
    assert described, "cloudMessagesPerSecond is in the instance request schema"
    assert described[0]["type"] == "integer"
    assert (described[0]["minimum"], described[0]["maximum"], described[0]["default"]) == (
        1,
        1000,
        80,
    )
