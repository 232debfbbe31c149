"""Addressing a Cloud API send: a phone in ``to``, a BSUID in ``recipient`` (never in ``to``: Meta
answers 200 and drops it, and so does the fake Graph, which records such a send as dropped)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from app.integrations.http import build_client
from app.integrations.whatsapp.cloud_send import CloudSender
from app.integrations.whatsapp.send import OutgoingMedia
from tests.fakes.graph import FakeGraph, message_problems
from tests.relay.cloud_2026 import dir_2026

PHONE_ID = "106540352242922"
TOKEN = "EAAG-cloud-token"
BSUID = "BR.1349120865530274"
PHONE = "5511987654321"


@pytest.fixture(scope="module")
def graph_server() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def graph(graph_server: FakeGraph) -> Iterator[FakeGraph]:
    graph_server.reset()
    graph_server.add_phone_number(PHONE_ID, TOKEN)
    yield graph_server


@pytest.fixture
def sender(graph: FakeGraph) -> Iterator[CloudSender]:
    http = build_client(allow_private=True)
    yield CloudSender(graph.base_url, PHONE_ID, TOKEN, http=http, retry_max_wait=0.01)
    http.close()


def post_raw(graph: FakeGraph, body: object) -> httpx.Response:
    return httpx.post(
        f"{graph.base_url}/{PHONE_ID}/messages",
        json=body,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


def test_text_to_a_bsuid_goes_in_recipient(sender: CloudSender, graph: FakeGraph) -> None:
    result = sender.send_text(BSUID, "Sim, entregamos no sábado.", reply_to="wamid.quoted")

    [sent] = graph.sent
    assert sent.body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "recipient": BSUID,
        "type": "text",
        "text": {"body": "Sim, entregamos no sábado.", "preview_url": False},
        "context": {"message_id": "wamid.quoted"},
    }
    assert (sent.to, sent.dropped, sent.message_id) == (BSUID, False, result.message_id)
    assert graph.schema_errors == []


def test_media_to_a_bsuid_goes_in_recipient(sender: CloudSender, graph: FakeGraph) -> None:
    media = OutgoingMedia("image", b"\xff\xd8" + bytes(64), "image/jpeg", "photo.jpg")

    sender.send_media(BSUID, media, caption="A foto")

    [sent] = graph.sent
    assert sent.body["recipient"] == BSUID
    assert "to" not in sent.body
    assert sent.body["image"]["caption"] == "A foto"
    assert graph.delivered == [sent]


def test_text_to_a_phone_goes_in_to(sender: CloudSender, graph: FakeGraph) -> None:
    sender.send_text(PHONE, "Olá")

    [sent] = graph.sent
    assert sent.body["to"] == PHONE
    assert "recipient" not in sent.body
    assert sent.dropped is False


def test_fake_graph_accepts_the_reference_request_to_a_bsuid(graph: FakeGraph) -> None:
    body = json.loads((dir_2026() / "requests" / "send_text_to_bsuid.json").read_text())

    answer = post_raw(graph, body)

    assert answer.status_code == 200, answer.text
    assert answer.json()["contacts"] == [{"input": BSUID, "user_id": BSUID}]
    [sent] = graph.delivered
    assert sent.to == BSUID


def test_fake_graph_drops_a_bsuid_in_to_like_meta(graph: FakeGraph) -> None:
    answer = post_raw(
        graph, {"messaging_product": "whatsapp", "to": BSUID, "type": "text", "text": {"body": "x"}}
    )

    assert answer.status_code == 200  # accepted...
    [sent] = graph.sent
    assert sent.dropped is True  # ...and never delivered
    assert graph.delivered == []


@pytest.mark.parametrize(
    "body",
    [
        {"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}},
        {
            "messaging_product": "whatsapp",
            "recipient_type": "group",
            "recipient": BSUID,
            "text": {"body": "x"},
        },
        {"messaging_product": "whatsapp", "recipient": PHONE, "text": {"body": "x"}},
    ],
    ids=["no-address", "recipient-in-a-group", "phone-in-recipient"],
)
def test_fake_graph_refuses_a_send_without_a_valid_address(
    graph: FakeGraph, body: dict[str, object]
) -> None:
    problems = message_problems(body)
    assert problems != []
    assert all("recipient" in p for p in problems)
    assert post_raw(graph, body).status_code == 400
    assert graph.sent == []
