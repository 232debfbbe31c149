"""Chatwoot inbox webhook parsing, from the reference example and the shapes around it."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from app.relay.messages import ParseError
from app.relay.outbound.chatwoot_webhook import (
    AgentReply,
    AgentTyping,
    ConversationStatusChanged,
    Ignored,
    OutboundAttachment,
    parse_chatwoot_webhook,
)
from tests.reference import reference_dir

EXAMPLE = reference_dir() / "chatwoot" / "webhook-message-created.example.json"
RECIPIENT = "4915112345678"


def example() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(EXAMPLE.read_text())
    return body


def reply(**changes: Any) -> dict[str, Any]:
    """The example with top-level fields replaced (``None`` values are kept as null)."""
    body = example()
    body.update(changes)
    return body


def status_body(event: str, status: str, **changes: Any) -> dict[str, Any]:
    """``conversation.webhook_data.merge(event:, changed_attributes:)`` for the example's chat."""
    body: dict[str, Any] = copy.deepcopy(example()["conversation"])
    body.update(
        event=event,
        status=status,
        changed_attributes=[{"status": {"previous_value": "open", "current_value": status}}],
    )
    body.update(changes)
    return body


def parsed_reply(body: Any) -> AgentReply:
    event = parse_chatwoot_webhook(body)
    assert isinstance(event, AgentReply), event
    return event


# ---- the reference example ----
def test_reference_example_is_an_agent_reply_with_its_photo() -> None:
    event = parsed_reply(example())
    assert event == AgentReply(
        chatwoot_message_id=9012,
        conversation_id=87,
        recipient=RECIPIENT,
        content="Here is a photo of the replacement part.",
        attachments=(
            OutboundAttachment(
                data_url="https://chatwoot.example.com/rails/active_storage/blobs/redirect/"
                "eyJfcmFpbHMiOnsi...--3f1c/replacement-part.jpg",
                file_type="image",
                content_type="image/jpeg",
                filename="replacement-part.jpg",
                file_size=184233,
            ),
        ),
        in_reply_to=None,
        in_reply_to_external_id=None,
        sender_name="Jane Agent",
        message_type="outgoing",
        content_type="text",
    )
    assert event.natural_key == "cw:9012"


def test_json_round_trip_keeps_everything() -> None:
    body = example()
    body["content_attributes"] = {"in_reply_to": 9000, "in_reply_to_external_id": "wamid.Q1"}
    event = parsed_reply(body)
    text = event.to_json()
    assert json.loads(text)["type"] == "agent_reply"
    again = AgentReply.from_json(text)
    assert again == event
    assert isinstance(again.attachments, tuple)
    assert isinstance(again.attachments[0], OutboundAttachment)


def test_status_change_json_round_trip_and_type_checks() -> None:
    event = ConversationStatusChanged(87, "resolved", RECIPIENT)
    assert ConversationStatusChanged.from_json(event.to_json()) == event
    with pytest.raises(ValueError):
        AgentReply.from_json(event.to_json())
    with pytest.raises(ValueError):
        ConversationStatusChanged.from_json(parsed_reply(example()).to_json())


# ---- what is not sent to WhatsApp ----
@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"private": True}, "private note 9012"),
        ({"message_type": "incoming"}, "incoming message 9012"),
        ({"message_type": "activity"}, "activity message 9012"),
        ({"message_type": 0}, "incoming message 9012"),
        ({"message_type": 2}, "activity message 9012"),
        ({"source_id": "wamid.HBgL"}, "has a source_id"),
        ({"content": "", "attachments": []}, "neither content nor attachments"),
        ({"content": None}, "neither content nor attachments"),
    ],
)
def test_messages_that_must_not_reach_whatsapp(changes: dict[str, Any], reason: str) -> None:
    body = reply(**changes)
    if changes.get("content") is None and "content" in changes:
        del body["attachments"]
    event = parse_chatwoot_webhook(body)
    assert isinstance(event, Ignored)
    assert reason in event.reason


