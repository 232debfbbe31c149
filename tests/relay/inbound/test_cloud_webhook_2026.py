"""Cloud API webhook parsing of the 2026 shapes: BSUIDs and usernames, coexistence echoes,
edits and revokes, system messages that rename a person, odd reactions, media errors.

One focused test per body in ``tests/data/whatsapp_cloud/2026/`` (``tests/data/README.md`` describes
them); :func:`test_every_2026_body_has_its_test` keeps ``FILES`` equal to that folder.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.relay.inbound.cloud_webhook import parse_cloud_webhook
from app.relay.messages import InboundMessage, Media, ParsedBody, StatusUpdate
from tests.reference import whatsapp_cloud_dir

FOLDER = whatsapp_cloud_dir() / "2026"
PHONE_ID = "106540352242922"
CHANGE = "entry[0].changes[0]"

SHEENA = "16505551234"
SHEENA_BSUID = "US.13491208655302741918"
SHEENA_PARENT = "US.ENT.11815799212886844830"
SHEENA_NEW_BSUID = "US.40815592273318649021"
SHEENA_NEW_PARENT = "US.ENT.26004418739051127735"
ANA_BSUID = "BR.1349120865530274"
PABLO = "16505550199"
PABLO_BSUID = "US.20417736918402257"
BUSINESS = "15550783881"
ORIGINAL = "wamid.HBgLMTY1MDU1NTAxOTkVAgASGBRPUklHSU5BTAVAgASGBQzRUIwQTc1RjVBNkM4QjQyQzE3NwA="
REACTED = "wamid.HBgLQlVTSU5FU1NNU0cxNTU1MDc4Mzg4MQVAgASGBQzRUIwQTc1RjVBNkM4QjQyQzE3NwA="

FILES = {
    "bsuid_and_phone_text.json",
    "bsuid_only_image.json",
    "bsuid_only_text_with_username.json",
    "coexistence_edit.json",
    "coexistence_revoke.json",
    "history_chunk.json",
    "image_download_error.json",
    "multi_message_body.json",
    "reaction_no_message_id.json",
    "reaction_removed.json",
    "reaction_removed_no_emoji.json",
    "smb_app_state_sync.json",
    "smb_message_echoes_image.json",
    "smb_message_echoes_text.json",
    "status_delivered_bsuid_only.json",
    "status_failed_no_contacts_131047.json",
    "status_failed_no_contacts_131062_bsuid.json",
    "status_read_bsuid_only.json",
    "template_status_update_approved.json",
    "template_status_update_rejected.json",
    "unsupported_131060.json",
    "user_id_update_legacy_field_INFERRED.json",
    "user_id_update_system_user_changed_number.json",
    "user_id_update_system_user_changed_user_id.json",
}


def body_of(name: str) -> dict[str, Any]:
    assert name in FILES
    data: dict[str, Any] = json.loads((FOLDER / name).read_text())
    return data


def parse(name: str) -> ParsedBody:
    return parse_cloud_webhook(body_of(name), PHONE_ID)


def only_message(name: str) -> InboundMessage:
    parsed = parse(name)
    assert parsed.ignored == []
    [event] = parsed.events
    assert isinstance(event, InboundMessage)
    value = body_of(name)["entry"][0]["changes"][0]["value"]
    [sent] = value.get("messages") or value["message_echoes"]
    assert event.message_id == sent["id"]
    return event


def only_status(name: str) -> StatusUpdate:
    parsed = parse(name)
    assert parsed.ignored == []
    [event] = parsed.events
    assert isinstance(event, StatusUpdate)
    return event


def only_note(name: str) -> str:
    parsed = parse(name)
    assert parsed.events == []
    [note] = parsed.ignored
    return note


def test_bsuid_only_text_with_username() -> None:
    event = only_message("bsuid_only_text_with_username.json")
    assert (event.kind, event.text) == ("text", "Oi! Vocês entregam no sábado?")
    assert event.chat_id == event.sender_id == event.reply_address == ANA_BSUID
    assert event.chat_aliases == ()
    assert (event.chat_name, event.username) == ("Ana Souza", "ana.souza")


def test_bsuid_and_phone_text() -> None:
    event = only_message("bsuid_and_phone_text.json")
    assert event.chat_id == event.reply_address == SHEENA
    assert event.chat_aliases == (SHEENA_BSUID, SHEENA_PARENT)
    assert (event.chat_name, event.username) == ("Sheena Nelson", None)
    assert event.text == "Does it come in another color?"


def test_bsuid_only_image() -> None:
    event = only_message("bsuid_only_image.json")
    assert (event.kind, event.text, event.media_error) == ("image", "Este modelo, por favor", None)
    assert event.chat_id == event.reply_address == ANA_BSUID
    assert event.username == "ana.souza"
    assert event.media is not None
    assert event.media.media_id == "1287364519023847"
    assert event.media.url is not None and event.media.url.startswith("https://lookaside")


def test_status_delivered_bsuid_only() -> None:
    event = only_status("status_delivered_bsuid_only.json")
    assert (event.status, event.recipient_id) == ("delivered", ANA_BSUID)


def test_status_read_bsuid_only() -> None:
    event = only_status("status_read_bsuid_only.json")
    assert (event.status, event.recipient_id, event.timestamp) == ("read", ANA_BSUID, 1789200360)


def test_status_failed_no_contacts_131047() -> None:
    event = only_status("status_failed_no_contacts_131047.json")
    assert (event.status, event.recipient_id) == ("failed", SHEENA)
    assert event.external_error == "24-hour window closed — reply with a template"


def test_status_failed_no_contacts_131062_bsuid() -> None:
    event = only_status("status_failed_no_contacts_131062_bsuid.json")
    assert (event.status, event.recipient_id, event.error_code) == ("failed", ANA_BSUID, 131062)
    assert event.error_title == "Business-scoped user ID not supported"


def test_user_changed_user_id_links_the_previous_ids() -> None:
    event = only_message("user_id_update_system_user_changed_user_id.json")
    assert event.kind == "system"
    assert event.chat_id == event.reply_address == SHEENA_NEW_BSUID
    assert set(event.chat_aliases) == {SHEENA_BSUID, SHEENA_PARENT, SHEENA_NEW_PARENT}
    assert event.text == "User Sheena Nelson changed their business-scoped user ID"


def test_user_changed_number_replies_to_the_new_number() -> None:
    event = only_message("user_id_update_system_user_changed_number.json")
    assert event.kind == "system"
    assert event.chat_id == SHEENA  # the old number: the lane the person already has
    assert event.reply_address == "12195555358"
    assert set(event.chat_aliases) == {
        "12195555358",
        SHEENA_BSUID,
        SHEENA_NEW_BSUID,
        SHEENA_PARENT,
        SHEENA_NEW_PARENT,
    }


def test_user_id_update_legacy_field_is_noted() -> None:
    assert only_note("user_id_update_legacy_field_INFERRED.json") == (
        f"{CHANGE}: field 'user_id_update' ignored"
    )


def test_smb_message_echoes_text_is_outgoing() -> None:
    event = only_message("smb_message_echoes_text.json")
    assert (event.direction, event.kind) == ("outgoing", "text")
    assert event.text == "Your order is ready for pickup after 3pm."
    assert event.chat_id == event.reply_address == PABLO
    assert event.chat_aliases == (PABLO_BSUID,)
    assert event.sender_id == BUSINESS
    assert event.chat_name is None  # never name the customer after the business


def test_smb_message_echoes_image_is_outgoing_with_caption() -> None:
    event = only_message("smb_message_echoes_image.json")
    assert (event.direction, event.kind, event.text) == ("outgoing", "image", "Here it is in blue")
    assert event.chat_id == event.reply_address == SHEENA
    assert event.chat_aliases == (SHEENA_BSUID, SHEENA_PARENT)
    assert event.media == Media(
        mime_type="image/jpeg",
        media_id="1095518274463021",
        sha256="q2W8vZl0Rk3YtP6mB1cN9xH4sJ7aE5uF0gD2iLoKpQs=",
    )
    assert event.media_error is None


def test_coexistence_edit_quotes_the_original() -> None:
    event = only_message("coexistence_edit.json")
    assert (event.kind, event.quoted_id) == ("edit", ORIGINAL)
    assert event.text == "Can I pick it up at 4pm instead?"
    assert (event.chat_id, event.chat_aliases, event.reply_address) == (
        PABLO,
        (PABLO_BSUID,),
        PABLO,
    )


def test_coexistence_revoke_quotes_the_original() -> None:
    event = only_message("coexistence_revoke.json")
    assert (event.kind, event.quoted_id, event.text) == ("revoke", ORIGINAL, None)
    assert event.chat_id == PABLO


def test_unsupported_131060_is_a_visible_placeholder() -> None:
    event = only_message("unsupported_131060.json")
    assert event.kind == "unsupported"
    assert event.unsupported_reason == "131060: This message is unavailable"
    assert event.chat_id == PABLO


def test_reaction_removed_with_empty_emoji() -> None:
    event = only_message("reaction_removed.json")
    assert (event.kind, event.reaction_emoji, event.reaction_to) == ("reaction", "", REACTED)


def test_reaction_removed_without_emoji() -> None:
    event = only_message("reaction_removed_no_emoji.json")
    assert (event.kind, event.reaction_emoji, event.reaction_to) == ("reaction", "", REACTED)


def test_reaction_without_message_id() -> None:
    event = only_message("reaction_no_message_id.json")
    assert (event.kind, event.reaction_emoji, event.reaction_to) == ("reaction", "👍", None)


def test_image_download_error_keeps_caption_and_says_why() -> None:
    event = only_message("image_download_error.json")
    assert (event.kind, event.text) == ("image", "Receipt attached")
    assert event.media is not None and event.media.media_id == "1764091283375510"
    assert event.media_error == (
        "400: Media download failed: Not retrying as download is not retriable at this time"
        " (Last error was: ServerThrottle. Http request error: HTTP response code said error."
        " See logs for details)"
    )


def test_history_chunk_is_noted_not_imported() -> None:
    note = only_note("history_chunk.json")
    assert note == f"{CHANGE}: field 'history' ignored (history is not imported)"
    assert "Quando chega" not in note


def test_smb_app_state_sync_is_noted() -> None:
    note = only_note("smb_app_state_sync.json")
    assert note.startswith(f"{CHANGE}: field 'smb_app_state_sync' ignored")
    assert "16505550199" not in note


def test_template_status_update_approved_is_noted() -> None:
    note = only_note("template_status_update_approved.json")
    assert note.startswith(f"{CHANGE}: field 'message_template_status_update' ignored")


def test_template_status_update_rejected_is_noted() -> None:
    note = only_note("template_status_update_rejected.json")
    assert note.startswith(f"{CHANGE}: field 'message_template_status_update' ignored")


def test_multi_message_body_keeps_every_message() -> None:
    parsed = parse("multi_message_body.json")
    assert parsed.ignored == []
    events = [e for e in parsed.events if isinstance(e, InboundMessage)]
    assert len(events) == len(parsed.events) == 3
    assert [(e.chat_id, e.kind, e.chat_name) for e in events] == [
        (SHEENA, "text", "Sheena Nelson"),
        (ANA_BSUID, "unsupported", "Ana Souza"),
        ("818012345678", "image", "Kenji Watanabe"),
    ]
    assert events[1].unsupported_reason == "message type poll"
    assert events[1].username == "ana.souza"
    assert events[2].chat_aliases == ("JP.88120495573310264",)
    assert events[2].media_error is None and events[2].text is None


def test_every_2026_body_has_its_test() -> None:
    """A new reference body needs its own test above (and its name in FILES)."""
    assert {p.name for p in FOLDER.glob("*.json")} == FILES


# --- shapes around the 2026 bodies ------------------------------------------------------------


def one_body(message: dict[str, Any], field: str = "messages", **value: Any) -> dict[str, Any]:
    key = "message_echoes" if field == "smb_message_echoes" else "messages"
    change_value = {"metadata": {"phone_number_id": PHONE_ID}, key: [message], **value}
    return {"entry": [{"changes": [{"field": field, "value": change_value}]}]}


def one(message: dict[str, Any], field: str = "messages", **value: Any) -> InboundMessage:
    parsed = parse_cloud_webhook(one_body(message, field, **value), PHONE_ID)
    assert parsed.ignored == []
    [event] = parsed.events
    assert isinstance(event, InboundMessage)
    return event


def text(**fields: Any) -> dict[str, Any]:
    return {"id": "wamid.x", "type": "text", "text": {"body": "hi"}, **fields}


def test_edit_delivered_as_unsupported_is_a_placeholder() -> None:
    event = one(text(**{"from": PABLO, "type": "unsupported", "unsupported": {"type": "edit"}}))
    assert (event.kind, event.unsupported_reason) == ("unsupported", "edited a message")


def test_media_edit_takes_the_new_caption() -> None:
    edit = {
        "original_message_id": ORIGINAL,
        "message": {"type": "image", "image": {"caption": "new caption"}, "context": {"id": "x"}},
    }
    event = one(text(**{"from": PABLO, "type": "edit", "edit": edit}))
    assert (event.kind, event.quoted_id, event.text) == ("edit", ORIGINAL, "new caption")


def test_edit_without_original_is_a_placeholder() -> None:
    event = one(text(**{"from": PABLO, "type": "edit", "edit": {"message": {}}}))
    assert event.kind == "unsupported"
    assert event.unsupported_reason == "unreadable edit message: edit.original_message_id missing"


@pytest.mark.parametrize("mtype", ["request_welcome", "ephemeral", "poll"])
def test_unknown_types_keep_a_placeholder(mtype: str) -> None:
    event = one(text(**{"from": SHEENA, "type": mtype}))
    assert (event.kind, event.unsupported_reason) == ("unsupported", f"message type {mtype}")


def test_bsuid_in_from_is_read_as_a_bsuid() -> None:
    event = one(text(**{"from": ANA_BSUID}))
    assert event.chat_id == event.reply_address == ANA_BSUID
    assert event.chat_aliases == ()


def test_contact_is_matched_by_user_id_among_several() -> None:
    contacts = [
        {"profile": {"name": "Sheena Nelson"}, "wa_id": SHEENA, "user_id": SHEENA_BSUID},
        {
            "profile": {"name": "Ana", "username": "ana.souza"},
            "wa_id": "5511987654321",
            "user_id": ANA_BSUID,
        },
    ]
    event = one(text(from_user_id=ANA_BSUID), contacts=contacts)
    assert event.chat_id == event.reply_address == ANA_BSUID  # no `from`: keyed by the BSUID
    assert (event.chat_name, event.username) == ("Ana", "ana.souza")
    # the contact's phone (both Brazilian spellings) routes to the same person
    assert event.chat_aliases == ("5511987654321", "551187654321")


def test_user_changed_user_id_without_from_user_id_uses_the_system_ids() -> None:
    system = {
        "type": "user_changed_user_id",
        "previous_user_id": SHEENA_BSUID,
        "user_id": SHEENA_NEW_BSUID,
    }
    event = one({"id": "wamid.s", "type": "system", "system": system})
    assert (event.kind, event.text) == ("system", "changed their WhatsApp user id")
    assert event.chat_id == event.reply_address == SHEENA_NEW_BSUID
    assert event.chat_aliases == (SHEENA_BSUID,)


def test_echo_without_to_is_keyed_by_to_user_id() -> None:
    echo = text(**{"from": BUSINESS, "to_user_id": ANA_BSUID})
    event = one(echo, "smb_message_echoes")
    assert (event.direction, event.chat_id, event.reply_address) == (
        "outgoing",
        ANA_BSUID,
        ANA_BSUID,
    )


def test_echo_without_recipient_is_noted() -> None:
    parsed = parse_cloud_webhook(
        one_body(text(**{"from": BUSINESS}), "smb_message_echoes"), PHONE_ID
    )
    assert parsed.events == []
    assert parsed.ignored == [
        f"{CHANGE}.value.message_echoes[0]: message without recipient, ignored"
    ]


def test_status_without_recipient_is_kept_and_reads_older_error_shapes() -> None:
    status = {
        "id": "wamid.s",
        "status": "failed",
        "errors": [{"code": 131026, "message": "Undeliverable"}],
    }
    body = one_body(text(), statuses=[status])
    body["entry"][0]["changes"][0]["value"].pop("messages")
    [event] = parse_cloud_webhook(body, PHONE_ID).events
    assert isinstance(event, StatusUpdate)
    assert (event.recipient_id, event.error_code, event.error_title) == (
        "",
        131026,
        "Undeliverable",
    )


def test_absurdly_long_message_id_is_replaced_by_a_derived_one() -> None:
    event = one(text(**{"from": SHEENA, "id": "wamid." + "A" * 300}))
    assert event.message_id.startswith("noid-")
