"""A wired-up bridge for relay tests: an instance with an active integration, signed webhook
posting, and waiting for the fake Chatwoot to receive what the workers relay."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.testclient import TestClient

from app.store.db import database
from app.store.models import ChatwootIntegration, RelayEvent
from tests.api.helpers import auth, seed_chatwoot
from tests.fakes.chatwoot import FakeChatwoot
from tests.reference import whatsapp_cloud_dir

REFERENCE = whatsapp_cloud_dir()
PHONE_NUMBER_ID = "106540352242922"
CLOUD_ACCESS_TOKEN = "EAAG-test-access-token"
APP_SECRET = "test-app-secret-0123456789"


def reference_body(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((REFERENCE / name).read_text())
    return loaded


def sign(raw: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def text_body(wa_id: str, message_id: str, text: str, name: str = "Customer") -> dict[str, Any]:
    """A Cloud API webhook body with one text message, shaped like Meta's."""
    body = copy.deepcopy(reference_body("inbound_text.json"))
    value = body["entry"][0]["changes"][0]["value"]
    value["contacts"] = [{"profile": {"name": name}, "wa_id": wa_id}]
    value["messages"] = [
        {
            "from": wa_id,
            "id": message_id,
            "timestamp": "1749416383",
            "type": "text",
            "text": {"body": text},
        }
    ]
    return body


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or predicate}")


@dataclass
class CloudBridge:
    client: TestClient
    chatwoot: FakeChatwoot
    account_token: str
    instance: str
    integration_id: str
    inbox_id: int

    def post(self, body: dict[str, Any] | bytes, signature: str | None = None) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {
            "content-type": "application/json",
            "x-hub-signature-256": signature or sign(raw),
        }
        return self.client.post(
            f"/webhooks/whatsapp/cloud/{self.instance}", content=raw, headers=headers
        )

    def messages(self) -> list[dict[str, Any]]:
        """The conversation messages in Chatwoot, without private notes (see :meth:`notes`)."""
        return [m for m in self._all_messages() if not m.get("private")]

    def notes(self) -> list[dict[str, Any]]:
        """The private notes Wootbridge left for the agents (failures, recoveries)."""
        return [m for m in self._all_messages() if m.get("private")]

    def _all_messages(self) -> list[dict[str, Any]]:
        return sorted(self.chatwoot.messages.values(), key=lambda m: int(m["id"]))

    def wait_for_messages(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        wait_until(lambda: len(self.messages()) >= count, timeout, f"{count} Chatwoot messages")
        return self.messages()

    def events(self) -> list[RelayEvent]:
        with database.connection_context():
            return list(
                RelayEvent.select()
                .where(RelayEvent.integration == self.integration_id)
                .order_by(RelayEvent.id)
            )

    def integration(self) -> ChatwootIntegration:
        with database.connection_context():
            found: ChatwootIntegration = ChatwootIntegration.get_by_id(self.integration_id)
            return found

    def wait_for_events(self, status: str, count: int, timeout: float = 15.0) -> None:
        wait_until(
            lambda: sum(1 for e in self.events() if e.status == status) >= count,
            timeout,
            f"{count} events {status}",
        )


def create_with_chatwoot(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    instance_fields: dict[str, Any],
    inbox_name: str,
) -> dict[str, Any]:
    """Create an instance with inline Chatwoot activation; returns the ``chatwoot`` block."""
    account_id, cw_token = seed_chatwoot(chatwoot)
    body: dict[str, Any] = {
        "chatwootEnabled": True,
        "chatwootBaseUrl": chatwoot.base_url,
        "chatwootAccountId": account_id,
        "chatwootApiToken": cw_token,
        "chatwootInboxName": inbox_name,
        **instance_fields,
    }
    response = client.post("/api/instance/new", json=body, headers=auth(account_token))
    assert response.status_code == 201, response.text
    activation: dict[str, Any] = response.json()["chatwoot"]
    assert activation["status"] == "active", activation
    return activation


def make_cloud_bridge(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    graph_url: str = "https://graph.example.com/v23.0",
    name: str = "suporte",
    **integration_flags: bool,
) -> CloudBridge:
    fields: dict[str, Any] = {
        "name": name,
        "provider": "cloud",
        "cloudPhoneNumberId": PHONE_NUMBER_ID,
        "cloudAccessToken": "EAAG-test-access-token",
        "cloudAppSecret": APP_SECRET,
        "cloudApiBaseUrl": graph_url,
        # read receipts (issue 11) are off unless a test asks: each reply would first POST a
        # read to /messages, taking the faults and delays tests inject for the reply itself
        "chatwootMarkRead": False,
        **integration_flags,
    }
    activation = create_with_chatwoot(client, account_token, chatwoot, fields, "WhatsApp")
    return CloudBridge(
        client=client,
        chatwoot=chatwoot,
        account_token=account_token,
        instance=name,
        integration_id=activation["bridge_integration_id"],
        inbox_id=activation["chatwoot_inbox_id"],
    )


@dataclass
class GatewayBridge(CloudBridge):
    """The same bridge over a RyzeAPI-compatible gateway instance."""

    gateway_token: str = "gw-token"

    def post_event(
        self, event: str, data: dict[str, Any], path_event: str | None = None
    ) -> httpx.Response:
        body = {
            "event": event,
            "data": data,
            "instanceData": {
                "baseUrl": "https://gw",
                "instance": self.instance,
                "token": self.gateway_token,
            },
        }
        path = f"/webhooks/whatsapp/gateway/{self.instance}"
        if path_event is not None:
            path += f"/{path_event}"
        return self.client.post(path, json=body)


def make_gateway_bridge(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    gateway_url: str = "https://gateway.example.com",
    name: str = "vendas",
    gateway_token: str = "gw-token",
    **integration_flags: bool,
) -> GatewayBridge:
    fields: dict[str, Any] = {
        "name": name,
        "provider": "gateway",
        "gatewayBaseUrl": gateway_url,
        "gatewayToken": gateway_token,
        **integration_flags,
    }
    activation = create_with_chatwoot(client, account_token, chatwoot, fields, "WhatsApp Web")
    return GatewayBridge(
        client=client,
        chatwoot=chatwoot,
        account_token=account_token,
        instance=name,
        integration_id=activation["bridge_integration_id"],
        inbox_id=activation["chatwoot_inbox_id"],
        gateway_token=gateway_token,
    )