def test_our_own_incoming_message_is_ignored_before_its_shape_is_judged() -> None:
    body = reply(message_type="incoming", source_id="wamid.X", conversation="not checked")
    assert isinstance(parse_chatwoot_webhook(body), Ignored)


@pytest.mark.parametrize(
    "event",
    [
        "conversation_typing_on",
        "conversation_typing_off",
        "conversation_created",
        "webwidget_triggered",
        "contact_created",
        "contact_updated",
        "inbox_updated",
    ],
)
def test_other_events_are_ignored_with_a_reason(event: str) -> None:
    result = parse_chatwoot_webhook(reply(event=event))
    assert isinstance(result, Ignored)
    assert result.reason


def test_an_agents_typing_is_reported_for_the_chat() -> None:
    body = {
        "event": "conversation_typing_on",
        "user": {"id": 5, "name": "Jane Agent", "email": "jane@acme.example", "type": "user"},
        "conversation": example()["conversation"],
        "is_private": False,
    }
    assert parse_chatwoot_webhook(body) == AgentTyping(87, RECIPIENT, on=True)


def test_message_updated_for_our_status_update_is_ignored_even_when_outgoing() -> None:
    body = reply(event="message_updated")
    body["content_attributes"] = {"external_error": "131047: Re-engagement message"}
    result = parse_chatwoot_webhook(body)
    assert isinstance(result, Ignored)
    assert "message_updated" in result.reason


# ---- message types ----
@pytest.mark.parametrize(
    ("value", "expected"),
    [("outgoing", "outgoing"), ("template", "template"), (1, "outgoing"), (3, "template")],
)
def test_outgoing_and_template_by_name_or_number(value: Any, expected: str) -> None:
    assert parsed_reply(reply(message_type=value)).message_type == expected


def test_template_keeps_its_content_type() -> None:
    event = parsed_reply(reply(message_type="template", content_type="input_csat"))
    assert (event.message_type, event.content_type) == ("template", "input_csat")


def unrelayable(body: Any, reason: str) -> Ignored:
    """``body`` is an agent reply that cannot be relayed: ignored, flagged for a WARNING."""
    event = parse_chatwoot_webhook(body)
    assert isinstance(event, Ignored), event
    assert event.malformed is True
    assert reason in event.reason
    return event


@pytest.mark.parametrize("value", [None, 7, -1, "outbound", True, 1.0, "", "01", [1]])
def test_unknown_message_type_is_ignored_as_malformed(value: Any) -> None:
    unrelayable(reply(message_type=value), "message_type")


def test_message_type_as_a_digit_string() -> None:
    assert parsed_reply(reply(message_type="1")).message_type == "outgoing"


def test_empty_source_id_is_no_source_id() -> None:
    assert parsed_reply(reply(source_id="")).chatwoot_message_id == 9012


def test_ids_sent_as_digit_strings_are_accepted() -> None:
    body = reply(id="9012")
    body["conversation"]["id"] = "87"
    event = parsed_reply(body)
    assert (event.chatwoot_message_id, event.conversation_id) == (9012, 87)


# ---- recipient and sender ----
def test_recipient_falls_back_to_the_pushed_message_copy() -> None:
    body = example()
    body["conversation"]["contact_inbox"] = None
    assert parsed_reply(body).recipient == RECIPIENT
    del body["conversation"]["contact_inbox"]
    assert parsed_reply(body).recipient == RECIPIENT


def test_no_recipient_anywhere_is_ignored_as_malformed() -> None:
    body = example()
    body["conversation"]["contact_inbox"] = {"source_id": ""}
    body["conversation"]["messages"][0]["conversation"]["contact_inbox"] = {"source_id": 7}
    ignored = unrelayable(body, "contact_inbox.source_id is missing")
    assert "9012" in ignored.reason


