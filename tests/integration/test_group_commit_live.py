"""Group commit in a live uvicorn web process: concurrent signed webhooks, each answered 200
only once stored, stored once, in order per chat (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.api.test_group_commit import NAME, events, seed_integration
from tests.integration.stack import Stack
from tests.relay.bridge import APP_SECRET, PHONE_NUMBER_ID, sign, text_body


@pytest.fixture
def stack(store_settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    running = Stack(store_settings, store_settings.database_url, tmp_path)
    try:
        running.start_web()
        yield running
    finally:
        running.stop()


def test_concurrent_webhooks_to_a_live_web_process(stack: Stack) -> None:
    assert stack.http is not None
    body = {
        "name": NAME,
        "provider": "cloud",
        "cloudPhoneNumberId": PHONE_NUMBER_ID,
        "cloudAccessToken": "EAAG-test-access-token",
        "cloudAppSecret": APP_SECRET,
    }
    created = stack.http.post(
        "/api/instance/new", json=body, headers={"token": stack.account_token()}
    )
    assert created.status_code == 201, created.text
    integration_id = seed_integration()
    chats, per_chat = 32, 15
    statuses: list[int] = []

    def customer(n: int) -> None:
        with httpx.Client(base_url=stack.base_url, timeout=30) as http:
            for k in range(per_chat):
                raw = json.dumps(text_body(f"5521900{n:04d}", f"wamid.l{n}-{k}", "hi")).encode()
                headers = {"content-type": "application/json", "x-hub-signature-256": sign(raw)}
                response = http.post(
                    f"/webhooks/whatsapp/cloud/{NAME}", content=raw, headers=headers
                )
                statuses.append(response.status_code)

    threads = [threading.Thread(target=customer, args=(n,)) for n in range(chats)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * (chats * per_chat), stack.log("web.log")
    stored = events(integration_id)
    assert len({e.natural_key for e in stored}) == len(stored) == chats * per_chat
    for n in range(chats):
        keys = [e.natural_key for e in stored if e.chat_key == f"5521900{n:04d}"]
        assert keys == [f"msg:wamid.l{n}-{k}" for k in range(per_chat)]
