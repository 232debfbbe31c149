"""Every WhatsApp Cloud API reference body, relayed by real workers, as the right Chatwoot message.

Media is served by a started FakeGraph: the media ids of the reference bodies are replaced by the
ids FakeGraph handed out, so the relay really walks ``GET /{media-id}`` and the download URL.
Statuses are applied to a Chatwoot message the bridge knows through a MessageMap row.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from app.relay.message_map import remember_message
from app.store.db import database
from app.store.models import MessageMap
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.graph import FakeGraph
from tests.reference import whatsapp_cloud_dir
from tests.relay.bridge import (
    PHONE_NUMBER_ID,
    CloudBridge,
    make_cloud_bridge,
    reference_body,
    text_body,
    wait_until,
)
from workers.relay import deliver_inbound

ACCESS_TOKEN = "EAAG-test-access-token"
CUSTOMER = "16505551234"
BUSINESS_MESSAGE = "wamid.EXAMPLE_BUSINESS_MSG_0001"  # the message every status_*.json is about
MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")


@dataclass(frozen=True)
class Expected:
    content: str
    reply_to: str | None = None
    content_type: str | None = None  # of the one attachment, when there is one
    filename: str | None = None  # exact file name of the attachment
    suffix: str | None = None  # or only its extension


# The Chatwoot message each inbound reference body must become.
INBOUND: dict[str, Expected] = {
    "inbound_text.json": Expected("Does it come in another color?"),
    "inbound_text_context_product.json": Expected(
        "Is this still available? (product: 194836987003835/di9ozbzfi4)"
    ),
    "inbound_text_quoted_reply.json": Expected(
        "Yes, that works for me", reply_to="wamid.EXAMPLE_BUSINESS_MSG_0001"
    ),
    "inbound_reaction.json": Expected(
        "Reacted 👍 to a message",
        reply_to="wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0RTJEOTc2ODVERUY5RDlGNkYA",
    ),
    "inbound_location.json": Expected(
        "📍 Philz Coffee\n101 Forest Ave, Palo Alto, CA 94301\n"
        "https://www.google.com/maps/search/?api=1&query=37.44221496582,-122.16165924072"
    ),
    "inbound_contacts.json": Expected("👤 Lucía Gómez (Google)\nPhone: +1 (983) 555-2319"),
    "inbound_unsupported.json": Expected(
        "[Unsupported message: 131051: Message type unknown "
        "(Message type is currently not supported.)]"
    ),
    "inbound_button_quick_reply.json": Expected(
        "Unsubscribe", reply_to="wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJFNjk2OTMwNEZCQjhGMzUyQUYA"
    ),
    "inbound_interactive_button_reply.json": Expected(
        "Cancel", reply_to="wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MEM2RUJFNkI0RENGQTVDRjUA"
    ),
    "inbound_interactive_list_reply.json": Expected(
        "Priority Mail Express\nNext Day to 2 Days",
        reply_to="wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJGMzEyNzhENTZDMzNGODlDRDgA",
    ),
    "inbound_system_number_change.json": Expected(
        "[System: User Sheena Nelson changed from 16505551234 to 12195555358]"
    ),
    "inbound_image.json": Expected("Taj Mahal", content_type="image/jpeg", suffix=".jpg"),
    "inbound_video.json": Expected("My vacation video", content_type="video/mp4", suffix=".mp4"),
    "inbound_audio_voice_note.json": Expected(
        "", content_type="audio/ogg; codecs=opus", suffix=".ogg"
    ),
    "inbound_document.json": Expected("", content_type="application/pdf", filename="receipt.pdf"),
    "inbound_sticker.json": Expected("", content_type="image/webp", suffix=".webp"),
}

# status body -> (Chatwoot status, external_error)
STATUSES: dict[str, tuple[str, str | None]] = {
    "status_sent.json": ("sent", None),
    "status_delivered.json": ("delivered", None),
    "status_read.json": ("read", None),
    "status_failed_131047.json": ("failed", "24-hour window closed — reply with a template"),
}


def media_bytes(name: str) -> bytes:
    """Distinct, binary (non UTF-8) bytes per body, large enough to span several chunks."""
    return b"\xff\x00" + name.encode() + bytes(range(256)) * 300


@pytest.fixture(scope="module")
def graph_server() -> Iterator[FakeGraph]:
    fake = FakeGraph()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def graph(graph_server: FakeGraph) -> FakeGraph:
    graph_server.reset()
    graph_server.add_phone_number(PHONE_NUMBER_ID, ACCESS_TOKEN)
    return graph_server


@pytest.fixture
def bridge(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    graph: FakeGraph,
    worker: Worker,
) -> CloudBridge:
    return make_cloud_bridge(client, account_token, chatwoot, graph_url=graph.base_url)


def the_message(body: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = body["entry"][0]["changes"][0]["value"]["messages"][0]
    return message


def with_graph_media(graph: FakeGraph, name: str) -> tuple[dict[str, Any], bytes | None]:
    """The reference body, its media registered in FakeGraph under the id the body now names."""
    body = copy.deepcopy(reference_body(name))
    message = the_message(body)
    kind = message["type"]
    if kind not in MEDIA_TYPES:
        return body, None
    data = media_bytes(name)
    message[kind]["id"] = graph.add_media(data, message[kind]["mime_type"])
    return body, data


def chatwoot_message_of(bridge: CloudBridge, source_id: str) -> dict[str, Any]:
    [found] = [m for m in bridge.messages() if m["source_id"] == source_id]
    return found


def test_every_reference_body_is_covered() -> None:
    names = {
        p.name
        for p in whatsapp_cloud_dir().glob("*.json")
        if p.name.startswith(("inbound_", "status_"))
    }
    assert names == set(INBOUND) | set(STATUSES)


@pytest.mark.parametrize("name", sorted(INBOUND))
def test_inbound_reference_body_becomes_the_right_chatwoot_message(
    bridge: CloudBridge, graph: FakeGraph, name: str
) -> None:
    expected = INBOUND[name]
    body, data = with_graph_media(graph, name)
    wamid = the_message(body)["id"]

    response = bridge.post(body)

    assert response.status_code == 200, response.text
    assert response.json() == {"received": 1, "stored": 1}
    [message] = bridge.wait_for_messages(1)
    bridge.wait_for_events("delivered", 1)
    assert (message["content"] or "") == expected.content
    assert message["message_type"] == "incoming"
    assert message["source_id"] == wamid
    attributes = message["content_attributes"]
    if expected.reply_to is None:
        assert "in_reply_to_external_id" not in attributes
    else:
        assert attributes["in_reply_to_external_id"] == expected.reply_to
    if data is None:
        assert message["attachments"] == []
        return
    [attachment] = message["attachments"]
    assert attachment["data"] == data
    assert attachment["content_type"] == expected.content_type
    if expected.filename is not None:
        assert attachment["filename"] == expected.filename
    else:
        assert expected.suffix is not None
        assert attachment["filename"].endswith(expected.suffix)
    [conversation] = bridge.chatwoot.conversations.values()
    assert message["conversation_id"] == conversation["id"]


def test_system_message_without_contacts_creates_the_contact_from_the_number(
    bridge: CloudBridge,
) -> None:
    bridge.post(reference_body("inbound_system_number_change.json"))

    bridge.wait_for_messages(1)
    [contact] = bridge.chatwoot.contacts.values()
    assert contact["phone_number"] == "+16505551234"


def test_whatsapp_formatting_is_converted_to_chatwoot_markdown(bridge: CloudBridge) -> None:
    text = "*Pedido* _urgente_ ~cancelado~ ```codigo``` snake_case_name 2*3*4"

    bridge.post(text_body(CUSTOMER, "wamid.format", text))

    [message] = bridge.wait_for_messages(1)
    assert (
        message["content"] == r"**Pedido** *urgente* ~~cancelado~~ `codigo` snake_case_name 2\*3\*4"
    )


def test_media_fetched_from_graph_with_the_access_token(
    bridge: CloudBridge, graph: FakeGraph
) -> None:
    body, data = with_graph_media(graph, "inbound_image.json")
    media_id = the_message(body)["image"]["id"]

    bridge.post(body)

    [message] = bridge.wait_for_messages(1)
    assert message["attachments"][0]["data"] == data
    paths = [c.path for c in graph.calls if c.method == "GET"]
    assert paths[0] == f"/v23.0/{media_id}"
    assert paths[1] == "/whatsapp_business/attachments/"
    assert all(c.status == 200 for c in graph.calls)


def test_value_errors_body_is_accepted_and_stores_nothing(bridge: CloudBridge) -> None:
    response = bridge.post(reference_body("value_errors_130429.json"))

    assert response.status_code == 200, response.text
    assert response.json() == {"received": 0, "stored": 0}
    assert bridge.events() == []


def map_business_message(bridge: CloudBridge) -> dict[str, Any]:
    """A Chatwoot message (created by an earlier inbound text) that BUSINESS_MESSAGE maps to."""
    bridge.post(text_body(CUSTOMER, "wamid.customer.first", "hello"))
    [message] = bridge.wait_for_messages(1)
    bridge.wait_for_events("delivered", 1)
    with database.connection_context():
        MessageMap.create(
            integration=bridge.integration_id,
            whatsapp_message_id=BUSINESS_MESSAGE,
            chatwoot_message_id=message["id"],
            chatwoot_conversation_id=message["conversation_display_id"],
            direction="outgoing",
        )
    return message


def status_patches(bridge: CloudBridge, message: dict[str, Any]) -> list[Any]:
    suffix = f"/conversations/{message['conversation_display_id']}/messages/{message['id']}"
    return [
        c.json for c in bridge.chatwoot.calls if c.method == "PATCH" and c.path.endswith(suffix)
    ]


@pytest.mark.parametrize("name", sorted(STATUSES))
def test_status_of_a_mapped_message_updates_it_in_chatwoot(bridge: CloudBridge, name: str) -> None:
    status, external_error = STATUSES[name]
    message = map_business_message(bridge)

    response = bridge.post(reference_body(name))

    assert response.status_code == 200, response.text
    assert response.json() == {"received": 1, "stored": 1}
    bridge.wait_for_events("delivered", 2)
    patched = bridge.chatwoot.messages[message["id"]]
    assert patched["status"] == status
    assert patched["external_error"] == external_error
    expected_call: dict[str, Any] = {"status": status}
    if external_error is not None:
        expected_call["external_error"] = external_error
    assert status_patches(bridge, message) == [expected_call]
    assert len(bridge.messages()) == 1


def test_statuses_in_sequence_end_read(bridge: CloudBridge) -> None:
    message = map_business_message(bridge)

    for name in ("status_sent.json", "status_delivered.json", "status_read.json"):
        assert bridge.post(reference_body(name)).json() == {"received": 1, "stored": 1}
    bridge.wait_for_events("delivered", 4)

    assert bridge.chatwoot.messages[message["id"]]["status"] == "read"
    assert [c["status"] for c in status_patches(bridge, message)] == ["sent", "delivered", "read"]


def test_status_of_an_unknown_message_waits_then_applies_once_mapped(bridge: CloudBridge) -> None:
    calls_before = len(bridge.chatwoot.calls)

    response = bridge.post(reference_body("status_delivered.json"))

    assert response.json() == {"received": 1, "stored": 1}
    bridge.wait_for_events("waiting", 1)
    [event] = bridge.events()
    assert event.chat_key == CUSTOMER
    assert event.kind == "status"
    assert event.attempts == 1
    assert len(bridge.chatwoot.calls) == calls_before  # no Chatwoot call for it
    # not an error loop: it stays waiting, untouched
    time.sleep(0.5)
    [event] = bridge.events()
    assert (event.status, event.attempts) == ("waiting", 1)
    assert len(bridge.chatwoot.calls) == calls_before

    bridge.post(text_body(CUSTOMER, "wamid.customer.first", "hello"))
    [message] = bridge.wait_for_messages(1)
    with database.connection_context():
        woken = remember_message(
            bridge.integration(),
            BUSINESS_MESSAGE,
            message["id"],
            message["conversation_display_id"],
            "outgoing",
        )
    assert woken == 1
    deliver_inbound.send(bridge.integration_id, CUSTOMER)

    wait_until(
        lambda: bridge.chatwoot.messages[message["id"]]["status"] == "delivered",
        what="the waiting status applied",
    )
    bridge.wait_for_events("delivered", 2)
    assert [e.status for e in bridge.events()] == ["delivered", "delivered"]
    assert status_patches(bridge, message) == [{"status": "delivered"}]


@pytest.mark.parametrize(
    ("first", "second"),
    [("551199998888", "5511999998888"), ("5511999998888", "551199998888")],
    ids=["without-9-first", "with-9-first"],
)
def test_brazilian_number_with_and_without_ninth_digit_is_one_chat(
    bridge: CloudBridge, first: str, second: str
) -> None:
    bridge.post(text_body(first, "wamid.br.1", "primeira", name="João"))
    bridge.post(text_body(second, "wamid.br.2", "segunda", name="João"))

    messages = bridge.wait_for_messages(2)
    bridge.wait_for_events("delivered", 2)

    assert [m["content"] for m in messages] == ["primeira", "segunda"]
    [contact] = bridge.chatwoot.contacts.values()
    assert contact["phone_number"] == "+5511999998888"
    [conversation] = bridge.chatwoot.conversations.values()
    assert {m["conversation_id"] for m in messages} == {conversation["id"]}
    assert {e.chat_key for e in bridge.events()} == {"5511999998888"}
