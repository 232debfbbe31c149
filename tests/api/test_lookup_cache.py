"""Cached webhook lookups see every change: the next request of the process that made it, and
every other process once the change's announcement reaches it (milliseconds), or within
``MAX_AGE_SECONDS`` when it could not be announced.

Two app instances share the database and Redis: ``web`` serves the webhooks and keeps its cache
warm, ``other`` makes the changes (in this process; the tests at the end make them in a process
of their own, as another web process or a worker would).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from app.api.lookups import lookups_of
from app.config import Settings
from app.management.accounts import create_account
from app.management.integrations import save_request
from app.management.key_rotation import rotate_keys
from app.management.lookup_cache import (
    MAX_AGE_SECONDS,
    LookupCache,
    WebhookInstance,
    config_channel,
)
from app.management.provisioning import IntegrationRequest
from app.relay.lanes.drain import claim_enqueue
from app.store.db import database
from app.store.models import STATE_ACTIVE, ChatwootIntegration, Instance, get_cipher
from app.store.redis_client import get_redis, redis_key
from tests.api.helpers import auth
from tests.api.test_group_commit import NAME, create_instance, events, post
from tests.conftest import make_client
from tests.processes import run_python
from tests.relay.bridge import text_body


@pytest.fixture
def token(store_settings: Settings) -> str:
    with database.connection_context():
        _, account_token = create_account("Acme")
    return account_token


@pytest.fixture
def web(store_settings: Settings) -> Iterator[TestClient]:
    with make_client(store_settings) as client:
        caching(client)
        yield client


def caching(client: TestClient, within: float = 5.0) -> None:
    """Wait until ``client``'s app caches lookups (its config watch is subscribed), so that
    the tests' first webhook fills the cache rather than passing it by."""
    assert isinstance(client.app, Starlette) and client.portal is not None
    watch, portal = lookups_of(client.app).config, client.portal

    async def token() -> str | None:
        return watch.token()

    deadline = time.monotonic() + within
    while portal.call(token) is None:
        assert time.monotonic() < deadline, "the config watch never subscribed"
        time.sleep(0.01)


@pytest.fixture
def other(store_settings: Settings, token: str) -> Iterator[TestClient]:
    with make_client(store_settings) as client:
        create_instance(client, token)
        yield client


def activate(instance_name: str = NAME) -> str:
    """``set`` through the management write path, then provisioning's success, as a worker
    would record it (both bump the config version)."""
    with database.connection_context():
        instance = Instance.get(Instance.name == instance_name)
        request = IntegrationRequest("https://chatwoot.example.com", 1, "cw-token", "WhatsApp")
        integration, _ = save_request(instance, request)
        ChatwootIntegration.update(state=STATE_ACTIVE, chatwoot_inbox_id=7).where(
            ChatwootIntegration.id == integration.id
        ).execute()
    return str(integration.id)


def webhook(client: TestClient, n: int, secret: str | None = None) -> Any:
    body = text_body("5511987654321", f"wamid.cache-{n}", f"hello {n}")
    return post(client, body) if secret is None else post(client, body, secret)


def test_a_set_elsewhere_is_seen_by_the_next_webhook(web: TestClient, other: TestClient) -> None:
    assert webhook(web, 1).json() == {"received": 1, "stored": 0}  # cached: no integration
    integration_id = activate()
    assert webhook(web, 2).json() == {"received": 1, "stored": 1}
    assert [e.natural_key for e in events(integration_id)] == ["msg:wamid.cache-2"]


def test_pause_elsewhere_stops_enqueueing_at_once(
    web: TestClient, other: TestClient, token: str
) -> None:
    integration_id = activate()
    assert webhook(web, 1).status_code == 200
    assert not claim_enqueue("inbound", integration_id, "5511987654321")  # queued
    get_redis().delete(redis_key("queued", "inbound", integration_id, "5511987654321"))
    response = other.post(f"/api/chatwoot/pause/{NAME}", headers=auth(token))
    assert response.status_code == 200, response.text
    assert webhook(web, 2).json() == {"received": 1, "stored": 1}  # stored, held
    assert claim_enqueue("inbound", integration_id, "5511987654321")  # was not queued


