"""Fuzzing the Cloud API webhook parser: lenient at the door, nothing dropped silently.

Properties, for any JSON a client may post:
- the parser returns a :class:`ParsedBody` or raises :class:`ParseError`, nothing else, and
  raises exactly when the body is not an object or has no ``entry`` list;
- conservation: every element of every ``messages`` / ``statuses`` / ``message_echoes`` list of
  a change addressed to our phone number ends as exactly one event or one note naming its place;
- every event survives the storage round trip and names a chat, an id and a reply address.

Bodies are arbitrary JSON, JSON shaped with Meta's own keys, and mutations of every reference
body (single mutations exhaustively, several at once drawn by hypothesis).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.relay.inbound.cloud_webhook import parse_cloud_webhook
from app.relay.messages import InboundMessage, ParsedBody, ParseError, event_from_json
from tests.reference import whatsapp_cloud_dir

PHONE_ID = "106540352242922"
BUSINESS_ACCOUNT = "whatsapp_business_account"
LISTS = {"messages": ("messages", "statuses"), "smb_message_echoes": ("message_echoes",)}
ELEMENT_NOTE = re.compile(
    r"^(entry\[\d+\]\.changes\[\d+\]\.value\.(?:messages|statuses|message_echoes)\[\d+\]): "
)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference_bodies() -> dict[str, Any]:
    """Every reference body by its path below the folder (``inbound_text.json``,
    ``2026/coexistence_edit.json``)."""
    folder = whatsapp_cloud_dir()
    files = sorted([*folder.glob("*.json"), *(folder / "2026").glob("*.json")])
    return {str(p.relative_to(folder)): json.loads(p.read_text()) for p in files}


BODIES = reference_bodies()


def elements_addressed_to_us(body: Any) -> int | None:
    """The oracle: how many list elements must be accounted for; ``None`` = must be a 400."""
    if not isinstance(body, dict):
        return None
    if body.get("object", BUSINESS_ACCOUNT) != BUSINESS_ACCOUNT:
        return 0
    entries = body.get("entry")
    if not isinstance(entries, list):
        return None
    count = 0
    for change in _changes(entries):
        value = change.get("value")
        field = change.get("field")
        keys = LISTS.get(field) if isinstance(field, str) else None
        if keys is None or not isinstance(value, dict):
            continue
        metadata = value.get("metadata")
        if not isinstance(metadata, dict) or metadata.get("phone_number_id") != PHONE_ID:
            continue
        count += sum(len(value[k]) for k in keys if isinstance(value.get(k), list))
    return count


def _changes(entries: list[Any]) -> Iterator[dict[str, Any]]:
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if isinstance(changes, list):
            yield from (c for c in changes if isinstance(c, dict))


def check(body: Any) -> ParsedBody | None:
    """Parse ``body`` and assert every property; the parsed body, or ``None`` for a 400."""
    expected = elements_addressed_to_us(body)
    before = copy.deepcopy(body)
    try:
        parsed = parse_cloud_webhook(body, PHONE_ID)
    except ParseError:
        assert expected is None
        return None
    assert body == before  # the parser never edits what it reads
    assert expected is not None
    places = [m.group(1) for n in parsed.ignored if (m := ELEMENT_NOTE.match(n))]
    assert len(places) == len(set(places))
    assert len(parsed.events) + len(places) == expected
    for event in parsed.events:
        restored = event_from_json(event.to_json())
        if isinstance(event, InboundMessage):
            assert event.message_id and event.chat_id and event.reply_address
            assert isinstance(restored, InboundMessage)
            restored = replace(restored, chat_aliases=tuple(restored.chat_aliases))
        else:
            assert event.message_id
        assert restored == event
    return parsed


# --- arbitrary JSON ---------------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=25,
)
META_KEYS = [
    "object",
    "entry",
    "changes",
    "field",
    "value",
    "metadata",
    "phone_number_id",
    "messages",
    "statuses",
    "contacts",
    "message_echoes",
    "errors",
    "from",
    "from_user_id",
    "from_parent_user_id",
    "to",
    "to_user_id",
    "id",
    "type",
    "text",
    "body",
    "image",
    "caption",
    "reaction",
    "emoji",
    "message_id",
    "system",
    "user_id",
    "previous_user_id",
    "wa_id",
    "profile",
    "name",
    "username",
    "context",
    "edit",
    "revoke",
    "original_message_id",
    "status",
    "recipient_id",
    "recipient_user_id",
    "code",
    "title",
    "details",
    "location",
    "latitude",
    "longitude",
    "interactive",
]
FIELD_VALUES = st.sampled_from(
    ["messages", "smb_message_echoes", "history", PHONE_ID, BUSINESS_ACCOUNT, "text", "system"]
)
SHAPED = st.recursive(
    SCALARS | FIELD_VALUES | st.sampled_from(["16505551234", "US.13491208655302741918"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(META_KEYS), inner, max_size=5)
    ),
    max_leaves=40,
)


@FUZZ
@given(JSON)
def test_arbitrary_json_is_parsed_or_refused(body: Any) -> None:
    check(body)


@FUZZ
@given(SHAPED, SHAPED)
def test_json_shaped_like_meta_is_parsed_or_refused(entry: Any, value: Any) -> None:
    """Deep enough to reach messages: an entry and a change value built from Meta's keys."""
    change = {"field": "messages", "value": value}
    if isinstance(value, dict):
        value["metadata"] = {"phone_number_id": PHONE_ID}
    check({"object": BUSINESS_ACCOUNT, "entry": [entry, {"changes": [change]}]})


