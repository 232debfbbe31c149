"""The bridge under benchmark, seen from outside: its store, an instance wired to the fakes,
signed webhooks for both directions, and the checks that nothing was lost, nothing done twice
and every chat kept its order (the store against the fake Chatwoot's record)."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import peewee

from app.config import get_settings
from app.management.accounts import create_account
from app.store import init_store, migrate
from app.store.db import database
from app.store.models import (
    ALL_MODELS,
    DIRECTION_INBOUND,
    DIRECTION_OUTBOUND,
    EVENT_DELIVERED,
    EVENT_FAILED,
    ChatLink,
    ChatwootIntegration,
    RelayEvent,
)
from bench.stack import ACCESS_TOKEN, APP_SECRET, PHONE_NUMBER_ID, BenchStack
from bench.wrk import HttpRequest
from tests.reference import chatwoot_dir, whatsapp_cloud_dir

CLOUD_TEMPLATE = json.loads((whatsapp_cloud_dir() / "inbound_text.json").read_text())


@dataclass
class Bridge:
    instance: str
    integration_id: str
    chatwoot_webhook_path: str
    inbox_secret: str


def open_store(empty: bool) -> peewee.Database:
    """Open (and migrate) the run's database; ``empty``: drop every table first."""
    db = init_store(get_settings())
    if empty:
        with db.connection_context():
            db.drop_tables(list(reversed(ALL_MODELS)), safe=True)
    migrate(db)
    return db


# Meta's top throughput tier. At the default 80 the pacer (app.integrations.whatsapp.pacing)
# caps one number at 72 sends/s by design, and the outbound drain would measure that cap.
MESSAGES_PER_SECOND = 1000


def wire(stack: BenchStack, name: str = "bench") -> Bridge:
    """An account, and a Cloud instance (paced at :data:`MESSAGES_PER_SECOND`) with an active
    integration to the fakes."""
    with database.connection_context():
        _, stack.account_token = create_account("Bench")
    body = {
        "name": name,
        "provider": "cloud",
        "cloudPhoneNumberId": PHONE_NUMBER_ID,
        "cloudAccessToken": ACCESS_TOKEN,
        "cloudAppSecret": APP_SECRET,
        "cloudApiBaseUrl": stack.graph_url,
        "cloudMessagesPerSecond": MESSAGES_PER_SECOND,
        "chatwootEnabled": True,
        "chatwootBaseUrl": stack.chatwoot_url,
        "chatwootAccountId": stack.chatwoot_account,
        "chatwootApiToken": stack.chatwoot_token,
    }
    created = stack.api("POST", "/api/instance/new", json=body).json()
    assert created["chatwoot"]["status"] == "active", created
    listed = stack.api("GET", f"/api/chatwoot/list/{name}").json()
    integration_id = created["chatwoot"]["bridge_integration_id"]
    with database.connection_context():
        secret = ChatwootIntegration.get_by_id(integration_id).get_secret("inbox_secret")
    path = "/" + listed["webhook_url"].split("/", 3)[3]
    return Bridge(name, integration_id, path, secret or "")


def sign(raw: bytes) -> str:
    return "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()


def customer(chat: int) -> str:
    return f"1650556{chat:04d}"


def content(tag: str, i: int) -> str:
    return f"{tag} {i}"


def cloud_requests(instance: str, tag: str, count: int, chats: int) -> Iterator[HttpRequest]:
    """Distinct signed Cloud webhooks: ``wamid.<tag>.<i>`` in chat ``i % chats``."""
    value = copy.deepcopy(CLOUD_TEMPLATE)
    change = value["entry"][0]["changes"][0]["value"]
    change["contacts"] = [{"profile": {"name": "Customer"}, "wa_id": "@FROM@"}]
    change["messages"] = [
        {"from": "@FROM@", "id": "@ID@", "timestamp": "1749416383", "type": "text"}
        | {"text": {"body": "@TEXT@"}}
    ]
    template = json.dumps(value, separators=(",", ":"))
    path = f"/webhooks/whatsapp/cloud/{instance}"
    for i in range(count):
        raw = (
            template.replace("@FROM@", customer(i % chats))
            .replace("@ID@", f"wamid.{tag}.{i}")
            .replace("@TEXT@", content(tag, i))
            .encode()
        )
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(raw)}
        yield HttpRequest("POST", path, headers, raw)


