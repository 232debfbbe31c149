"""Fuzzing the gateway (RyzeAPI) webhook parser: lenient at the door, nothing dropped silently.

Properties, for any JSON a gateway may post:
- the parser returns a :class:`ParsedBody` or raises :class:`ParseError`, nothing else, and
  raises exactly when the body is not an object, has no usable ``event`` string, or its event
  disagrees with the URL's;
- conservation: every ``message.exchange`` record ends as exactly one event or one note; every
  ``message.status`` record as one tick per message id it names or exactly one note, and a body
  of several records gives exactly what its records give one by one;
- every event survives the storage round trip and names a chat and an id.

Bodies are arbitrary JSON, envelopes around JSON built from the gateway's own keys, and
mutations of every sample in ``tests/fakes/gateway_samples.py``.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.relay.inbound.gateway_webhook import parse_gateway_webhook
from app.relay.messages import (
    Event,
    InboundMessage,
    ParsedBody,
    ParseError,
    StatusUpdate,
    event_from_json,
)
from tests.fakes import gateway_samples as gs

EXCHANGE, STATUS = "message.exchange", "message.status"
RECORD_LISTS = ("statuses", "receipts", "records", "items", "data", "messages")
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# every sample builder, called with its defaults: (event, data)
SAMPLES: dict[str, tuple[str, Any]] = {
    name: (STATUS if "status" in name else EXCHANGE, build())
    for name, build in inspect.getmembers(gs, inspect.isfunction)
    if (name.endswith("_data") or name.endswith("_record")) and name != "message_data"
} | {"message_data": (EXCHANGE, gs.message_data())}
SAMPLES["status_list"] = (STATUS, [gs.chat_status_record("a"), gs.status_data(["b", "c"])])
SAMPLES["message_list"] = (EXCHANGE, [gs.text_data(message_id="m1"), gs.image_data()])

KEYS = [
    "id",
    "messageId",
    "message_id",
    "messageIds",
    "message_ids",
    "ids",
    "message",
    "type",
    "direction",
    "fromMe",
    "timestamp",
    "chat",
    "sender",
    "jid",
    "lid",
    "phone",
    "senderPn",
    "senderLid",
    "senderAlt",
    "remoteJid",
    "chat_jid",
    "chatJid",
    "name",
    "content",
    "text",
    "caption",
    "media",
    "url",
    "s3Url",
    "base64",
    "mimetype",
    "fileName",
    "location",
    "latitude",
    "longitude",
    "contact",
    "contacts",
    "vcard",
    "phones",
    "reaction",
    "emoji",
    "replyTo",
    "quoted",
    "isEdit",
    "isRevoke",
    "key",
    "protocolMessage",
    "editedMessageId",
    "poll",
    "status",
    "status_code",
    "receiptType",
    "state",
    "error",
    "code",
    "statuses",
    "data",
]
VALUES = [
    "",
    " ",
    "read",
    "READ",
    "incoming",
    "outgoing",
    "group",
    "private",
    "message_edit",
    "message_revoke",
    "reaction",
    "image",
    gs.CUSTOMER,
    gs.CUSTOMER_12,
    gs.CUSTOMER_LID,
    gs.GROUP,
    gs.NEWSLETTER,
    f"{gs.CUSTOMER}@s.whatsapp.net",
    "status@broadcast",
    "9" * 40,
    "9" * 5000,  # int() refuses more than 4300 digits
    10**4000,
    float("inf"),
    "2026-04-28T10:30:00Z",
    "\ud800",
    "1" * 300 + "@lid",
    "1" * 300 + "@g.us",
    "x" * 300,
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


def records_of(event: str, data: Any) -> list[Any]:
    """The oracle's record split: a non-empty list is its records; a status ``data`` may hold
    its records under a list key; anything else is one record."""
    if isinstance(data, list) and data:
        return data
    if event == STATUS and isinstance(data, dict):
        for key in RECORD_LISTS:
            held = data.get(key)
            if isinstance(held, list) and any(isinstance(r, dict) for r in held):
                return held
    return [data]


def assert_storable(event: Event) -> None:
    """Round-trips, and every key fits the store's 255-character key columns."""
    assert event_from_json(event.to_json()).to_json() == event.to_json()
    assert 0 < len(event.natural_key) <= 255
    assert len(event.chat_id) <= 100
    if isinstance(event, InboundMessage):
        assert event.chat_id and event.chat_id not in event.chat_aliases
        assert all(0 < len(alias) <= 100 for alias in event.chat_aliases)
        assert event.reply_address is None


def one_record(event: str, record: Any) -> ParsedBody:
    """A body holding ``record`` alone, with its per-record properties checked."""
    parsed = parse_gateway_webhook({"event": event, "data": [record]}, event)
    if event == EXCHANGE:
        assert len(parsed.events) + len(parsed.ignored) == 1, parsed
        assert all(isinstance(e, InboundMessage) for e in parsed.events)
    else:
        ids = [e.message_id for e in parsed.events]
        assert (len(parsed.ignored), bool(ids)) in ((1, False), (0, True)), parsed
        assert all(isinstance(e, StatusUpdate) for e in parsed.events)
        assert len(set(ids)) == len(ids)
    return parsed