# --- mutations of every reference body --------------------------------------------------------

Path_ = tuple[Any, ...]


def paths(node: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    """Every path below ``node`` (dict keys and list indices)."""
    items = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in items:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


def at(body: Any, path: Path_) -> Any:
    for key in path:
        body = body[key]
    return body


def deleted(body: Any, path: Path_) -> Any:
    out = copy.deepcopy(body)
    parent = at(out, path[:-1])
    del parent[path[-1]]
    return out


def replaced(body: Any, path: Path_, value: Any) -> Any:
    out = copy.deepcopy(body)
    at(out, path[:-1])[path[-1]] = value
    return out


OTHER_TYPES: list[Any] = [None, True, 0, -1.5, "", "x", [], {}, [{}], {"id": 1}]


def test_both_reference_folders_are_fuzzed() -> None:
    top = [n for n in BODIES if "/" not in n]
    new = [n for n in BODIES if n.startswith("2026/")]
    assert len(top) >= 20 and len(new) >= 24 and len(BODIES) == len(top) + len(new)


@pytest.mark.parametrize("name", sorted(BODIES))
def test_every_single_mutation_of_a_reference_body(name: str) -> None:
    """Each key deleted, each value replaced by each other JSON type, one at a time."""
    body = BODIES[name]
    parsed = check(body)
    assert parsed is not None  # the reference body itself is accepted
    for path in paths(body):
        check(deleted(body, path))
        original = at(body, path)
        for value in OTHER_TYPES:
            if type(value) is not type(original) or value != original:
                check(replaced(body, path, value))


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    body = copy.deepcopy(BODIES[draw(st.sampled_from(sorted(BODIES)))])
    for _ in range(draw(st.integers(1, 4))):
        body = draw(st.sampled_from([_delete, _retype, _duplicate, _add_unknown]))(draw, body)
    return body


def _delete(draw: st.DrawFn, body: Any) -> Any:
    keyed = [p for p in paths(body) if isinstance(at(body, p[:-1]), dict)]
    return deleted(body, draw(st.sampled_from(keyed))) if keyed else body


def _retype(draw: st.DrawFn, body: Any) -> Any:
    every = list(paths(body))
    return replaced(body, draw(st.sampled_from(every)), draw(JSON)) if every else body


def _duplicate(draw: st.DrawFn, body: Any) -> Any:
    lists = [
        p
        for p in paths(body)
        if p[-1] in ("messages", "statuses", "message_echoes")
        and at(body, p)
        and isinstance(at(body, p), list)
    ]
    if not lists:
        return body
    target = at(body, draw(st.sampled_from(lists)))
    element = draw(st.sampled_from(target))
    target.insert(draw(st.integers(0, len(target))), copy.deepcopy(element))
    return body


def _add_unknown(draw: st.DrawFn, body: Any) -> Any:
    dicts = [(), *(p for p in paths(body) if isinstance(at(body, p), dict))]
    target = at(body, draw(st.sampled_from(dicts)))
    if isinstance(target, dict):
        target[f"x_unknown_{draw(st.text(max_size=6))}"] = draw(JSON)
    return body


@FUZZ
@given(mutated())
def test_random_mutations_of_reference_bodies(body: Any) -> None:
    check(body)


def test_duplicated_message_is_kept_twice_with_one_id() -> None:
    """The oracle's counting is not vacuous: a duplicate is two events (the intake dedupes)."""
    body = copy.deepcopy(BODIES["inbound_text.json"])
    messages = body["entry"][0]["changes"][0]["value"]["messages"]
    messages.append(copy.deepcopy(messages[0]))
    parsed = check(body)
    assert parsed is not None
    assert [e.message_id for e in parsed.events] == [messages[0]["id"]] * 2


def test_unreadable_elements_are_notes_naming_their_place() -> None:
    body = copy.deepcopy(BODIES["2026/multi_message_body.json"])
    value = body["entry"][0]["changes"][0]["value"]
    value["messages"][1] = "not a message"
    value["messages"][2].pop("from")
    value["messages"][2].pop("from_user_id")
    value["statuses"] = [{"status": "read"}]
    parsed = check(body)
    assert parsed is not None
    assert [e.message_id for e in parsed.events] == [value["messages"][0]["id"]]
    where = "entry[0].changes[0].value"
    assert parsed.ignored == [
        f"{where}.messages[1]: not an object, ignored",
        f"{where}.messages[2]: message without sender, ignored",
        f"{where}.statuses[0]: status without a usable id, ignored",
    ]