def test_sender_available_name_from_the_pushed_copy_wins() -> None:
    body = example()
    body["conversation"]["messages"][0]["sender"]["available_name"] = "Jane (Support)"
    assert parsed_reply(body).sender_name == "Jane (Support)"


def test_sender_name_when_the_pushed_copy_is_another_message() -> None:
    body = example()
    body["conversation"]["messages"][0]["id"] = 9011  # Chatwoot lists the last public message
    body["conversation"]["messages"][0]["sender"]["available_name"] = "Someone Else"
    body["sender"]["name"] = "Jane Agent"
    assert parsed_reply(body).sender_name == "Jane Agent"


def test_no_sender_gives_no_name() -> None:
    body = reply(sender=None)
    body["conversation"]["messages"] = []
    assert parsed_reply(body).sender_name is None


# ---- attachments ----
def attachment(**fields: Any) -> dict[str, Any]:
    base = copy.deepcopy(example()["attachments"][0])
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


@pytest.mark.parametrize(
    ("fields", "filename", "content_type"),
    [
        ({"content_type": ...}, "replacement-part.jpg", "image/jpeg"),
        (
            {"data_url": "https://cw.example/r/abc/invoice.pdf", "content_type": None},
            "invoice.pdf",
            "application/pdf",
        ),
        (
            {"data_url": "https://cw.example/r/abc/voice", "extension": "ogg", "content_type": ...},
            "voice.ogg",
            "audio/ogg",
        ),
        (
            {"data_url": "https://cw.example/r/abc/blob", "extension": None, "content_type": ...},
            "blob",
            None,
        ),
        (
            {"data_url": "https://cw.example/r/abc/Relat%C3%B3rio%20final.docx?x=1"},
            "Relatório final.docx",
            "image/jpeg",  # Chatwoot's own content_type is kept as sent
        ),
        ({"data_url": "https://cw.example/", "content_type": ...}, None, None),
    ],
)
def test_attachment_file_names_and_types(
    fields: dict[str, Any], filename: str | None, content_type: str | None
) -> None:
    event = parsed_reply(reply(attachments=[attachment(**fields)]))
    (only,) = event.attachments
    assert (only.filename, only.content_type) == (filename, content_type)


def test_attachments_keep_their_order_and_sizes() -> None:
    files = [
        attachment(file_type="file", data_url="https://cw.example/r/1/a.pdf", file_size=None),
        attachment(file_type="audio", data_url="https://cw.example/r/2/b.mp3", file_size=12),
    ]
    event = parsed_reply(reply(content=None, attachments=files))
    assert event.content == ""
    assert [(a.file_type, a.filename, a.file_size) for a in event.attachments] == [
        ("file", "a.pdf", None),
        ("audio", "b.mp3", 12),
    ]


@pytest.mark.parametrize(
    ("fields", "logged"),
    [
        ({"data_url": None}, "'image' without a data_url"),
        ({"data_url": ...}, "'image' without a data_url"),
        ({"data_url": "  ", "file_type": ...}, "'file' without a data_url"),
        ({"data_url": ["https://x"]}, "without a data_url"),
    ],
)
def test_an_unsendable_attachment_is_left_out_and_the_text_still_goes(
    fields: dict[str, Any], logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="app.relay.outbound.chatwoot_attachments"):
        event = parsed_reply(reply(attachments=[attachment(**fields)]))
    assert event.content == "Here is a photo of the replacement part."
    assert event.attachments == ()
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "9012" in record.getMessage() and logged in record.getMessage()
    assert "https://" not in record.getMessage()  # ActiveStorage URLs are signed


def test_only_the_broken_attachment_is_left_out() -> None:
    files = [{"file_type": "file"}, attachment(), "junk", 5]
    event = parsed_reply(reply(attachments=files))
    assert [a.filename for a in event.attachments] == ["replacement-part.jpg"]


