"""Cloud API webhook parsing, against Meta's own example bodies and the shapes around them."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import pytest

from app.relay.inbound.cloud_webhook import parse_cloud_webhook
from app.relay.messages import (
    Event,
    InboundMessage,
    Location,
    Media,
    ParseError,
    SharedContact,
    StatusUpdate,
    event_from_json,
)
from tests.reference import whatsapp_cloud_dir

FIXTURES = whatsapp_cloud_dir()
PHONE_ID = "106540352242922"
CUSTOMER = "16505551234"
NAME = "Sheena Nelson"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def fixture_phone_id(body: dict[str, Any]) -> str:
    value: str = body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"]
    return value


def message(message_id: str, kind: Any, timestamp: int, **fields: Any) -> InboundMessage:
    """A customer's message as the fixtures' single contact sends it."""
    defaults: dict[str, Any] = {
        "chat_id": CUSTOMER,
        "sender_id": CUSTOMER,
        "chat_name": NAME,
        "sender_name": NAME,
        "reply_address": CUSTOMER,
    }
    return InboundMessage(
        message_id=message_id, kind=kind, timestamp=timestamp, **{**defaults, **fields}
    )


def status(name: Any, **fields: Any) -> StatusUpdate:
    return StatusUpdate(
        message_id="wamid.EXAMPLE_BUSINESS_MSG_0001",
        status=name,
        recipient_id=CUSTOMER,
        timestamp=1750025300,
        **fields,
    )


ID_A = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
SHA = "ILLUSTRATIVE_SHA256_BASE64="

# file -> (events, ignored): every fixture, every field that matters.
EXPECTED: dict[str, tuple[list[Event], list[str]]] = {
    "inbound_text.json": (
        [message(ID_A, "text", 1749416383, text="Does it come in another color?")],
        [],
    ),
    "inbound_text_context_product.json": (
        [
            message(
                "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTA2NTUwRkNEMDdFQjJCRUU0NQA=",
                "text",
                1750016800,
                text="Is this still available? (product: 194836987003835/di9ozbzfi4)",
                quoted_id=None,
            )
        ],
        [],
    ),
    "inbound_text_quoted_reply.json": (
        [
            message(
                "wamid.EXAMPLE_TEXT_REPLY_0001",
                "text",
                1750025200,
                text="Yes, that works for me",
                quoted_id="wamid.EXAMPLE_BUSINESS_MSG_0001",
            )
        ],
        [],
    ),
    "inbound_reaction.json": (
        [
            message(
                ID_A,
                "reaction",
                1749419544,
                reaction_emoji="👍",
                reaction_to="wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0RTJEOTc2ODVERUY5RDlGNkYA",
            )
        ],
        [],
    ),
    "inbound_image.json": (
        [
            message(
                ID_A,
                "image",
                1744344496,
                text="Taj Mahal",
                media=Media(
                    mime_type="image/jpeg",
                    media_id="1003383421387256",
                    sha256="SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=",
                ),
            )
        ],
        [],
    ),
    "inbound_video.json": (
        [
            message(
                "wamid.EXAMPLE_VIDEO_0001",
                "video",
                1744344496,
                text="My vacation video",
                media=Media(mime_type="video/mp4", media_id="1003383421387002", sha256=SHA),
            )
        ],
        [],
    ),
    "inbound_audio_voice_note.json": (
        [
            message(
                "wamid.EXAMPLE_AUDIO_0001",
                "audio",
                1744344496,
                media=Media(
                    mime_type="audio/ogg; codecs=opus",
                    media_id="1003383421387001",
                    sha256=SHA,
                    voice=True,
                ),
            )
        ],
        [],
    ),
    "inbound_document.json": (
        [
            message(
                "wamid.EXAMPLE_DOCUMENT_0001",
                "document",
                1744344496,
                media=Media(
                    mime_type="application/pdf",
                    media_id="1003383421387003",
                    sha256=SHA,
                    filename="receipt.pdf",
                ),
            )
        ],
        [],
    ),
    "inbound_sticker.json": (
        [
            message(
                "wamid.EXAMPLE_STICKER_0001",
                "sticker",
                1744344496,
                media=Media(mime_type="image/webp", media_id="1003383421387004", sha256=SHA),
            )
        ],
        [],
    ),
    "inbound_location.json": (
        [
            message(
                "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTU2MjZEMDBGRkE3MENEMDE0RQA=",
                "location",
                1744344496,
                location=Location(
                    latitude=37.44221496582,
                    longitude=-122.16165924072,
                    name="Philz Coffee",
                    address="101 Forest Ave, Palo Alto, CA 94301",
                ),
            )
        ],
        [],
    ),
    "inbound_contacts.json": (
        [
            message(
                ID_A,
                "contacts",
                1744344496,
                contacts=(
                    SharedContact(
                        name="Lucía Gómez",
                        phones=("+1 (983) 555-2319",),
                        organization="Google",
                    ),
                ),
            )
        ],
        [],
    ),
    "inbound_unsupported.json": (
        [
            message(
                "wamid.HBgLMTQyMDU1NTA3NDkVAgASGBI5N0MwRjg0RTVBNUI1RDA2OTkA",
                "unsupported",
                1750090702,
                unsupported_reason=(
                    "131051: Message type unknown (Message type is currently not supported.)"
                ),
            )
        ],
        [],
    ),
    "inbound_button_quick_reply.json": (
        [
            message(
                "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUU0M0MxQzQzMUJCMTMwNUZFOQA=",
                "button",
                1750091045,
                text="Unsubscribe",
                quoted_id="wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJFNjk2OTMwNEZCQjhGMzUyQUYA",
            )
        ],
        [],
    ),
    "inbound_interactive_list_reply.json": (
        [
            message(
                "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUJDQ0NDM0FEODY4ODkzOTc5RgA=",
                "interactive",
                1749854575,
                text="Priority Mail Express\nNext Day to 2 Days",
                quoted_id="wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJGMzEyNzhENTZDMzNGODlDRDgA",
            )
        ],
        [],
    ),
    "inbound_interactive_button_reply.json": (
        [
            message(
                "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTZBQzg0MzQ4QjRCM0NGNkVGOAA=",
                "interactive",
                1750025136,
                text="Cancel",
                quoted_id="wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MEM2RUJFNkI0RENGQTVDRjUA",
            )
        ],
        [],
    ),
    "inbound_system_number_change.json": (
        [
            message(
                "wamid.HBgLMTk4MzU1NTE5NzQVAgASGAoxMTgyMDg2MjY3AA==",
                "system",
                1750269342,
                text="User Sheena Nelson changed from 16505551234 to 12195555358",
                chat_name=None,  # this body carries no contacts[]
                sender_name=None,
                chat_aliases=("12195555358",),  # the new number routes to the same person
                reply_address="12195555358",  # replies go to the new number
            )
        ],
        [],
    ),
    "status_sent.json": ([status("sent")], []),
    "status_delivered.json": ([status("delivered")], []),
    "status_read.json": ([status("read")], []),
    "status_failed_131047.json": (
        [status("failed", error_code=131047, error_title="Re-engagement message")],
        [],
    ),
    "value_errors_130429.json": (
        [],
        [
            "entry[0].changes[0].value.errors[0]: 130429: Rate limit hit (Message failed to send"
            " because there were too many messages sent from this phone number in a short"
            " period of time)"
        ],
    ),
}


def test_every_fixture_has_expectations() -> None:
    on_disk = {p.name for p in FIXTURES.glob("*.json")}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_to_exact_events(name: str) -> None:
    body = load(name)
    parsed = parse_cloud_webhook(body, fixture_phone_id(body))
    events, ignored = EXPECTED[name]
    assert parsed.events == events
    assert parsed.ignored == ignored


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_events_survive_storage_round_trip(name: str) -> None:
    body = load(name)
    for event in parse_cloud_webhook(body, PHONE_ID).events:
        restored = event_from_json(event.to_json())
        if isinstance(restored, InboundMessage):  # see test_aliases_survive_storage_round_trip
            restored = replace(restored, chat_aliases=tuple(restored.chat_aliases))
        assert restored == event


def test_aliases_survive_storage_round_trip() -> None:
    body = _body([_change([_text_message("wamid.br", sender="551199998888")])])
    event = parse_cloud_webhook(body, PHONE_ID).events[0]
    assert event_from_json(event.to_json()) == event


def test_failed_status_gives_chatwoot_external_error() -> None:
    parsed = parse_cloud_webhook(load("status_failed_131047.json"), PHONE_ID)
    event = parsed.events[0]
    assert isinstance(event, StatusUpdate)
    assert event.external_error == "24-hour window closed — reply with a template"


def _text_message(message_id: str, sender: str = CUSTOMER, body: str = "hi") -> dict[str, Any]:
    return {
        "from": sender,
        "id": message_id,
        "timestamp": "1750000000",
        "type": "text",
        "text": {"body": body},
    }


def _change(messages: list[dict[str, Any]], phone_id: str = PHONE_ID, **value: Any) -> Any:
    return {
        "field": "messages",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_id},
            "messages": messages,
            **value,
        },
    }


def _body(*changes_per_entry: list[Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "419561257915477", "changes": list(c)} for c in changes_per_entry],
    }


def test_batched_body_yields_every_message_in_order() -> None:
    body = _body(
        *[
            [_change([_text_message(f"wamid.{e}{c}{m}") for m in range(2)]) for c in range(2)]
            for e in range(2)
        ]
    )
    parsed = parse_cloud_webhook(body, PHONE_ID)
    ids = [event.message_id for event in parsed.events]
    assert ids == [f"wamid.{e}{c}{m}" for e in range(2) for c in range(2) for m in range(2)]
    assert len(ids) == 8
    assert parsed.ignored == []


def test_messages_and_statuses_of_one_change_are_both_kept() -> None:
    status_body = load("status_read.json")["entry"][0]["changes"][0]["value"]["statuses"]
    body = _body([_change([_text_message("wamid.m1")], statuses=status_body)])
    parsed = parse_cloud_webhook(body, PHONE_ID)
    assert [type(e).__name__ for e in parsed.events] == ["InboundMessage", "StatusUpdate"]


def test_change_for_another_phone_number_is_skipped_not_failed() -> None:
    body = _body(
        [
            _change([_text_message("wamid.other")], phone_id="999999999999999"),
            _change([_text_message("wamid.ours")]),
        ]
    )
    parsed = parse_cloud_webhook(body, PHONE_ID)
    assert [e.message_id for e in parsed.events] == ["wamid.ours"]
    assert parsed.ignored == ["entry[0].changes[0]: for phone_number_id 999999999999999, skipped"]


def test_fixture_for_other_phone_number_yields_nothing() -> None:
    parsed = parse_cloud_webhook(load("inbound_text.json"), "111111111111111")
    assert parsed.events == []
    assert len(parsed.ignored) == 1


def test_non_message_fields_are_ignored() -> None:
    body = _body([{"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}}])
    parsed = parse_cloud_webhook(body, PHONE_ID)
    assert parsed.events == []
    assert parsed.ignored == ["entry[0].changes[0]: field 'account_update' ignored"]


def test_other_object_is_ignored() -> None:
    parsed = parse_cloud_webhook({"object": "page", "entry": []}, PHONE_ID)
    assert parsed.events == []
    assert parsed.ignored == ["object 'page' is not whatsapp_business_account"]


def test_unknown_status_values_are_ignored() -> None:
    body = load("status_read.json")
    statuses = body["entry"][0]["changes"][0]["value"]["statuses"]
    statuses.insert(0, {**statuses[0], "status": "deleted"})
    statuses.append({**statuses[0], "status": "warning"})
    parsed = parse_cloud_webhook(body, PHONE_ID)
    assert parsed.events == [status("read")]
    assert parsed.ignored == [
        "entry[0].changes[0].value.statuses[0]: status 'deleted' of"
        " wamid.EXAMPLE_BUSINESS_MSG_0001 ignored",
        "entry[0].changes[0].value.statuses[2]: status 'warning' of"
        " wamid.EXAMPLE_BUSINESS_MSG_0001 ignored",
    ]


def test_brazilian_sender_is_canonicalized_with_raw_wa_id_as_alias() -> None:
    body = _body([_change([_text_message("wamid.br", sender="551199998888")])])
    body["entry"][0]["changes"][0]["value"]["contacts"] = [
        {"profile": {"name": "Other"}, "wa_id": "16505551234"},
        {"profile": {"name": "João"}, "wa_id": "551199998888"},
    ]
    event = parse_cloud_webhook(body, PHONE_ID).events[0]
    assert isinstance(event, InboundMessage)
    assert event.chat_id == event.sender_id == "5511999998888"
    assert event.chat_aliases == ("551199998888",)
    assert event.sender_name == event.chat_name == "João"  # matched by wa_id, not position


def test_brazilian_status_recipient_is_canonicalized() -> None:
    body = load("status_delivered.json")
    body["entry"][0]["changes"][0]["value"]["statuses"][0]["recipient_id"] = "552181234567"
    event = parse_cloud_webhook(body, PHONE_ID).events[0]
    assert isinstance(event, StatusUpdate)
    assert event.recipient_id == "5521981234567"


def test_profile_name_falls_back_to_first_contact() -> None:
    body = _body([_change([_text_message("wamid.x")])])
    body["entry"][0]["changes"][0]["value"]["contacts"] = [
        {"profile": {"name": "Only One"}, "wa_id": "999"}
    ]
    event = parse_cloud_webhook(body, PHONE_ID).events[0]
    assert isinstance(event, InboundMessage)
    assert event.sender_name == "Only One"


def _one(msg: dict[str, Any]) -> InboundMessage:
    event = parse_cloud_webhook(_body([_change([msg])]), PHONE_ID).events[0]
    assert isinstance(event, InboundMessage)
    return event


def test_removed_reaction_has_empty_emoji() -> None:
    msg = {**_text_message("wamid.r"), "type": "reaction"}
    del msg["text"]
    msg["reaction"] = {"message_id": "wamid.target"}
    event = _one(msg)
    assert (event.kind, event.reaction_emoji, event.reaction_to) == ("reaction", "", "wamid.target")
    msg["reaction"] = {"message_id": "wamid.target", "emoji": ""}
    assert _one(msg).reaction_emoji == ""


def test_media_url_from_newer_webhooks_is_kept() -> None:
    msg = {
        **_text_message("wamid.img"),
        "type": "image",
        "image": {"id": "42", "mime_type": "image/png", "url": "https://lookaside.example/x"},
    }
    event = _one(msg)
    assert event.media == Media(
        mime_type="image/png", media_id="42", url="https://lookaside.example/x"
    )
    assert event.text is None


def test_media_with_caption_and_quote() -> None:
    msg = {
        **_text_message("wamid.doc"),
        "type": "document",
        "document": {"id": "7", "filename": "a.pdf", "caption": "the invoice"},
        "context": {"from": "15550783881", "id": "wamid.quoted"},
    }
    event = _one(msg)
    assert event.text == "the invoice"
    assert event.quoted_id == "wamid.quoted"
    assert event.media is not None and event.media.filename == "a.pdf"


def test_unknown_type_becomes_unsupported_not_dropped() -> None:
    msg = {**_text_message("wamid.new"), "type": "hologram", "hologram": {"x": 1}}
    event = _one(msg)
    assert event.kind == "unsupported"
    assert event.unsupported_reason == "message type hologram"


def test_order_becomes_unsupported_with_its_items() -> None:
    msg = {
        **_text_message("wamid.order"),
        "type": "order",
        "order": {
            "catalog_id": "1",
            "text": "",
            "product_items": [
                {"product_retailer_id": "di9ozbzfi4", "quantity": 2},
                {"product_retailer_id": "nqryix03ez", "quantity": 1},
            ],
        },
    }
    event = _one(msg)
    assert event.kind == "unsupported"
    assert event.unsupported_reason == "order: 2 x di9ozbzfi4, 1 x nqryix03ez"


def test_flow_reply_keeps_its_answer() -> None:
    msg = {
        **_text_message("wamid.flow"),
        "type": "interactive",
        "interactive": {
            "type": "nfm_reply",
            "nfm_reply": {"name": "flow", "body": "Sent", "response_json": '{"a": 1}'},
        },
    }
    event = _one(msg)
    assert (event.kind, event.text) == ("interactive", 'Sent\n{"a": 1}')


def test_contact_card_fields() -> None:
    msg = {
        **_text_message("wamid.card"),
        "type": "contacts",
        "contacts": [
            {
                "name": {"first_name": "Ana", "last_name": "Lima"},
                "phones": [{"wa_id": "5511999998888"}, {"phone": "+55 11 3333-4444"}],
                "emails": [{"email": "ana@example.com", "type": "WORK"}],
            },
            {"phones": [{"phone": "+1 555 0100"}]},
        ],
    }
    assert _one(msg).contacts == (
        SharedContact(
            name="Ana Lima",
            phones=("+5511999998888", "+55 11 3333-4444"),
            emails=("ana@example.com",),
        ),
        SharedContact(name="+1 555 0100", phones=("+1 555 0100",)),
    )


def test_integer_timestamp_is_accepted() -> None:
    msg = {**_text_message("wamid.t"), "timestamp": 1750000001}
    assert _one(msg).timestamp == 1750000001


def _broken(path: list[Any], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(load("inbound_text.json"))
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


MSG = ["entry", 0, "changes", 0, "value", "messages", 0]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([], "body is not an object"),
        ("text", "body is not an object"),
        (None, "body is not an object"),
        ({"object": "whatsapp_business_account"}, "entry is not a list"),
        ({"entry": {"id": "1"}}, "entry is not a list"),
    ],
)
def test_malformed_bodies_raise_parse_error(body: Any, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_cloud_webhook(body, PHONE_ID)


CHANGE = "entry[0].changes[0]"


@pytest.mark.parametrize(
    ("body", "note"),
    [
        ({"entry": ["x"]}, "entry[0] is not an object, ignored"),
        ({"entry": [{"id": "1"}]}, "entry[0].changes is missing, ignored"),
        (
            _broken(["entry", 0, "changes", 0, "value"], "x"),
            f"{CHANGE}.value is not an object, ignored",
        ),
        (
            _broken(["entry", 0, "changes", 0, "value", "metadata"], KeyError),
            f"{CHANGE}.value.metadata is missing, ignored",
        ),
        (
            _broken(["entry", 0, "changes", 0, "field"], 5),
            f"{CHANGE}.field is not a string, ignored",
        ),
        (
            _broken(["entry", 0, "changes", 0, "value", "messages"], {}),
            f"{CHANGE}.value.messages is not a list, ignored",
        ),
        (
            _broken([*MSG, "from"], KeyError),
            f"{CHANGE}.value.messages[0]: message without sender, ignored",
        ),
        (
            _broken([*MSG, "from"], "not-a-number"),
            f"{CHANGE}.value.messages[0]: message without sender, ignored",
        ),
    ],
)
def test_malformed_parts_are_noted_not_refused(body: Any, note: str) -> None:
    """Lenient at the door: only a body that is no WhatsApp body at all is a 400."""
    parsed = parse_cloud_webhook(body, PHONE_ID)
    assert parsed.events == []
    assert parsed.ignored == [note]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (_broken([*MSG, "timestamp"], "yesterday"), {"kind": "text", "timestamp": None}),
        (_broken([*MSG, "context"], "wamid.x"), {"kind": "text", "quoted_id": None}),
        (
            _broken([*MSG, "type"], KeyError),
            {"kind": "unsupported", "unsupported_reason": "message without a type"},
        ),
        (
            _broken([*MSG, "text"], "plain"),
            {
                "kind": "unsupported",
                "unsupported_reason": "unreadable text message: text is not an object",
            },
        ),
        (
            _broken([*MSG, "text"], {"body": 3}),
            {
                "kind": "unsupported",
                "unsupported_reason": "unreadable text message: text.body is not a string",
            },
        ),
        (
            _broken([*MSG, "text"], {}),
            {
                "kind": "unsupported",
                "unsupported_reason": "unreadable text message: text.body missing",
            },
        ),
    ],
)
def test_malformed_message_is_relayed_with_what_could_be_read(
    body: Any, fields: dict[str, Any]
) -> None:
    [event] = parse_cloud_webhook(body, PHONE_ID).events
    assert isinstance(event, InboundMessage)
    assert event.message_id == ID_A
    assert (event.chat_id, event.reply_address) == (CUSTOMER, CUSTOMER)
    assert {k: getattr(event, k) for k in fields} == fields


def test_message_without_id_gets_a_stable_derived_id() -> None:
    body = _broken([*MSG, "id"], KeyError)
    [first] = parse_cloud_webhook(body, PHONE_ID).events
    [again] = parse_cloud_webhook(copy.deepcopy(body), PHONE_ID).events
    assert isinstance(first, InboundMessage)
    assert first.message_id.startswith("noid-") and len(first.message_id) == len("noid-") + 16
    assert first.message_id == again.message_id
    assert (first.kind, first.text) == ("text", "Does it come in another color?")
    other = _broken([*MSG, "id"], KeyError)
    other["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = "something else"
    assert parse_cloud_webhook(other, PHONE_ID).events[0].message_id != first.message_id


BAD_LATITUDE = "unreadable location message: location.latitude is not a number"


@pytest.mark.parametrize(
    ("mtype", "payload", "fields"),
    [
        (
            "image",
            {"mime_type": "image/jpeg"},
            {
                "kind": "image",
                "media": Media(mime_type="image/jpeg"),
                "media_error": "no media id in the webhook",
            },
        ),
        (
            "location",
            {"latitude": "37.4", "longitude": 1},
            {"unsupported_reason": BAD_LATITUDE},
        ),
        (
            "location",
            {"latitude": True, "longitude": 1},
            {"unsupported_reason": BAD_LATITUDE},
        ),
        (
            "reaction",
            {"emoji": "👍"},
            {"kind": "reaction", "reaction_to": None, "reaction_emoji": "👍"},
        ),
        (
            "interactive",
            {"type": "button_reply"},
            {
                "kind": "unsupported",
                "unsupported_reason": (
                    "unreadable interactive message: interactive.button_reply is missing"
                ),
            },
        ),
        (
            "contacts",
            {"name": "x"},
            {"unsupported_reason": "unreadable contacts message: contacts is not a list"},
        ),
    ],
)
def test_malformed_payloads_become_readable_events(
    mtype: str, payload: Any, fields: dict[str, Any]
) -> None:
    msg = {**_text_message("wamid.bad"), "type": mtype, mtype: payload}
    [event] = parse_cloud_webhook(_body([_change([msg])]), PHONE_ID).events
    assert isinstance(event, InboundMessage)
    assert event.message_id == "wamid.bad"
    assert {k: getattr(event, k) for k in fields} == fields


def test_bad_status_recipient_keeps_the_status() -> None:
    body = load("status_sent.json")
    body["entry"][0]["changes"][0]["value"]["statuses"][0]["recipient_id"] = "abc"
    [event] = parse_cloud_webhook(body, PHONE_ID).events
    assert event == replace(status("sent"), recipient_id="")


def test_notes_and_parse_errors_do_not_echo_values() -> None:
    parsed = parse_cloud_webhook(_broken([*MSG, "from"], "secret-token-value"), PHONE_ID)
    assert parsed.ignored and "secret-token-value" not in " ".join(parsed.ignored)
    with pytest.raises(ParseError) as caught:
        parse_cloud_webhook({"entry": "secret-token-value"}, PHONE_ID)
    assert "secret-token-value" not in str(caught.value)
