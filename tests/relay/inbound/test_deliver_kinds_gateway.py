"""Every kind of gateway (RyzeAPI) message, relayed by real workers, as the right Chatwoot message.

Media URLs point at a started FakeGateway (``add_media``); inline media is base64 in the body.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from tests.fakes import gateway_samples as samples
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.gateway import FakeGateway
from tests.relay.bridge import GatewayBridge, make_gateway_bridge, wait_until

CUSTOMER_JID = f"{samples.CUSTOMER}@s.whatsapp.net"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF" + bytes(range(256)) * 200
OGG = b"OggS\x00\x02" + bytes(reversed(range(256))) * 150
PDF = b"%PDF-1.7\n\x00\xff" + bytes(range(256)) * 120
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(range(128)) * 90
MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 180


@pytest.fixture(scope="module")
def gateway_server() -> Iterator[FakeGateway]:
    fake = FakeGateway()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def gateway(gateway_server: FakeGateway) -> FakeGateway:
    gateway_server.reset()
    gateway_server.add_instance("vendas", "gw-token")
    return gateway_server


@pytest.fixture
def bridge(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    gateway: FakeGateway,
    worker: Worker,
) -> GatewayBridge:
    return make_gateway_bridge(client, account_token, chatwoot, gateway_url=gateway.base_url)


def exchange(bridge: GatewayBridge, data: dict[str, Any]) -> None:
    response = bridge.post_event("message.exchange", data)
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 1, "stored": 1}


def one_message(bridge: GatewayBridge) -> dict[str, Any]:
    [message] = bridge.wait_for_messages(1)
    bridge.wait_for_events("delivered", 1)
    return message


# ---- text kinds -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TextCase:
    data: Callable[[], dict[str, Any]]
    content: str
    reply_to: str | None = None


TEXT_CASES: dict[str, TextCase] = {
    "text": TextCase(
        lambda: samples.text_data(message_id="G-TEXT"), "Olá, preciso de ajuda com meu pedido"
    ),
    "formatted text": TextCase(
        lambda: samples.text_data(text="*Pedido* _urgente_ ~antigo~", message_id="G-TEXT"),
        "**Pedido** *urgente* ~~antigo~~",
    ),
    "location": TextCase(
        lambda: samples.location_data(message_id="G-TEXT"),
        "📍 MASP\nAv. Paulista, 1578 - Bela Vista, São Paulo\n"
        "https://www.google.com/maps/search/?api=1&query=-23.561414,-46.655881",
    ),
    "contact": TextCase(
        lambda: samples.contact_data(message_id="G-TEXT"),
        "👤 Maria Souza (Acme Ltda)\nPhone: +55 21 98765-4321\nEmail: maria@acme.com.br",
    ),
    "contacts": TextCase(
        lambda: samples.contacts_data(message_id="G-TEXT"),
        "👤 Maria Souza (Acme Ltda)\nPhone: +55 21 98765-4321\nEmail: maria@acme.com.br"
        "\n\n👤 Pedro Lima\nPhone: +55 11 91234-5678",
    ),
    "reaction": TextCase(
        lambda: samples.reaction_data(message_id="G-TEXT"),
        "Reacted 👍 to a message",
        reply_to="wamid.agent.1",
    ),
    "reply": TextCase(
        lambda: samples.reply_data(message_id="G-TEXT"), "Esse aqui", reply_to="wamid.agent.1"
    ),
    "unknown kind": TextCase(
        lambda: samples.unknown_data(message_id="G-TEXT"),
        "[Unsupported message: message type 'pix']",
    ),
}


@pytest.mark.parametrize("case", sorted(TEXT_CASES))
def test_gateway_message_kind_becomes_the_right_chatwoot_message(
    bridge: GatewayBridge, case: str
) -> None:
    expected = TEXT_CASES[case]

    exchange(bridge, expected.data())

    message = one_message(bridge)
    assert message["content"] == expected.content
    assert message["message_type"] == "incoming"
    assert message["source_id"] == "G-TEXT"
    assert message["attachments"] == []
    attributes = message["content_attributes"]
    if expected.reply_to is None:
        assert "in_reply_to_external_id" not in attributes
    else:
        assert attributes["in_reply_to_external_id"] == expected.reply_to
    [contact] = bridge.chatwoot.contacts.values()
    assert contact["name"] == "João Silva"
    assert contact["phone_number"] == f"+{samples.CUSTOMER}"


# ---- media ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MediaCase:
    build: Callable[..., dict[str, Any]]
    data: bytes
    served_type: str  # what the gateway's media host answers with
    content: str
    content_type: str
    filename: str | None = None
    suffix: str | None = None


def _video(**kw: Any) -> dict[str, Any]:
    return samples.media_data("video", mimetype="video/mp4", caption="Olha o vídeo", **kw)


MEDIA_CASES: dict[str, MediaCase] = {
    "image": MediaCase(
        samples.image_data, JPEG, "image/jpeg", "Foto do produto", "image/jpeg", suffix=".jpg"
    ),
    "ptt voice note": MediaCase(
        samples.ptt_data, OGG, "audio/ogg", "", "audio/ogg; codecs=opus", suffix=".ogg"
    ),
    "document": MediaCase(
        samples.document_data,
        PDF,
        "application/pdf",
        "Segue o contrato",
        "application/pdf",
        filename="Contrato-2026.pdf",
    ),
    "sticker": MediaCase(
        samples.sticker_data, WEBP, "image/webp", "", "image/webp", suffix=".webp"
    ),
    "video": MediaCase(_video, MP4, "video/mp4", "Olha o vídeo", "video/mp4", suffix=".mp4"),
    "ptv video note": MediaCase(samples.ptv_data, MP4, "video/mp4", "", "video/mp4", suffix=".mp4"),
}


def assert_attachment(message: dict[str, Any], case: MediaCase) -> None:
    assert (message["content"] or "") == case.content
    assert message["message_type"] == "incoming"
    [attachment] = message["attachments"]
    assert attachment["data"] == case.data
    assert attachment["content_type"] == case.content_type
    if case.filename is not None:
        assert attachment["filename"] == case.filename
    else:
        assert case.suffix is not None
        assert attachment["filename"].endswith(case.suffix)


@pytest.mark.parametrize("case", sorted(MEDIA_CASES))
def test_media_from_the_gateway_s3_url_arrives_intact(
    bridge: GatewayBridge, gateway: FakeGateway, case: str
) -> None:
    """``s3Url`` is the decrypted copy; ``url`` stays WhatsApp's encrypted CDN (never fetched)."""
    spec = MEDIA_CASES[case]
    url = gateway.add_media(spec.data, spec.served_type)

    exchange(bridge, spec.build(s3_url=url, message_id="G-MEDIA"))

    message = one_message(bridge)
    assert message["source_id"] == "G-MEDIA"
    assert_attachment(message, spec)
    fetched = [c.path for c in gateway.calls if c.method == "GET"]
    assert fetched == [url.removeprefix(gateway.base_url)]