def test_a_reply_whose_only_attachment_is_broken_is_ignored() -> None:
    body = reply(content=None, attachments=[attachment(data_url=None)])
    event = parse_chatwoot_webhook(body)
    assert event == Ignored("message 9012 has neither content nor attachments")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"file_type": ...}, ("image", "image/jpeg", 184233)),
        ({"file_type": ..., "content_type": ...}, ("image", "image/jpeg", 184233)),
        (
            {"file_type": None, "content_type": None, "data_url": "https://cw.example/r/a.pdf"},
            ("file", "application/pdf", 184233),
        ),
        ({"file_size": "big"}, ("image", "image/jpeg", None)),
        ({"file_size": -3}, ("image", "image/jpeg", None)),
        ({"file_size": "2048"}, ("image", "image/jpeg", 2048)),
        ({"content_type": 5}, ("image", "image/jpeg", 184233)),
        (
            {"extension": 5, "data_url": "https://cw.example/r/blob", "content_type": ...},
            ("image", None, 184233),
        ),
        ({"data_url": "http://[::1/x.png"}, ("image", "image/jpeg", 184233)),
    ],
)
def test_odd_attachment_fields_are_read_as_far_as_they_go(
    fields: dict[str, Any], expected: tuple[str, str | None, int | None]
) -> None:
    (only,) = parsed_reply(reply(attachments=[attachment(**fields)])).attachments
    assert (only.file_type, only.content_type, only.file_size) == expected


def test_a_single_attachment_object_instead_of_a_list() -> None:
    event = parsed_reply(reply(attachments=attachment()))
    assert [a.filename for a in event.attachments] == ["replacement-part.jpg"]


# ---- quotes ----
def test_quote_fields_come_from_content_attributes() -> None:
    body = reply(content_attributes={"in_reply_to": 9000, "in_reply_to_external_id": "wamid.Q1"})
    event = parsed_reply(body)
    assert (event.in_reply_to, event.in_reply_to_external_id) == (9000, "wamid.Q1")


def test_quote_of_a_message_without_source_id() -> None:
    body = reply(content_attributes={"in_reply_to": 9000, "in_reply_to_external_id": None})
    event = parsed_reply(body)
    assert (event.in_reply_to, event.in_reply_to_external_id) == (9000, None)


def test_double_encoded_content_attributes_are_read() -> None:
    body = reply(content_attributes=json.dumps({"in_reply_to": 9000}))
    assert parsed_reply(body).in_reply_to == 9000
    assert parsed_reply(reply(content_attributes="")).in_reply_to is None


# ---- conversation status ----
@pytest.mark.parametrize("status", ["resolved", "open", "pending", "snoozed"])
def test_conversation_status_changed(status: str) -> None:
    event = parse_chatwoot_webhook(status_body("conversation_status_changed", status))
    assert event == ConversationStatusChanged(
        conversation_id=87, status=status, recipient=RECIPIENT
    )


def test_conversation_updated_counts_only_when_status_changed() -> None:
    changed = parse_chatwoot_webhook(status_body("conversation_updated", "resolved"))
    assert changed == ConversationStatusChanged(87, "resolved", RECIPIENT)
    labels = status_body(
        "conversation_updated",
        "open",
        changed_attributes=[{"label_list": {"previous_value": [], "current_value": ["vip"]}}],
    )
    assert parse_chatwoot_webhook(labels) == Ignored("conversation_updated without a status change")
    assert isinstance(
        parse_chatwoot_webhook(
            status_body("conversation_updated", "open", changed_attributes=None)
        ),
        Ignored,
    )


def test_status_change_recipient_is_optional() -> None:
    body = status_body("conversation_status_changed", "resolved", contact_inbox=None)
    assert parse_chatwoot_webhook(body) == ConversationStatusChanged(87, "resolved", RECIPIENT)
    body["messages"] = []
    assert parse_chatwoot_webhook(body) == ConversationStatusChanged(87, "resolved", None)


# ---- malformed bodies ----
def drop(*path: str | int) -> Callable[[dict[str, Any]], None]:
    def apply(body: dict[str, Any]) -> None:
        target: Any = body
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return apply


