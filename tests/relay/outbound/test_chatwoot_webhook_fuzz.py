"""Fuzzing the Chatwoot inbox webhook parser: lenient at the door, never unsafe.

Properties, for any JSON Chatwoot (or anyone holding the path secret) may post:
- the parser returns a result or raises :class:`ParseError`, nothing else, and raises exactly
  when the body is not an object or has no ``event`` string;
- an :class:`AgentReply` only ever comes from a public ``outgoing``/``template`` message without
  a ``source_id`` (a private note or a message we posted ourselves never reaches WhatsApp), names
  a recipient and in-range ids, and survives the storage round trip;
- whatever is wrong with the attachments, an agent's text is still relayed.

Bodies are arbitrary JSON, the reference example and the bodies ``tests/fakes/chatwoot_webhooks``
builds from a live FakeChatwoot, each mutated.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.relay.messages import ParseError
from app.relay.outbound.chatwoot_webhook import (
    AgentReply,
    AgentTyping,
    ChatwootEvent,
    ConversationStatusChanged,
    Ignored,
    MessageDeleted,
    RetryRequested,
    parse_chatwoot_webhook,
)
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.chatwoot_webhooks import (
    agent_reply,
    message_created_body,
    status_changed_body,
    typing_body,
)
from tests.reference import reference_dir

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
EXAMPLE: dict[str, Any] = json.loads(
    (reference_dir() / "chatwoot" / "webhook-message-created.example.json").read_text()
)
MAX_ID = 2**31 - 1
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64

KEYS = [
    "event",
    "id",
    "message_type",
    "private",
    "source_id",
    "content",
    "content_type",
    "content_attributes",
    "in_reply_to",
    "in_reply_to_external_id",
    "attachments",
    "data_url",
    "file_type",
    "file_size",
    "extension",
    "conversation",
    "contact_inbox",
    "messages",
    "sender",
    "status",
    "changed_attributes",
]
VALUES = [
    "message_created",
    "conversation_status_changed",
    "conversation_updated",
    "outgoing",
    "template",
    "incoming",
    1,
    3,
    "1",
    0,
    -1,
    2**31,
    2**64,
    "9" * 5000,
    "²",
    "http://[::1",
    "https://cw.example/r/x.pdf",
    "4915112345678",
    "\ud800",
    float("nan"),
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(VALUES)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=6)
    ),
    max_leaves=30,
)


def example_bodies() -> dict[str, dict[str, Any]]:
    conversation: dict[str, Any] = copy.deepcopy(EXAMPLE["conversation"])
    status = {
        **conversation,
        "event": "conversation_status_changed",
        "status": "resolved",
        "changed_attributes": [{"status": {"previous_value": "open", "current_value": "resolved"}}],
    }
    quoted = copy.deepcopy(EXAMPLE)
    quoted["content_attributes"] = {"in_reply_to": 9000, "in_reply_to_external_id": "wamid.Q"}
    return {
        "example": copy.deepcopy(EXAMPLE),
        "example_quoted": quoted,
        "example_status": status,
        "example_updated": {**status, "event": "conversation_updated"},
    }


@pytest.fixture(scope="module")
def bodies() -> Iterator[dict[str, dict[str, Any]]]:
    """The example's bodies plus those built from a live FakeChatwoot's state."""
    found = example_bodies()
    with FakeChatwoot() as fake:
        account = fake.add_account("Acme Support")
        token = fake.add_user("Jane Agent", {account: "administrator"}, "jane@acme.example")
        user_id = next(iter(fake.users))
        base = f"{fake.base_url}/api/v1/accounts/{account}"
        inbox = _post(f"{base}/inboxes", token, {"name": "WA", "channel": {"type": "api"}})
        contact = {"inbox_id": inbox["id"], "name": "Maria", "source_id": "4915112345678"}
        _post(f"{base}/contacts", token, contact)
        conv = _post(f"{base}/conversations", token, {"source_id": "4915112345678", **contact})
        display = int(conv["id"])
        text = agent_reply(fake, account, token, display, "Olá **Maria**")
        photo = agent_reply(
            fake, account, token, display, "Foto", attachments=[("p.png", PNG, "image/png")]
        )
        quote = agent_reply(fake, account, token, display, "Esse", in_reply_to=text)
        note = agent_reply(fake, account, token, display, "interno", private=True)
        for name, message_id in (("text", text), ("photo", photo), ("quote", quote)):
            found[f"fake_{name}"] = message_created_body(fake, message_id)
        found["fake_note"] = message_created_body(fake, note)
        found["fake_status"] = status_changed_body(fake, display, "resolved")
        found["fake_typing"] = typing_body(fake, display, user_id)
    yield found


def _post(url: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(url, json=body, headers={"api_access_token": token}, timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def check(body: Any) -> ChatwootEvent | None:
    """Parse ``body`` and assert every property; the result, or ``None`` for a 400."""
    envelope_ok = (
        isinstance(body, dict) and isinstance(body.get("event"), str) and body["event"].strip()
    )
    try:
        result = parse_chatwoot_webhook(body)
    except ParseError:
        assert not envelope_ok, "a body with an event was refused"
        return None
    assert envelope_ok, "a body without an event was accepted"
    if isinstance(result, AgentReply):
        assert body["event"].strip() == "message_created"
        assert body.get("private") in (None, False), "a private note would reach WhatsApp"
        assert body.get("source_id") in (None, ""), "our own message would be echoed back"
        assert body.get("message_type") in ("outgoing", "template", 1, 3, "1", "3")
        assert result.recipient.strip() and (result.content.strip() or result.attachments)
        assert 1 <= result.chatwoot_message_id <= MAX_ID
        assert 1 <= result.conversation_id <= MAX_ID
        assert AgentReply.from_json(result.to_json()) == result
    elif isinstance(result, ConversationStatusChanged):
        assert ConversationStatusChanged.from_json(result.to_json()) == result
    elif isinstance(result, RetryRequested | MessageDeleted):
        check_message_update(body, result)
    elif isinstance(result, AgentTyping):
        assert body["event"].strip() in ("conversation_typing_on", "conversation_typing_off")
        assert body.get("is_private") in (None, False, "false", "0", "f", "off", ""), "a note"
        assert body["user"]["type"] in ("user", "agent_bot"), "a contact's typing would echo"
        assert result.recipient.strip() and 1 <= result.conversation_id <= MAX_ID
    elif isinstance(result, Ignored):
        assert result.reason
    return result


def check_message_update(body: dict[str, Any], result: RetryRequested | MessageDeleted) -> None:
    """Chatwoot's Retry or an agent's delete: only of a public outgoing/template message, never
    a Retry of one we posted ourselves, ids in range, a recipient to name the lane."""
    assert body["event"].strip() == "message_updated"
    assert body.get("private") in (None, False), "a private note would be retried or deleted"
    assert body.get("message_type") in ("outgoing", "template", 1, 3, "1", "3")
    assert result.recipient.strip()
    assert 1 <= result.chatwoot_message_id <= MAX_ID
    assert 1 <= result.conversation_id <= MAX_ID
    if isinstance(result, RetryRequested):
        assert body.get("source_id") in (None, ""), "our own message would be sent again"
    else:
        assert MessageDeleted.from_json(result.to_json()) == result


# ---- arbitrary JSON ----
@FUZZ
@given(json_values)
def test_arbitrary_json(body: Any) -> None:
    check(body)


@FUZZ
@given(st.sampled_from([*VALUES[:3], "message_updated", " "]), json_values)
def test_arbitrary_fields_under_an_event(event: str, fields: Any) -> None:
    body = fields if isinstance(fields, dict) else {"x": fields}
    check({**body, "event": event})


# ---- mutations of real bodies ----
Path = tuple[str | int, ...]


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    found: list[Path] = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


def mutate(body: Any, path: Path, value: Any, delete: bool) -> Any:
    body = copy.deepcopy(body)
    if not path:
        return value
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return body


SIMPLE: list[Any] = [None, "", 0, -1, 2**31, True, [], {}, "x", "9" * 5000, "http://[::1", "\ud800"]


def test_every_single_mutation_of_every_body(bodies: dict[str, dict[str, Any]]) -> None:
    for name, body in bodies.items():
        assert check(body) is not None, name
        for path in paths(body):
            if path:
                check(mutate(body, path, None, delete=True))
            for value in SIMPLE:
                check(mutate(body, path, value, delete=False))


@FUZZ
@given(data=st.data())
def test_several_mutations_of_the_bodies(
    bodies: dict[str, dict[str, Any]], data: st.DataObject
) -> None:
    body = bodies[data.draw(st.sampled_from(sorted(bodies)))]
    for _ in range(data.draw(st.integers(1, 4))):
        path = data.draw(st.sampled_from(paths(body)))
        delete = bool(path) and data.draw(st.booleans())
        body = mutate(body, path, data.draw(json_values), delete)
    check(body)


# ---- the text of a reply survives broken attachments ----
ATTACHMENT_MUTATIONS: list[Callable[[Any], Any]] = [
    lambda value: value,
    lambda value: [value],
    lambda value: [copy.deepcopy(EXAMPLE["attachments"][0]), value],
    lambda value: [{**EXAMPLE["attachments"][0], "data_url": value}],
    lambda value: [{**EXAMPLE["attachments"][0], "file_type": value, "file_size": value}],
]


@FUZZ
@given(st.sampled_from(range(len(ATTACHMENT_MUTATIONS))), json_values)
def test_text_survives_any_attachments(which: int, value: Any) -> None:
    body = copy.deepcopy(EXAMPLE)
    body["attachments"] = ATTACHMENT_MUTATIONS[which](value)
    result = check(body)
    assert isinstance(result, AgentReply)
    assert result.content == EXAMPLE["content"]
