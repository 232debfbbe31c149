"""The gateway (RyzeAPI) webhook parser, on bodies shaped like the ones RyzeAPI documents."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest

from app.relay.inbound.gateway_webhook import envelope_token, parse_gateway_webhook
from app.relay.messages import (
    InboundMessage,
    ParsedBody,
    ParseError,
    StatusUpdate,
    event_from_json,
)
from tests.fakes import gateway_samples as gs

EXCHANGE = "message.exchange"
STATUS = "message.status"


def parse(data: Any, event: str = EXCHANGE, path_event: str | None = None) -> ParsedBody:
    return parse_gateway_webhook(gs.webhook_body(event, data), path_event)


def only_message(data: dict[str, Any]) -> InboundMessage:
    parsed = parse(data)
    assert parsed.ignored == []
    assert len(parsed.events) == 1
    event = parsed.events[0]
    assert isinstance(event, InboundMessage)
    assert event_from_json(event.to_json()).to_json() == event.to_json()  # storable as-is
    return event


# ---- envelope ----
def test_envelope_token_is_the_instance_token() -> None:
    assert envelope_token(gs.webhook_body(EXCHANGE, {}, token="secret-1")) == "secret-1"


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "x",
        {},
        {"instanceData": "t"},
        {"instanceData": {"token": ""}},
        {"instanceData": {"token": 42}},
    ],
)
def test_envelope_token_absent(body: Any) -> None:
    assert envelope_token(body) is None


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "message.exchange",
        {"data": {}},
        {"event": "", "data": {}},
        {"event": "  ", "data": {}},
        {"event": 3, "data": {}},
        {"event": ["message.exchange"], "data": {}},
    ],
)
def test_only_bodies_without_an_envelope_raise(body: Any) -> None:
    with pytest.raises(ParseError):
        parse_gateway_webhook(body, None)


@pytest.mark.parametrize(
    "event, data, note",
    [
        (EXCHANGE, "x", "message.exchange: data is not an object ('x')"),
        (EXCHANGE, None, "message.exchange: data is not an object (NoneType)"),
        (EXCHANGE, [], "message.exchange: data is not an object (list)"),
        (EXCHANGE, {"id": "x"}, "message without sender x: "),
        (STATUS, [], "message.status: the record is not an object (list)"),
        (STATUS, "read", "message.status: the record is not an object ('read')"),
        (STATUS, {"type": "read"}, "message.status without a message id: {type}"),
    ],
)
def test_unusable_records_in_a_valid_envelope_are_notes_not_errors(
    event: str, data: Any, note: str
) -> None:
    parsed = parse_gateway_webhook(gs.webhook_body(event, data), event)
    assert parsed.events == []
    assert len(parsed.ignored) == 1 and parsed.ignored[0].startswith(note)


def test_message_without_id_gets_a_stable_id_from_its_data() -> None:
    data = gs.text_data(text="sem id")
    del data["id"], data["message"]["id"]
    msg = only_message(data)
    assert msg.message_id.startswith("noid-") and len(msg.message_id) == len("noid-") + 16
    assert msg.text == "sem id"
    assert only_message(copy.deepcopy(data)).message_id == msg.message_id  # a retry: same id
    data["message"]["content"]["text"] = "outro"
    assert only_message(data).message_id != msg.message_id


def test_message_ids_given_as_numbers_are_kept() -> None:
    data = gs.text_data()
    data["message"]["id"] = 12345
    assert only_message(data).message_id == "12345"


def test_data_without_a_message_object_is_read_as_the_message() -> None:
    data = gs.text_data(text="plano")
    flat = {**data["message"]}
    assert only_message(flat).text == "plano"


def test_a_list_of_messages_gives_one_event_or_note_each() -> None:
    data = [gs.text_data(message_id="A"), "junk", gs.newsletter_data(message_id="N")]
    parsed = parse_gateway_webhook(gs.webhook_body(EXCHANGE, data), None)
    assert [e.message_id for e in parsed.events if isinstance(e, InboundMessage)] == ["A"]
    assert len(parsed.ignored) == 2


def test_path_event_must_match_body_event() -> None:
    body = gs.webhook_body(EXCHANGE, gs.text_data())
    assert len(parse_gateway_webhook(body, EXCHANGE).events) == 1
    with pytest.raises(ParseError, match="does not match"):
        parse_gateway_webhook(body, STATUS)


@pytest.mark.parametrize(
    "event, data",
    [
        ("call.update", gs.call_update_data()),
        ("instance.state", gs.instance_state_data("qr_ready")),
        ("group.flow", {"action": "promote", "group": {"jid": gs.GROUP}}),
        ("label.update", {"labelId": "3", "action": "add"}),
        ("something.new", None),
    ],
)
def test_other_events_are_ignored_with_a_note(event: str, data: Any) -> None:
    parsed = parse_gateway_webhook(gs.webhook_body(event, data), event)
    assert parsed.events == []
    assert parsed.ignored == [f"{event}: not relayed"]


# ---- chats and directions ----
def test_incoming_private_text() -> None:
    msg = only_message(gs.text_data(text="Olá, preciso de ajuda"))
    assert msg.message_id == "3EB0C431D2A8F7B61E5A"
    assert (msg.kind, msg.text, msg.direction) == ("text", "Olá, preciso de ajuda", "incoming")
    assert (msg.chat_id, msg.sender_id, msg.is_group) == (gs.CUSTOMER, gs.CUSTOMER, False)
    assert (msg.chat_name, msg.sender_name) == ("João Silva", "João Silva")
    assert msg.timestamp == gs.WHEN_EPOCH
    assert gs.CUSTOMER_LID in msg.chat_aliases
    assert gs.CUSTOMER_12 in msg.chat_aliases  # the spelling without the 9th digit
    assert gs.CUSTOMER not in msg.chat_aliases


def test_brazilian_12_digit_jid_is_canonicalized_and_kept_as_alias() -> None:
    data = gs.text_data(
        chat={"jid": gs.CUSTOMER_12, "type": "private"}, sender={"jid": gs.CUSTOMER_12}
    )
    msg = only_message(data)
    assert msg.chat_id == msg.sender_id == gs.CUSTOMER
    assert gs.CUSTOMER_12 in msg.chat_aliases


def test_outgoing_from_the_business_phone() -> None:
    msg = only_message(gs.outgoing_text_data(text="Claro!"))
    assert msg.direction == "outgoing"
    assert msg.chat_id == gs.CUSTOMER  # the customer's chat, not the business number
    assert msg.sender_id == gs.BUSINESS
    assert msg.text == "Claro!"


def test_outgoing_with_only_a_lid_chat_does_not_take_the_business_phone() -> None:
    data = gs.outgoing_text_data(chat={"jid": gs.CUSTOMER_LID, "type": "private"})
    msg = only_message(data)
    assert msg.chat_id == gs.CUSTOMER_LID
    assert msg.sender_id == gs.BUSINESS


def test_direction_falls_back_to_from_me() -> None:
    data = gs.text_data()
    del data["message"]["direction"]
    assert only_message(data).direction == "incoming"
    data["message"]["fromMe"] = True
    assert only_message(data).direction == "outgoing"


@pytest.mark.parametrize("direction", ["sideways", 7, True, {"x": 1}])
def test_unknown_direction_is_incoming_and_logged(
    direction: Any, caplog: pytest.LogCaptureFixture
) -> None:
    data = gs.text_data(message_id="3EB0ODD")
    data["message"]["direction"] = direction
    with caplog.at_level(logging.WARNING, logger="app.relay.inbound.gateway_messages"):
        msg = only_message(data)
    assert (msg.direction, msg.chat_id, msg.kind) == ("incoming", gs.CUSTOMER, "text")
    logged = [r.getMessage() for r in caplog.records]
    assert any("3EB0ODD" in line and "direction" in line for line in logged)


def test_lid_chat_uses_the_phone_found_on_the_sender() -> None:
    msg = only_message(gs.lid_chat_data())
    assert msg.chat_id == gs.CUSTOMER
    assert msg.sender_id == gs.CUSTOMER
    assert gs.CUSTOMER_LID in msg.chat_aliases


def test_lid_only_chat_is_keyed_by_the_lid() -> None:
    data = gs.text_data(
        chat={"lid": gs.CUSTOMER_LID, "jid": gs.CUSTOMER_LID},
        sender={"lid": gs.CUSTOMER_LID, "name": "?"},
    )
    msg = only_message(data)
    assert (msg.chat_id, msg.sender_id, msg.chat_aliases) == (gs.CUSTOMER_LID, gs.CUSTOMER_LID, ())


def test_doc_style_lid_with_wrong_domain_is_normalized() -> None:
    """The catalog example shows ``"lid": "100@s.whatsapp.net"``; it is still a LID."""
    data = gs.text_data(
        chat={"jid": "5511999999999", "lid": "100@s.whatsapp.net", "type": "private"},
        sender={"jid": "5511999999999", "lid": "100@s.whatsapp.net"},
    )
    msg = only_message(data)
    assert msg.chat_id == "5511999999999"
    assert "100@lid" in msg.chat_aliases


@pytest.mark.parametrize(
    "chat, sender",
    [
        ({"type": "private"}, {"name": "x"}),
        ({"jid": "not-a-number", "type": "private"}, {"jid": "abc@s.whatsapp.net"}),
        ({"type": "group"}, {"jid": gs.CUSTOMER}),
        ("", None),
    ],
)
def test_message_without_any_chat_identity_is_a_note(chat: Any, sender: Any) -> None:
    data = gs.text_data(message_id="3EB0X")
    data["message"]["chat"], data["message"]["sender"] = chat, sender
    parsed = parse(data)
    assert parsed.events == []
    (note,) = parsed.ignored
    assert note.startswith("message without sender 3EB0X")


def test_outgoing_message_never_takes_the_business_as_the_chat() -> None:
    parsed = parse(gs.outgoing_text_data(chat={"type": "private"}))
    assert parsed.events == [] and parsed.ignored[0].startswith("message without sender")


def test_chat_and_sender_given_as_bare_jids() -> None:
    data = gs.text_data()
    data["message"]["chat"] = gs.CUSTOMER_LID
    data["message"]["sender"] = f"{gs.CUSTOMER_12}@s.whatsapp.net"
    msg = only_message(data)
    assert msg.chat_id == gs.CUSTOMER
    assert {gs.CUSTOMER_LID, gs.CUSTOMER_12} <= set(msg.chat_aliases)


def test_lid_chat_with_a_baileys_style_phone_field() -> None:
    msg = only_message(gs.lid_with_phone_alt_data())
    assert (msg.chat_id, msg.sender_id) == (gs.CUSTOMER, gs.CUSTOMER)
    assert gs.CUSTOMER_LID in msg.chat_aliases
    assert gs.CUSTOMER_12 in msg.chat_aliases
    assert msg.reply_address is None


@pytest.mark.parametrize(
    "sender",
    [
        {"jid": gs.CUSTOMER_LID, "phone": gs.CUSTOMER},
        {"jid": gs.CUSTOMER_LID, "senderAlt": f"{gs.CUSTOMER}@s.whatsapp.net"},
        {"jid": f"{gs.CUSTOMER}@s.whatsapp.net", "senderAlt": gs.CUSTOMER_LID},
    ],
)
def test_phone_and_lid_fields_on_the_sender_link_both(sender: dict[str, Any]) -> None:
    msg = only_message(gs.text_data(chat={"type": "private"}, sender=sender))
    assert msg.chat_id == gs.CUSTOMER
    assert gs.CUSTOMER_LID in msg.chat_aliases


def test_group_message() -> None:
    msg = only_message(gs.group_text_data(text="Bom dia"))
    assert (msg.chat_id, msg.is_group) == (gs.GROUP, True)
    assert (msg.sender_id, msg.sender_name) == ("5521987654321", "Ana")
    assert msg.chat_name == "Clientes VIP"
    assert msg.chat_aliases == ()


def test_group_jid_without_domain_and_lid_only_participant() -> None:
    data = gs.group_text_data(
        chat={"jid": "120363041234567890", "type": "group"},
        sender={"lid": "99887766554433@lid", "name": "Ana"},
    )
    msg = only_message(data)
    assert msg.chat_id == gs.GROUP
    assert msg.sender_id == "99887766554433@lid"


def test_newsletter_and_status_broadcast_are_ignored() -> None:
    parsed = parse(gs.newsletter_data())
    assert parsed.events == [] and "newsletter" in parsed.ignored[0]
    parsed = parse(gs.text_data(chat={"jid": "status@broadcast"}))
    assert parsed.events == [] and "broadcast" in parsed.ignored[0]


@pytest.mark.parametrize(
    "timestamp, expected",
    [
        (gs.WHEN, gs.WHEN_EPOCH),
        ("2026-04-28T07:30:00-03:00", gs.WHEN_EPOCH),
        (gs.WHEN_EPOCH, gs.WHEN_EPOCH),
        (gs.WHEN_EPOCH * 1000, gs.WHEN_EPOCH),
        (str(gs.WHEN_EPOCH), gs.WHEN_EPOCH),
        ("yesterday", None),
        (None, None),
    ],
)
def test_timestamps(timestamp: Any, expected: int | None) -> None:
    assert only_message(gs.text_data(timestamp=timestamp)).timestamp == expected


# ---- kinds ----
def test_image_with_caption_prefers_the_decrypted_s3_copy() -> None:
    msg = only_message(gs.image_data(caption="Foto do produto"))
    assert (msg.kind, msg.text) == ("image", "Foto do produto")
    assert msg.media is not None
    assert msg.media.url == "https://bucket.s3.amazonaws.com/suporte/3EB0.jpg"
    assert (msg.media.mime_type, msg.media.voice) == ("image/jpeg", False)


def test_media_url_and_inline_base64() -> None:
    msg = only_message(gs.media_data("image", s3_url=None, base64="iVBORw0KGgo=", caption=None))
    assert msg.media is not None
    assert msg.media.url == "https://mmg.whatsapp.net/v/t62.7118-24/1234.enc"
    assert msg.media.base64 == "iVBORw0KGgo="
    assert msg.text is None


def test_voice_note_is_audio_with_voice() -> None:
    msg = only_message(gs.ptt_data())
    assert msg.kind == "audio"
    assert msg.media is not None and msg.media.voice is True
    assert msg.media.mime_type == "audio/ogg; codecs=opus"


def test_plain_audio_is_not_a_voice_note() -> None:
    msg = only_message(gs.media_data("audio", mimetype="audio/mpeg"))
    assert msg.kind == "audio"
    assert msg.media is not None and msg.media.voice is False


def test_video_note_is_video() -> None:
    msg = only_message(gs.ptv_data())
    assert msg.kind == "video"
    assert msg.media is not None and msg.media.mime_type == "video/mp4"


def test_document_keeps_file_name_and_caption() -> None:
    msg = only_message(gs.document_data())
    assert (msg.kind, msg.text) == ("document", "Segue o contrato")
    assert msg.media is not None and msg.media.filename == "Contrato-2026.pdf"


def test_sticker() -> None:
    msg = only_message(gs.sticker_data())
    assert msg.kind == "sticker"
    assert msg.media is not None and msg.media.mime_type == "image/webp"


def test_unknown_media_type_is_kept_by_its_mime() -> None:
    assert only_message(gs.media_data("gif", mimetype="video/mp4")).kind == "video"
    assert only_message(gs.media_data("blob", mimetype="application/zip")).kind == "document"


def test_location() -> None:
    msg = only_message(gs.location_data())
    assert msg.kind == "location"
    assert msg.location is not None
    assert (msg.location.latitude, msg.location.longitude) == (-23.561414, -46.655881)
    assert msg.location.name == "MASP"
    assert msg.location.address is not None and "Paulista" in msg.location.address


def test_location_without_coordinates_is_unsupported_not_dropped() -> None:
    msg = only_message(gs.message_data(location={"name": "somewhere"}))
    assert (msg.kind, msg.unsupported_reason) == ("unsupported", "location without coordinates")


def test_single_contact_from_vcard() -> None:
    msg = only_message(gs.contact_data())
    assert msg.kind == "contacts"
    (card,) = msg.contacts
    assert card.name == "Maria Souza"
    assert card.phones == ("+55 21 98765-4321",)
    assert card.emails == ("maria@acme.com.br",)
    assert card.organization == "Acme Ltda"


def test_contacts_given_as_one_object() -> None:
    data = gs.message_data(contacts={"name": "Pedro", "phones": [{"phone": "+55 11 91234-5678"}]})
    (card,) = only_message(data).contacts
    assert (card.name, card.phones) == ("Pedro", ("+55 11 91234-5678",))


def test_several_contacts() -> None:
    msg = only_message(gs.contacts_data())
    assert [c.name for c in msg.contacts] == ["Maria Souza", "Pedro Lima"]
    assert msg.contacts[1].phones == ("+55 11 91234-5678",)


def test_reaction() -> None:
    msg = only_message(gs.reaction_data(emoji="❤️", target="wamid.agent.7"))
    assert (msg.kind, msg.reaction_emoji, msg.reaction_to) == ("reaction", "❤️", "wamid.agent.7")
    assert msg.quoted_id is None


def test_reaction_object_form() -> None:
    data = gs.message_data(reaction={"text": "😂", "messageId": "wamid.agent.8"})
    msg = only_message(data)
    assert (msg.reaction_emoji, msg.reaction_to) == ("😂", "wamid.agent.8")


def test_removed_reaction_is_relayed_with_an_empty_emoji() -> None:
    msg = only_message(gs.reaction_removed_data(target="wamid.agent.7"))
    assert (msg.kind, msg.reaction_emoji, msg.reaction_to) == ("reaction", "", "wamid.agent.7")


def test_removed_reaction_without_a_known_target() -> None:
    msg = only_message(gs.reaction_removed_data(target=None))
    assert (msg.kind, msg.reaction_emoji, msg.reaction_to) == ("reaction", "", None)


@pytest.mark.parametrize(
    "reply",
    [
        {"replyTo": {"messageId": "wamid.agent.1"}},
        {"replyTo": "wamid.agent.1"},
        {"quoted": {"id": "wamid.agent.1"}},
        {"quotedMessageId": "wamid.agent.1"},
    ],
)
def test_quoted_reply(reply: dict[str, Any]) -> None:
    msg = only_message(gs.message_data(content={"text": "Esse aqui"}, **reply))
    assert (msg.kind, msg.text, msg.quoted_id) == ("text", "Esse aqui", "wamid.agent.1")


def test_quoted_media_reply() -> None:
    data = gs.image_data()
    data["message"]["replyTo"] = {"messageId": "wamid.agent.2"}
    assert only_message(data).quoted_id == "wamid.agent.2"


def test_edit_carrying_the_edited_message_id_gets_its_own_event_id() -> None:
    """RyzeAPI's edit names the edited message by its own id: the event must not reuse it
    (the original is already stored under it), yet a retry of the same edit must dedupe."""
    msg = only_message(gs.edit_data(text="texto corrigido", message_id="3EB0ORIG"))
    assert (msg.kind, msg.text, msg.quoted_id) == ("edit", "texto corrigido", "3EB0ORIG")
    assert msg.message_id.startswith("3EB0ORIG-edit-") and msg.message_id != "3EB0ORIG"
    again = only_message(gs.edit_data(text="texto corrigido", message_id="3EB0ORIG"))
    assert again.message_id == msg.message_id
    second = only_message(gs.edit_data(text="de novo", message_id="3EB0ORIG"))
    assert second.message_id != msg.message_id


@pytest.mark.parametrize(
    "data",
    [
        gs.edit_data(text="novo", edited="3EB0ORIG", message_id="3EB0EDIT"),
        gs.message_data("3EB0EDIT", isEdit=True, content="novo", editedMessageId="3EB0ORIG"),
        gs.message_data("3EB0EDIT", type="edited", newContent="novo", key={"id": "3EB0ORIG"}),
    ],
)
def test_edit_naming_the_edited_message(data: dict[str, Any]) -> None:
    msg = only_message(data)
    assert (msg.message_id, msg.kind, msg.text, msg.quoted_id) == (
        "3EB0EDIT",
        "edit",
        "novo",
        "3EB0ORIG",
    )
    assert msg.chat_id == gs.CUSTOMER


def test_revoke_of_the_event_own_id() -> None:
    msg = only_message(gs.revoke_data(message_id="3EB0DEL"))
    assert (msg.kind, msg.quoted_id, msg.message_id) == ("revoke", "3EB0DEL", "3EB0DEL-revoke")


@pytest.mark.parametrize(
    "data",
    [
        gs.revoke_data(deleted="3EB0ORIG", message_id="3EB0DEL"),
        gs.message_data("3EB0DEL", isRevoke=True, revokedMessageId="3EB0ORIG"),
        gs.message_data("3EB0DEL", type="revoke", protocolMessage={"key": {"id": "3EB0ORIG"}}),
    ],
)
def test_revoke_naming_the_deleted_message(data: dict[str, Any]) -> None:
    msg = only_message(data)
    assert (msg.message_id, msg.kind, msg.quoted_id, msg.text) == (
        "3EB0DEL",
        "revoke",
        "3EB0ORIG",
        None,
    )


def test_outgoing_revoke_keeps_its_direction() -> None:
    msg = only_message(gs.revoke_data(direction="outgoing", message_id="3EB0DEL"))
    assert (msg.kind, msg.direction, msg.chat_id) == ("revoke", "outgoing", gs.CUSTOMER)


def test_poll_is_unsupported_but_keeps_its_question() -> None:
    msg = only_message(gs.poll_data())
    assert (msg.kind, msg.unsupported_reason, msg.text) == ("unsupported", "poll", "Qual horário?")


def test_message_without_type_or_content_names_what_arrived() -> None:
    msg = only_message(gs.message_data(buttons=[1], header={"x": 1}))
    assert msg.kind == "unsupported"
    assert msg.unsupported_reason == "message without content (fields: buttons, header)"


def test_media_without_url_or_base64_keeps_the_caption_and_says_why() -> None:
    msg = only_message(gs.media_data("image", url=None, s3_url=None, caption="Foto"))
    assert (msg.kind, msg.text) == ("image", "Foto")
    assert msg.media_error is not None and "no url" in msg.media_error


@pytest.mark.parametrize(
    "location",
    [
        {"latitude": "1e999", "longitude": 1},
        {"latitude": True, "longitude": 1},
        {"latitude": [1], "longitude": 1},
        {"latitude": "NaN", "longitude": 1},
    ],
)
def test_location_with_unusable_coordinates_is_unsupported(location: dict[str, Any]) -> None:
    msg = only_message(gs.message_data(location=location))
    assert (msg.kind, msg.unsupported_reason) == ("unsupported", "location without coordinates")


def test_contact_cards_with_odd_phone_fields() -> None:
    data = gs.message_data(contacts=[{"name": "Ana", "phones": 5}, {"name": "Bia", "phones": "x"}])
    msg = only_message(data)
    assert [(c.name, c.phones) for c in msg.contacts] == [("Ana", ()), ("Bia", ())]


def test_unknown_type_is_unsupported_never_dropped() -> None:
    msg = only_message(gs.unknown_data())
    assert msg.kind == "unsupported"
    assert msg.unsupported_reason == "message type 'pix'"
    assert msg.chat_id == gs.CUSTOMER


def test_button_reply_with_text_is_text() -> None:
    msg = only_message(
        gs.message_data(type="buttonsResponse", content={"text": "Falar com atendente"})
    )
    assert (msg.kind, msg.text) == ("text", "Falar com atendente")


# ---- message.status ----
def statuses(data: dict[str, Any]) -> list[StatusUpdate]:
    parsed = parse(data, STATUS, STATUS)
    assert all(isinstance(e, StatusUpdate) for e in parsed.events)
    return [e for e in parsed.events if isinstance(e, StatusUpdate)]


@pytest.mark.parametrize(
    "receipt, expected",
    [
        ("delivered", "delivered"),
        ("", "delivered"),
        ("read", "read"),
        ("played", "read"),
        ("sent", "sent"),
        ("server_error", "failed"),
        ("error", "failed"),
    ],
)
def test_receipts_map_to_statuses(receipt: str, expected: str) -> None:
    (update,) = statuses(gs.status_data("wamid.agent.1", receipt))
    assert (update.message_id, update.status) == ("wamid.agent.1", expected)
    assert update.recipient_id == gs.CUSTOMER
    assert update.timestamp == gs.WHEN_EPOCH
    assert event_from_json(update.to_json()) == update


def test_one_status_per_message_id() -> None:
    updates = statuses(gs.status_data(["wamid.a", "wamid.b", "wamid.a"], "read"))
    assert [(u.message_id, u.status) for u in updates] == [("wamid.a", "read"), ("wamid.b", "read")]
    assert len({u.natural_key for u in updates}) == 2


@pytest.mark.parametrize(
    "receipt", ["sender", "read_self", "played_self", "retry", "inactive", "peer_msg"]
)
def test_own_device_and_retry_receipts_are_ignored(receipt: str) -> None:
    parsed = parse(gs.status_data("wamid.agent.1", receipt), STATUS)
    assert parsed.events == []
    assert parsed.ignored == [f"wamid.agent.1: receipt {receipt!r} not relayed"]


def test_failed_status_carries_the_error() -> None:
    data = gs.status_data(
        "wamid.agent.1", "server_error", error={"code": 463, "message": "recipient unavailable"}
    )
    (update,) = statuses(data)
    assert (update.status, update.error_code, update.error_title) == (
        "failed",
        463,
        "recipient unavailable",
    )
    assert update.external_error == "463: recipient unavailable"


def test_failed_status_without_details_names_the_receipt() -> None:
    (update,) = statuses(gs.status_data("wamid.agent.1", "error"))
    assert (update.error_code, update.error_title) == (None, "error")


def test_group_receipt_is_keyed_by_the_group() -> None:
    (update,) = statuses(gs.status_data("wamid.agent.1", "read", chat_jid=gs.GROUP))
    assert update.recipient_id == gs.GROUP


def test_status_alternative_shapes() -> None:
    """A single id, a numeric status code and a ``chat_jid`` like the status endpoint's."""
    data = {
        "messageId": "wamid.x",
        "status": 4,
        "chat_jid": f"{gs.CUSTOMER_12}@s.whatsapp.net",
        "timestamp": gs.WHEN_EPOCH,
    }
    (update,) = statuses(data)
    assert (update.message_id, update.status, update.recipient_id) == (
        "wamid.x",
        "read",
        gs.CUSTOMER,
    )