def check(body: Any, path_event: str | None = None) -> ParsedBody | None:
    """Parse ``body`` and assert every property; the parsed body, or ``None`` for a 400."""
    envelope_ok = (
        isinstance(body, dict)
        and isinstance(body.get("event"), str)
        and bool(body["event"].strip())
        and path_event in (None, body["event"])
    )
    try:
        parsed = parse_gateway_webhook(body, path_event)
    except ParseError:
        assert not envelope_ok, "a valid envelope was refused"
        return None
    assert envelope_ok, "a body without a usable envelope was accepted"
    for event in parsed.events:
        assert_storable(event)
    event = body["event"]
    if event not in (EXCHANGE, STATUS):
        assert (parsed.events, len(parsed.ignored)) == ([], 1)
        return parsed
    singles = [one_record(event, r) for r in records_of(event, body.get("data"))]
    assert parsed.events == [e for s in singles for e in s.events]
    assert parsed.ignored == [n for s in singles for n in s.ignored]
    return parsed


# ---- arbitrary JSON ----
@FUZZ
@given(json_values, st.none() | st.sampled_from([EXCHANGE, STATUS, "x"]))
def test_arbitrary_json(body: Any, path_event: str | None) -> None:
    check(body, path_event)


@FUZZ
@given(st.sampled_from([EXCHANGE, STATUS, "call.update", ""]), json_values)
def test_arbitrary_data_in_an_envelope(event: str, data: Any) -> None:
    check({"event": event, "data": data, "instanceData": {"token": "t"}})


# ---- mutations of every sample ----
Path = tuple[str | int, ...]


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every place inside ``value`` that a mutation may hit."""
    found: list[Path] = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


def mutate(body: Any, path: Path, op: str, value: Any) -> Any:
    """``body`` with the value at ``path`` deleted, replaced or wrapped (a fresh copy)."""
    body = copy.deepcopy(body)
    if not path:
        return value if op != "wrap" else [body]
    parent = body
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if op == "delete":
        del parent[last]
    elif op == "wrap":
        parent[last] = [parent[last]]
    else:
        parent[last] = value
    return body


MUTATIONS: list[tuple[str, Any]] = [
    ("delete", None),
    ("wrap", None),
    ("set", None),
    ("set", ""),
    ("set", 0),
    ("set", -1),
    ("set", 1e308),
    ("set", True),
    ("set", []),
    ("set", {}),
    ("set", "x"),
    ("set", "²"),  # a digit to str.isdigit(), not to int()
    ("set", "9" * 5000),  # int() refuses more than 4300 digits
    ("set", 10**4000),
    ("set", float("nan")),
    ("set", "\ud800"),  # a lone surrogate, as json.loads gives for "\\ud800"
    ("set", "1" * 300 + "@lid"),  # ids must fit 255-character key columns
    ("set", "1" * 300 + "@g.us"),
    ("set", "x" * 300),
]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_single_mutation_of_every_sample(name: str) -> None:
    """Exhaustive: each place of the sample's data, each simple mutation."""
    event, data = SAMPLES[name]
    body = gs.webhook_body(event, data)
    assert check(body, event) is not None
    for path in paths(body["data"]):
        for op, value in MUTATIONS:
            check(gs.webhook_body(event, mutate(data, path, op, value)), event)


@st.composite
def mutated_samples(draw: Callable[..., Any]) -> dict[str, Any]:
    event, data = SAMPLES[draw(st.sampled_from(sorted(SAMPLES)))]
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(paths(data)))
        op = draw(st.sampled_from(["delete", "wrap", "set"]))
        if op == "delete" and not path:
            continue
        data = mutate(data, path, op, draw(json_values))
    return gs.webhook_body(event, data)


@FUZZ
@given(mutated_samples())
def test_several_mutations_of_the_samples(body: dict[str, Any]) -> None:
    assert check(body, body["event"]) is not None


# ---- a valid message keeps its content whatever else is wrong ----
@FUZZ
@given(st.sampled_from(["chat", "sender", "timestamp", "direction", "id"]), json_values)
def test_text_survives_any_one_broken_envelope_field(field: str, value: Any) -> None:
    data = gs.text_data(text="conteúdo", message_id="3EB0KEEP")
    data["message"][field] = value
    if field == "chat":
        data["message"]["sender"] = {"jid": gs.CUSTOMER}
    parsed = check(gs.webhook_body(EXCHANGE, data))
    assert parsed is not None
    for event in parsed.events:
        assert isinstance(event, InboundMessage) and event.text == "conteúdo"
    if field == "chat" and isinstance(value, str) and value.lower().endswith("@newsletter"):
        # a channel's JID is a valid chat that is deliberately not relayed
        assert parsed.ignored[0].endswith("newsletter (channel) messages are not relayed")
        return
    assert parsed.events or parsed.ignored[0].startswith("message without sender")
