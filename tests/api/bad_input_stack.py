"""A running app on SQLite or PostgreSQL with one cloud instance, one gateway instance and a
Chatwoot integration, for throwing bad input at every JSON-reading endpoint."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import httpx
from starlette.testclient import TestClient

from app.store.db import database
from app.store.models import ChatwootIntegration, Instance, RelayEvent

APP_SECRET = "bad-input-app-secret-0123456789"
GATEWAY_TOKEN = "bad-input-gateway-token-s3cr3t"
PHONE_NUMBER_ID = "106540352242922"
CHATWOOT_URL = "https://chatwoot.example.com"


def sign(raw: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def cloud_fields(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "cloud",
        "cloudPhoneNumberId": PHONE_NUMBER_ID,
        "cloudAccessToken": "EAAG-bad-input-access",
        "cloudAppSecret": APP_SECRET,
    }


def chatwoot_fields(account_id: Any = 7) -> dict[str, Any]:
    return {
        "chatwootEnabled": True,
        "chatwootBaseUrl": CHATWOOT_URL,
        "chatwootAccountId": account_id,
        "chatwootApiToken": "cw-bad-input-api-token",
    }


def raw_json(body: dict[str, Any], **literals: str) -> bytes:
    """``body`` as JSON with the named fields replaced by raw JSON text (``1e400``, ``NaN``,
    a 5000-digit integer): literals Python's ``json.dumps`` cannot produce."""
    marked = {**body, **{field: f"@@{field}@@" for field in literals}}
    text = json.dumps(marked)
    for field, literal in literals.items():
        text = text.replace(f'"@@{field}@@"', literal)
    return text.encode()


def _rows(query: object) -> tuple[tuple[Any, ...], ...]:
    return tuple(cast("Iterable[tuple[Any, ...]]", query))


@dataclass(frozen=True)
class Snapshot:
    instances: tuple[tuple[Any, ...], ...]
    integrations: tuple[tuple[Any, ...], ...]
    events: int


@dataclass
class Stack:
    client: TestClient
    account_token: str
    integration_id: str = ""
    webhook_secret: str = ""

    def headers(self) -> dict[str, str]:
        return {"token": self.account_token, "content-type": "application/json"}

    def new(self, raw: bytes) -> httpx.Response:
        return self.client.post("/api/instance/new", content=raw, headers=self.headers())

    def set(self, raw: bytes, instance: str = "suporte") -> httpx.Response:
        return self.client.post(
            f"/api/chatwoot/set/{instance}", content=raw, headers=self.headers()
        )

    def cloud(self, raw: bytes, instance: str = "suporte") -> httpx.Response:
        headers = {"content-type": "application/json", "x-hub-signature-256": sign(raw)}
        return self.client.post(
            f"/webhooks/whatsapp/cloud/{instance}", content=raw, headers=headers
        )

    def gateway(self, raw: bytes, instance: str = "vendas") -> httpx.Response:
        headers = {"content-type": "application/json"}
        return self.client.post(
            f"/webhooks/whatsapp/gateway/{instance}", content=raw, headers=headers
        )

    def chatwoot(self, raw: bytes) -> httpx.Response:
        path = f"/webhooks/chatwoot/{self.integration_id}/{self.webhook_secret}"
        return self.client.post(path, content=raw, headers={"content-type": "application/json"})

    def create_instances(self) -> None:
        """``suporte`` (cloud, with an integration) and ``vendas`` (gateway, with one too)."""
        suporte = self.new(json.dumps({**cloud_fields("suporte"), **chatwoot_fields()}).encode())
        assert suporte.status_code == 201, suporte.text
        self.integration_id = suporte.json()["chatwoot"]["bridge_integration_id"]
        gateway = {
            "name": "vendas",
            "provider": "gateway",
            "gatewayBaseUrl": "https://gateway.example.com",
            "gatewayToken": GATEWAY_TOKEN,
            **chatwoot_fields(),
        }
        vendas = self.new(json.dumps(gateway).encode())
        assert vendas.status_code == 201, vendas.text
        listed = self.client.get("/api/chatwoot/list/suporte", headers=self.headers())
        assert listed.status_code == 200, listed.text
        self.webhook_secret = listed.json()["webhook_url"].rsplit("/", 1)[1]

    def snapshot(self) -> Snapshot:
        with database.connection_context():
            instances = _rows(
                Instance.select(Instance.id, Instance.name, Instance.updated_at)
                .order_by(Instance.id)
                .tuples()
            )
            integrations = _rows(
                ChatwootIntegration.select(
                    ChatwootIntegration.id,
                    ChatwootIntegration.chatwoot_base_url,
                    ChatwootIntegration.chatwoot_account_id,
                    ChatwootIntegration.provision_requested,
                    ChatwootIntegration.updated_at,
                )
                .order_by(ChatwootIntegration.id)
                .tuples()
            )
            events = RelayEvent.select().count()
        return Snapshot(instances, integrations, int(events))

    def events(self) -> list[RelayEvent]:
        with database.connection_context():
            return list(RelayEvent.select().order_by(RelayEvent.id))