@pytest.mark.parametrize("case", ["image", "document"])
def test_media_from_the_gateway_url_alone_arrives_intact(
    bridge: GatewayBridge, gateway: FakeGateway, case: str
) -> None:
    spec = MEDIA_CASES[case]
    url = gateway.add_media(spec.data, spec.served_type)

    exchange(bridge, spec.build(url=url, s3_url=None, message_id="G-MEDIA"))

    assert_attachment(one_message(bridge), spec)


@pytest.mark.parametrize("case", sorted(MEDIA_CASES))
def test_inline_base64_media_arrives_intact(bridge: GatewayBridge, case: str) -> None:
    spec = MEDIA_CASES[case]
    inline = base64.b64encode(spec.data).decode()

    exchange(bridge, spec.build(url=None, s3_url=None, base64=inline, message_id="G-INLINE"))

    message = one_message(bridge)
    assert message["source_id"] == "G-INLINE"
    assert_attachment(message, spec)


# ---- groups ---------------------------------------------------------------------------------


def test_group_messages_share_a_group_conversation_with_the_sender_named(
    bridge: GatewayBridge,
) -> None:
    exchange(bridge, samples.group_text_data(message_id="G1"))
    exchange(
        bridge,
        samples.group_text_data(
            text="Boa tarde",
            message_id="G2",
            sender={"jid": "551187776666@s.whatsapp.net", "name": "Bruno"},
        ),
    )
    ana_private = {"jid": "5521987654321@s.whatsapp.net", "name": "Ana", "type": "private"}
    exchange(
        bridge,
        samples.text_data(
            text="Oi, é a Ana",
            message_id="P1",
            chat=ana_private,
            sender={k: v for k, v in ana_private.items() if k != "type"},
        ),
    )

    messages = bridge.wait_for_messages(3)
    bridge.wait_for_events("delivered", 3)

    by_source = {m["source_id"]: m for m in messages}
    assert by_source["G1"]["content"] == "**Ana (+5521987654321):**\nBom dia, grupo!"
    assert by_source["G2"]["content"] == "**Bruno (+5511987776666):**\nBoa tarde"
    assert by_source["P1"]["content"] == "Oi, é a Ana"
    assert {m["message_type"] for m in messages} == {"incoming"}
    assert by_source["G1"]["conversation_id"] == by_source["G2"]["conversation_id"]
    assert by_source["P1"]["conversation_id"] != by_source["G1"]["conversation_id"]
    assert len(bridge.chatwoot.conversations) == 2
    group_conversation = bridge.chatwoot.conversations[by_source["G1"]["conversation_id"]]
    group_contact = bridge.chatwoot.contacts[group_conversation["contact_id"]]
    assert group_contact["name"] == "Clientes VIP"
    assert group_contact["phone_number"] is None
    ana_conversation = bridge.chatwoot.conversations[by_source["P1"]["conversation_id"]]
    assert bridge.chatwoot.contacts[ana_conversation["contact_id"]]["phone_number"] == (
        "+5521987654321"
    )