# ---- RyzeAPI chat-status records (the spelling that used to be a 400) ----
@pytest.mark.parametrize(
    "status, code, expected",
    [
        ("READ", 4, "read"),
        ("read", 4, "read"),
        ("Delivered", 2, "delivered"),
        ("sent", 1, "sent"),
        ("played", 5, "read"),
        ("error", -1, "failed"),
        ("READ", None, "read"),
        ("something-new", 2, "delivered"),  # the code decides when the name is unknown
    ],
)
def test_chat_status_record(status: str, code: int | None, expected: str) -> None:
    chat = f"{gs.CUSTOMER_12}@s.whatsapp.net"
    record = gs.chat_status_record("wamid.agent.1", status, code, chat)
    (update,) = statuses(record)
    assert (update.message_id, update.status) == ("wamid.agent.1", expected)
    assert update.recipient_id == gs.CUSTOMER
    assert update.timestamp == gs.WHEN_EPOCH


def test_chat_status_code_alone() -> None:
    record = gs.chat_status_record("wamid.agent.1", "READ", 4)
    del record["status"]
    assert [u.status for u in statuses(record)] == ["read"]
    record["status_code"] = "2"
    assert [u.status for u in statuses(record)] == ["delivered"]


def test_several_chat_status_records_in_a_list() -> None:
    records = [
        gs.chat_status_record("wamid.a", "DELIVERED", 2),
        gs.chat_status_record("wamid.b", "READ", 4),
        gs.chat_status_record("wamid.c", "PENDING", 0),
        {"status": "READ"},
    ]
    parsed = parse(records, STATUS, STATUS)
    assert [(e.message_id, e.status) for e in parsed.events if isinstance(e, StatusUpdate)] == [
        ("wamid.a", "delivered"),
        ("wamid.b", "read"),
    ]
    assert parsed.ignored == [
        "wamid.c: receipt 'PENDING' not relayed",
        "message.status without a message id: {status}",
    ]