def put(value: Any, *path: str | int) -> Callable[[dict[str, Any]], None]:
    def apply(body: dict[str, Any]) -> None:
        target: Any = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return apply


@pytest.mark.parametrize("mutate", [drop("event"), put(42, "event"), put(" ", "event")])
def test_a_body_without_an_event_is_a_parse_error(
    mutate: Callable[[dict[str, Any]], None],
) -> None:
    body = example()
    mutate(body)
    with pytest.raises(ParseError, match="event"):
        parse_chatwoot_webhook(body)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (drop("id"), "id None is not a Chatwoot id"),
        (put("abc", "id"), "id 'abc' is not a Chatwoot id"),
        (put(0, "id"), "id 0 is not a Chatwoot id"),
        (put(2**31, "id"), "is not a Chatwoot id"),
        (put("9" * 5000, "id"), "is not a Chatwoot id"),
        (drop("message_type"), "message_type"),
        (drop("conversation"), "conversation is not an object"),
        (put([], "conversation"), "conversation is not an object"),
        (drop("conversation", "id"), "conversation.id"),
        (put("yes", "private"), "private flag 'yes' is not a boolean"),
        (put(0, "private"), "private flag 0 is not a boolean"),
    ],
)
def test_unrelayable_replies_are_ignored_as_malformed(
    mutate: Callable[[dict[str, Any]], None], reason: str
) -> None:
    body = example()
    mutate(body)
    unrelayable(body, reason)


@pytest.mark.parametrize(
    ("mutate", "content", "files", "quote"),
    [
        (put(["text"], "content"), "", 1, None),
        (put({"a": 1}, "attachments"), "Here is a photo of the replacement part.", 0, None),
        (put(["x"], "attachments"), "Here is a photo of the replacement part.", 0, None),
        (put([1], "content_attributes"), "Here is a photo of the replacement part.", 1, None),
        (
            put("{not json", "content_attributes"),
            "Here is a photo of the replacement part.",
            1,
            None,
        ),
        (
            put({"in_reply_to": "x"}, "content_attributes"),
            "Here is a photo of the replacement part.",
            1,
            None,
        ),
        (
            put({"in_reply_to": 9000, "in_reply_to_external_id": 5}, "content_attributes"),
            "Here is a photo of the replacement part.",
            1,
            9000,
        ),
        (put(5, "content_type"), "Here is a photo of the replacement part.", 1, None),
    ],
)
def test_what_can_be_read_of_an_odd_reply_is_relayed(
    mutate: Callable[[dict[str, Any]], None], content: str, files: int, quote: int | None
) -> None:
    body = example()
    body["content_attributes"] = {}
    mutate(body)
    event = parsed_reply(body)
    assert (event.content, len(event.attachments), event.in_reply_to) == (content, files, quote)
    assert event.in_reply_to_external_id is None
    assert event.recipient == RECIPIENT


@pytest.mark.parametrize("body", [None, [], "message_created", 5, {}])
def test_non_objects_and_empty_bodies_are_parse_errors(body: Any) -> None:
    with pytest.raises(ParseError):
        parse_chatwoot_webhook(body)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"id": None}, "id None"),
        ({"status": None}, "status is missing"),
        ({"status": ""}, "status is missing"),
        ({"status": ["open"]}, "status is missing"),
        ({"id": "eighty-seven"}, "id 'eighty-seven'"),
    ],
)
def test_unreadable_status_changes_are_ignored_as_malformed(
    changes: dict[str, Any], reason: str
) -> None:
    body = status_body("conversation_status_changed", "open")
    body.update(changes)
    unrelayable(body, reason)


def test_ordinary_ignores_are_not_flagged_malformed() -> None:
    failure_tick = reply(event="message_updated", content_attributes={"external_error": "131047"})
    for body in (reply(private=True), failure_tick, reply(message_type=0)):
        event = parse_chatwoot_webhook(body)
        assert isinstance(event, Ignored) and event.malformed is False