def test_ignore_groups_stores_nothing_for_group_messages(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    gateway: FakeGateway,
    worker: Worker,
) -> None:
    bridge = make_gateway_bridge(
        client, account_token, chatwoot, gateway_url=gateway.base_url, chatwootIgnoreGroups=True
    )

    group = bridge.post_event("message.exchange", samples.group_text_data(message_id="G1"))

    assert group.status_code == 200, group.text
    assert group.json()["stored"] == 0
    assert bridge.events() == []
    exchange(bridge, samples.text_data(text="privado", message_id="P1"))
    [message] = bridge.wait_for_messages(1)
    bridge.wait_for_events("delivered", 1)
    assert message["content"] == "privado"
    assert len(bridge.events()) == 1
    [contact] = bridge.chatwoot.contacts.values()
    assert contact["phone_number"] == f"+{samples.CUSTOMER}"


# ---- sent from the business phone, and its receipts ------------------------------------------


def test_message_sent_from_the_phone_is_outgoing_and_its_receipts_update_it(
    bridge: GatewayBridge, gateway: FakeGateway
) -> None:
    exchange(bridge, samples.outgoing_text_data(message_id="3EB0OUT1"))

    message = one_message(bridge)
    assert message["message_type"] == "outgoing"
    assert message["source_id"] == "3EB0OUT1"
    assert message["content"] == "Claro! Qual o número do pedido?"
    [contact] = bridge.chatwoot.contacts.values()
    assert contact["phone_number"] == f"+{samples.CUSTOMER}"

    delivered = bridge.post_event("message.status", samples.status_data("3EB0OUT1", "delivered"))
    assert delivered.json() == {"received": 1, "stored": 1}
    wait_until(lambda: bridge.chatwoot.messages[message["id"]]["status"] == "delivered")
    read = bridge.post_event("message.status", samples.status_data("3EB0OUT1", "read"))
    assert read.json() == {"received": 1, "stored": 1}
    wait_until(lambda: bridge.chatwoot.messages[message["id"]]["status"] == "read")
    bridge.wait_for_events("delivered", 3)
    assert len(bridge.messages()) == 1
    assert gateway.sent == []  # never echoed back to WhatsApp


