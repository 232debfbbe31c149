"""POST /api/chatwoot/set: provisioning through a real worker against the fake Chatwoot."""

from __future__ import annotations

from dramatiq import Worker
from starlette.testclient import TestClient

from tests.api.helpers import auth, create_instance, seed_chatwoot, set_body
from tests.fakes.chatwoot import FakeChatwoot


def test_set_creates_api_inbox_pointing_back_here(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)

    response = client.post(
        "/api/chatwoot/set/suporte",
        json=set_body(chatwoot, account_id, cw_token, signMessages=True),
        headers=auth(account_token),
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["instance"] == "suporte"
    assert body["status"] == "active"
    assert body["message"] == "chatwoot integration activated"
    integration_id = body["bridge_integration_id"]
    assert integration_id.startswith("int_")
    [inbox] = chatwoot.inboxes.values()
    assert inbox["name"] == "WhatsApp - Orion"
    assert inbox["webhook_url"].startswith(
        f"https://bridge.example.com/webhooks/chatwoot/{integration_id}/"
    )
    listed = client.get("/api/chatwoot/list/suporte", headers=auth(account_token)).json()
    assert listed["chatwoot_inbox_id"] == inbox["id"]
    assert listed["chatwoot_api_token"] == cw_token
    assert listed["webhook_url"] == inbox["webhook_url"]
    assert listed["sign_messages"] is True
    assert listed["ignore_groups"] is False
    assert listed["status"] == "active"
