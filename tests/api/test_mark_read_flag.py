"""The integration flag ``markRead`` (issue 11): ``set`` body, ``chatwootMarkRead`` inline on
``instance/new``, shown by ``list`` as ``mark_read``; true unless a request says false."""

from __future__ import annotations

from typing import Any

import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from app.store.db import database
from app.store.models import ChatwootIntegration, Instance
from tests.api.helpers import (
    auth,
    cloud_instance_body,
    create_instance,
    error_message,
    seed_chatwoot,
    set_body,
)
from tests.fakes.chatwoot import FakeChatwoot


def do_set(client: TestClient, token: str, body: dict[str, Any]) -> None:
    response = client.post("/api/chatwoot/set/suporte", json=body, headers=auth(token))
    assert response.status_code == 201, response.text


def listed(client: TestClient, token: str, name: str = "suporte") -> dict[str, Any]:
    response = client.get(f"/api/chatwoot/list/{name}", headers=auth(token))
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def stored(name: str = "suporte") -> bool:
    with database.connection_context():
        row = (
            ChatwootIntegration.select(ChatwootIntegration.mark_read)
            .join(Instance)
            .where(Instance.name == name)
            .get()
        )
        return bool(row.mark_read)


def test_mark_read_is_on_by_default_and_a_set_can_turn_it_off_and_on(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)

    do_set(client, account_token, set_body(chatwoot, account_id, cw_token))
    assert listed(client, account_token)["mark_read"] is True
    do_set(client, account_token, set_body(chatwoot, account_id, cw_token, markRead=False))
    assert listed(client, account_token)["mark_read"] is False
    assert stored() is False
    do_set(client, account_token, set_body(chatwoot, account_id, cw_token, chatwootMarkRead=True))
    assert listed(client, account_token)["mark_read"] is True


def test_chatwoot_mark_read_inline_on_instance_new(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    account_id, cw_token = seed_chatwoot(chatwoot)
    fields = {
        "chatwootEnabled": True,
        "chatwootBaseUrl": chatwoot.base_url,
        "chatwootAccountId": account_id,
        "chatwootApiToken": cw_token,
        "chatwootMarkRead": False,
    }

    body = {**cloud_instance_body(), **fields}

    response = client.post("/api/instance/new", json=body, headers=auth(account_token))

    assert response.status_code == 201, response.text
    assert response.json()["chatwoot"]["status"] == "active"
    assert listed(client, account_token)["mark_read"] is False


@pytest.mark.parametrize("value", ["false", 0, []])
def test_mark_read_must_be_a_boolean(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, value: object
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    body = set_body(chatwoot, account_id, cw_token, markRead=value)

    response = client.post("/api/chatwoot/set/suporte", json=body, headers=auth(account_token))

    message = error_message(response, 400)
    assert message == "invalid body: markRead: must be a boolean"