@pytest.mark.parametrize("key", ["statuses", "receipts", "data"])
def test_chat_status_records_held_under_a_key(key: str) -> None:
    data = {key: [gs.chat_status_record("wamid.a"), gs.chat_status_record("wamid.b", "sent", 1)]}
    assert [(u.message_id, u.status) for u in statuses(data)] == [
        ("wamid.a", "read"),
        ("wamid.b", "sent"),
    ]


def test_status_of_a_received_message_is_not_a_tick() -> None:
    record = gs.chat_status_record("wamid.c.1", "read", 4, direction="received")
    parsed = parse(record, STATUS)
    assert parsed.events == []
    assert parsed.ignored == ["wamid.c.1: status of a received message not relayed"]


def test_chat_status_record_for_a_lid_and_a_group() -> None:
    (lid,) = statuses(gs.chat_status_record(chat_jid=gs.CUSTOMER_LID))
    assert lid.recipient_id == gs.CUSTOMER_LID
    (group,) = statuses(gs.chat_status_record(chat_jid=gs.GROUP))
    assert group.recipient_id == gs.GROUP


def test_failed_chat_status_record_with_an_error_text() -> None:
    record = gs.chat_status_record("wamid.x", "ERROR", -1, error="recipient unreachable")
    (update,) = statuses(record)
    assert (update.status, update.error_code, update.error_title) == (
        "failed",
        None,
        "recipient unreachable",
    )


@pytest.mark.parametrize(
    "error",
    [{"code": 1e300, "message": "x"}, {"code": "9" * 5000}, {"code": True}, {"code": [1]}],
)
def test_unreadable_error_codes_are_dropped_not_fatal(error: Any) -> None:
    (update,) = statuses(gs.status_data("wamid.x", "error", error=error))
    assert (update.status, update.error_code) == ("failed", None)


def test_status_ids_as_numbers_and_snake_case_lists() -> None:
    updates = statuses({"message_ids": [17, "wamid.b", None, ""], "type": "read"})
    assert [u.message_id for u in updates] == ["17", "wamid.b"]
