"""Helpers for API tests: create instances and integrations through the public API."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.testclient import TestClient

from tests.fakes.chatwoot import FakeChatwoot


def auth(token: str) -> dict[str, str]:
    return {"token": token}


def cloud_instance_body(name: str = "suporte", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "provider": "cloud",
        "cloudPhoneNumberId": "106540352242922",
        "cloudAccessToken": f"EAAG-access-{name}-s3cr3t",
        "cloudAppSecret": f"appsecret-{name}-s3cr3t",
    }
    body.update(extra)
    return body


def gateway_instance_body(name: str = "vendas", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "provider": "gateway",
        "gatewayBaseUrl": "https://gateway.example.com",
        "gatewayToken": f"gw-token-{name}-s3cr3t",
    }
    body.update(extra)
    return body


def create_instance(client: TestClient, account_token: str, name: str = "suporte") -> str:
    """Create a cloud instance; returns its instance token."""
    response = client.post(
        "/api/instance/new", json=cloud_instance_body(name), headers=auth(account_token)
    )
    assert response.status_code == 201, response.text
    token: str = response.json()["instance"]["token"]
    return token


def seed_chatwoot(fake: FakeChatwoot, role: str = "administrator") -> tuple[int, str]:
    """An account and a user with ``role`` on it; returns (account id, user token)."""
    account_id = fake.add_account("Acme Support")
    token = fake.add_user("Ana Admin", {account_id: role})
    return account_id, token


def set_body(fake: FakeChatwoot, account_id: int, token: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "chatwootBaseUrl": fake.base_url + "/",
        "chatwootAccountId": account_id,
        "chatwootApiToken": token,
        "inboxName": "WhatsApp - Orion",
    }
    body.update(extra)
    return body


def error_message(response: httpx.Response, status: int) -> str:
    """The message of an error envelope, after checking the status and the envelope's shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"success", "error"}, body
    assert body["success"] is False, body
    assert set(body["error"]) == {"message"}, body
    message: str = body["error"]["message"]
    return message
