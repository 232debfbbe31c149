"""The stored form of events: the hand-written ``to_json`` writes exactly what
``dataclasses.asdict`` would, and ``event_from_json`` gives the same event back."""

from __future__ import annotations

import json
from dataclasses import asdict

from hypothesis import given, settings
from hypothesis import strategies as st

from app.relay.messages import (
    Event,
    InboundMessage,
    Location,
    Media,
    SharedContact,
    StatusUpdate,
    event_from_json,
)

texts = st.none() | st.text(max_size=20)
media = st.builds(
    Media,
    mime_type=texts,
    media_id=texts,
    url=texts,
    base64=texts,
    filename=texts,
    voice=st.booleans(),
    sha256=texts,
)
locations = st.builds(
    Location,
    latitude=st.floats(allow_nan=False, allow_infinity=False),
    longitude=st.floats(allow_nan=False, allow_infinity=False),
    name=texts,
    address=texts,
)
shared_contacts = st.builds(
    SharedContact,
    name=st.text(max_size=10),
    phones=st.tuples(st.text(max_size=8)),
    emails=st.tuples() | st.tuples(st.text(max_size=8), st.text(max_size=8)),
    organization=texts,
)
messages = st.builds(
    InboundMessage,
    message_id=st.text(min_size=1, max_size=20),
    chat_id=st.text(min_size=1, max_size=20),
    sender_id=st.text(min_size=1, max_size=20),
    kind=st.sampled_from(["text", "image", "location", "contacts", "reaction", "edit"]),
    direction=st.sampled_from(["incoming", "outgoing"]),
    is_group=st.booleans(),
    timestamp=st.none() | st.integers(min_value=0, max_value=2**40),
    text=texts,
    media=st.none() | media,
    location=st.none() | locations,
    contacts=st.lists(shared_contacts, max_size=3).map(tuple),
    chat_aliases=st.lists(st.text(max_size=10), max_size=3).map(tuple),
    username=texts,
)
statuses = st.builds(
    StatusUpdate,
    message_id=st.text(min_size=1, max_size=20),
    status=st.sampled_from(["sent", "delivered", "read", "failed"]),
    recipient_id=st.text(min_size=1, max_size=20),
    timestamp=st.none() | st.integers(min_value=0),
    error_code=st.none() | st.integers(min_value=0, max_value=200000),
    error_title=texts,
)


def _as_dataclasses_would(event: Event) -> str:
    kind = "message" if isinstance(event, InboundMessage) else "status"
    return json.dumps({"type": kind, **asdict(event)}, separators=(",", ":"))


@settings(max_examples=300, deadline=None)
@given(st.one_of(messages, statuses))
def test_to_json_is_asdict_and_round_trips(event: Event) -> None:
    stored = event.to_json()
    assert stored == _as_dataclasses_would(event)
    assert event_from_json(stored) == event


def test_nested_values_are_written_as_objects_and_arrays() -> None:
    message = InboundMessage(
        message_id="wamid.1",
        chat_id="5511999990000",
        sender_id="5511999990000",
        kind="contacts",
        media=Media(mime_type="image/jpeg", media_id="m1"),
        location=Location(1.5, -2.5, name="Shop"),
        contacts=(SharedContact("Ana", phones=("+55 11 9",)),),
        chat_aliases=("BR.123",),
    )
    data = json.loads(message.to_json())
    assert data["type"] == "message"
    assert data["media"]["media_id"] == "m1"
    assert data["location"] == {"latitude": 1.5, "longitude": -2.5, "name": "Shop", "address": None}
    assert data["contacts"] == [
        {"name": "Ana", "phones": ["+55 11 9"], "emails": [], "organization": None}
    ]
    assert data["chat_aliases"] == ["BR.123"]