def test_delete_and_recreate_elsewhere_are_seen_by_the_next_webhook(
    web: TestClient, other: TestClient, token: str
) -> None:
    assert webhook(web, 1).status_code == 200
    response = other.delete(f"/api/instance/delete/{NAME}", headers=auth(token))
    assert response.status_code == 200, response.text
    assert webhook(web, 2).status_code == 404
    assert webhook(web, 3).status_code == 404  # "not found" now cached...
    create_instance(other, token, secret="a-new-app-secret")
    assert webhook(web, 4).status_code == 401  # ...but not past a create
    assert webhook(web, 5, secret="a-new-app-secret").status_code == 200


def test_chatwoot_webhook_sees_an_integration_deleted_elsewhere(
    web: TestClient, other: TestClient, token: str
) -> None:
    integration_id = activate()
    path = f"/webhooks/chatwoot/{integration_id}/"
    with database.connection_context():
        secret = ChatwootIntegration.get_by_id(integration_id).get_secret("webhook_secret")
    typing = {"event": "conversation_typing_on"}
    assert web.post(path + "wrong", json=typing).status_code == 401
    assert web.post(path + str(secret), json=typing).status_code == 200
    response = other.delete(f"/api/chatwoot/delete/{NAME}", headers=auth(token))
    assert response.status_code == 200, response.text
    assert web.post(path + str(secret), json=typing).status_code == 404


def test_key_rotation_announces_a_change(web: TestClient, other: TestClient) -> None:
    assert webhook(web, 1).status_code == 200
    subscription = get_redis().pubsub()  # type: ignore[no-untyped-call]
    subscription.subscribe(config_channel())
    assert subscription.get_message(timeout=2)["type"] == "subscribe"
    with database.connection_context():
        rotate_keys(get_cipher())
    announced = subscription.get_message(timeout=2)
    subscription.close()
    assert announced is not None and announced["type"] == "message"
    assert webhook(web, 2).status_code == 200


SET_ELSEWHERE = """
import sys
from app.config import Settings, use_settings
from app.management.integrations import save_request
from app.management.provisioning import IntegrationRequest
from app.store import init_store
from app.store.db import database
from app.store.models import Instance

settings = Settings.from_environ()
use_settings(settings)
init_store(settings)
with database.connection_context():
    instance = Instance.get(Instance.name == sys.argv[1])
    request = IntegrationRequest("https://chatwoot.example.com", 1, "cw-token", "WhatsApp")
    save_request(instance, request)
"""


def set_in_another_process(settings: Settings, **env: str) -> None:
    result = run_python(["-c", SET_ELSEWHERE, NAME], {"DATABASE_URL": settings.database_url, **env})
    assert result.returncode == 0, result.stderr


def stored_after(client: TestClient, first: int, within: float) -> tuple[int, float]:
    """Webhooks from message ``first`` on until one is stored: (its number, seconds taken)."""
    started = time.monotonic()
    n = first
    while webhook(client, n).json()["stored"] == 0:
        assert time.monotonic() - started < within, f"still unseen after {within} s"
        time.sleep(0.01)
        n += 1
    return n, time.monotonic() - started


def test_a_set_in_another_process_is_seen_as_soon_as_announced(
    web: TestClient, other: TestClient, store_settings: Settings
) -> None:
    assert webhook(web, 1).json() == {"received": 1, "stored": 0}  # cached: no integration
    set_in_another_process(store_settings)
    _, waited = stored_after(web, 2, within=MAX_AGE_SECONDS)
    assert waited < 1.0  # the announcement, long before the entry's age runs out


def test_a_change_that_could_not_be_announced_is_seen_within_the_max_age(
    web: TestClient, other: TestClient, store_settings: Settings
) -> None:
    assert webhook(web, 1).json() == {"received": 1, "stored": 0}  # cached: no integration
    set_in_another_process(store_settings, REDIS_URL="redis://127.0.0.1:1/0")
    assert webhook(web, 2).json()["stored"] == 0  # not announced: the cached entry is served
    _, waited = stored_after(web, 3, within=MAX_AGE_SECONDS + 2)
    assert waited > 1.0  # ...until its age ran out


def test_cached_secrets_never_appear_in_a_repr() -> None:
    entry = WebhookInstance("ins_1", NAME, "cloud", "1", None, "app-s3cr3t", "vt-s3cr3t", "")
    cache: LookupCache[str, WebhookInstance] = LookupCache()
    cache.load("k", "token", lambda: entry)
    assert cache.cached("k", "token") == (True, entry)
    assert cache.cached("k", "another token") == (False, None)
    shown = repr(entry) + repr(cache) + str(entry)
    assert "s3cr3t" not in shown