def agent_replies(stack: BenchStack, tag: str, count: int) -> list[tuple[int, int]]:
    """``count`` agent replies in Chatwoot, round-robin over the linked conversations:
    (conversation id, message id) each, with content ``<tag> <i>``."""
    with database.connection_context():
        links = ChatLink.select().where(ChatLink.conversation_id.is_null(False))
        conversations = sorted(int(link.conversation_id or 0) for link in links)
    account = f"/api/v1/accounts/{stack.chatwoot_account}"
    made = []
    with httpx.Client(base_url=stack.chatwoot_url + account, timeout=30) as http:
        http.headers["api_access_token"] = stack.chatwoot_token
        for i in range(count):
            conversation = conversations[i % len(conversations)]
            answer = http.post(
                f"/conversations/{conversation}/messages",
                json={"content": content(tag, i), "message_type": "outgoing"},
            )
            made.append((conversation, int(answer.json()["id"])))
    return made


def chatwoot_requests(bridge: Bridge, replies: list[tuple[int, int]], tag: str) -> list[Any]:
    """What Chatwoot POSTs for each reply (shaped like our test data's example), signed."""
    template = json.loads((chatwoot_dir() / "webhook-message-created.example.json").read_text())
    with database.connection_context():
        links = ChatLink.select().where(ChatLink.conversation_id.is_null(False))
        source = {int(link.conversation_id or 0): str(link.chat_key) for link in links}
    requests = []
    for i, (conversation, message_id) in enumerate(replies):
        body: dict[str, Any] = copy.deepcopy(template)
        body.update(id=message_id, content=content(tag, i), attachments=[])
        body["conversation"].update(id=conversation, messages=[])
        body["conversation"]["contact_inbox"]["source_id"] = source[conversation]
        raw = json.dumps(body, separators=(",", ":")).encode()
        stamp = str(int(time.time()))
        digest = hmac.new(bridge.inbox_secret.encode(), f"{stamp}.".encode() + raw, hashlib.sha256)
        headers = {
            "Content-Type": "application/json",
            "X-Chatwoot-Timestamp": stamp,
            "X-Chatwoot-Signature": "sha256=" + digest.hexdigest(),
        }
        requests.append(HttpRequest("POST", bridge.chatwoot_webhook_path, headers, raw))
    return requests


def events(integration_id: str, direction: str) -> Any:
    return RelayEvent.select().where(
        (RelayEvent.integration == integration_id) & (RelayEvent.direction == direction)
    )


def count_events(integration_id: str, direction: str, status: str | None = None) -> int:
    query = events(integration_id, direction)
    if status is not None:
        query = query.where(RelayEvent.status == status)
    with database.connection_context():
        return int(query.count())


def delivered_span(integration_id: str, direction: str) -> tuple[float, float]:
    """Epoch seconds of the first and last delivery in that direction."""
    query = events(integration_id, direction).where(RelayEvent.status == EVENT_DELIVERED)
    with database.connection_context():
        first, last = query.select(
            peewee.fn.MIN(RelayEvent.delivered_at), peewee.fn.MAX(RelayEvent.delivered_at)
        ).scalar(as_tuple=True)
    return to_epoch(first), to_epoch(last)


def to_epoch(value: object) -> float:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime), value
    return value.replace(tzinfo=dt.UTC).timestamp()


def failed(integration_id: str) -> int:
    with database.connection_context():
        return int(
            RelayEvent.select()
            .where((RelayEvent.integration == integration_id) & (RelayEvent.status == EVENT_FAILED))
            .count()
        )


def outbound_stored(integration_id: str, message_ids: Iterable[int]) -> list[tuple[int, int, str]]:
    """(event id, Chatwoot message id, chat key) of the stored agent replies among
    ``message_ids``."""
    wanted = {f"cw:{message_id}": message_id for message_id in message_ids}
    query = events(integration_id, DIRECTION_OUTBOUND)
    with database.connection_context():
        rows = query.select(RelayEvent.id, RelayEvent.natural_key, RelayEvent.chat_key)
        return [
            (int(e.id), wanted[str(e.natural_key)], str(e.chat_key))
            for e in rows
            if str(e.natural_key) in wanted
        ]


def inbound_stored(integration_id: str, tag: str) -> list[tuple[int, str, str]]:
    """(event id, wamid, chat key) of the stored inbound messages of a tag."""
    query = events(integration_id, DIRECTION_INBOUND).where(
        RelayEvent.message_id.startswith(f"wamid.{tag}.")
    )
    with database.connection_context():
        rows = query.select(RelayEvent.id, RelayEvent.message_id, RelayEvent.chat_key)
        return [(int(e.id), str(e.message_id), str(e.chat_key)) for e in rows]