def test_failed_receipt_sets_the_external_error(bridge: GatewayBridge) -> None:
    exchange(bridge, samples.outgoing_text_data(message_id="3EB0OUT2"))
    message = one_message(bridge)

    failed = samples.status_data(
        "3EB0OUT2", "error", error={"code": 463, "message": "recipient unreachable"}
    )
    assert bridge.post_event("message.status", failed).json() == {"received": 1, "stored": 1}

    wait_until(lambda: bridge.chatwoot.messages[message["id"]]["status"] == "failed")
    assert bridge.chatwoot.messages[message["id"]]["external_error"] == "463: recipient unreachable"


# ---- what is not relayed --------------------------------------------------------------------


NOT_RELAYED: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "newsletter": ("message.exchange", lambda: samples.newsletter_data(message_id="N1")),
    "call.update": ("call.update", samples.call_update_data),
    "instance.state": ("instance.state", samples.instance_state_data),
}


@pytest.mark.parametrize("case", sorted(NOT_RELAYED))
def test_events_not_relayed_are_200_and_store_nothing(bridge: GatewayBridge, case: str) -> None:
    event, build = NOT_RELAYED[case]

    response = bridge.post_event(event, build(), path_event=event)

    assert response.status_code == 200, response.text
    assert response.json() == {"received": 0, "stored": 0}
    assert bridge.events() == []
    exchange(bridge, samples.text_data(text="depois", message_id="AFTER"))
    [message] = bridge.wait_for_messages(1)
    bridge.wait_for_events("delivered", 1)
    assert message["content"] == "depois"
    assert len(bridge.events()) == 1


# ---- Brazilian numbers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [(samples.CUSTOMER_12, samples.CUSTOMER), (samples.CUSTOMER, samples.CUSTOMER_12)],
    ids=["without-9-first", "with-9-first"],
)
def test_brazilian_number_with_and_without_ninth_digit_is_one_chat(
    bridge: GatewayBridge, first: str, second: str
) -> None:
    for number, text, message_id in ((first, "primeira", "BR1"), (second, "segunda", "BR2")):
        person = {"jid": f"{number}@s.whatsapp.net", "name": "João Silva"}  # no LID to link them
        exchange(
            bridge,
            samples.text_data(
                text=text, message_id=message_id, chat={**person, "type": "private"}, sender=person
            ),
        )

    messages = bridge.wait_for_messages(2)
    bridge.wait_for_events("delivered", 2)

    assert [m["content"] for m in messages] == ["primeira", "segunda"]
    [contact] = bridge.chatwoot.contacts.values()
    assert contact["phone_number"] == "+5511999998888"
    [conversation] = bridge.chatwoot.conversations.values()
    assert {m["conversation_id"] for m in messages} == {conversation["id"]}


def test_receipt_naming_the_number_without_ninth_digit_reaches_the_message(
    bridge: GatewayBridge,
) -> None:
    exchange(bridge, samples.outgoing_text_data(message_id="3EB0OUT3"))
    message = one_message(bridge)

    receipt = samples.status_data(
        "3EB0OUT3", "read", chat_jid=f"{samples.CUSTOMER_12}@s.whatsapp.net"
    )
    assert bridge.post_event("message.status", receipt).json() == {"received": 1, "stored": 1}

    wait_until(lambda: bridge.chatwoot.messages[message["id"]]["status"] == "read")
    assert {e.chat_key for e in bridge.events()} == {samples.CUSTOMER}
