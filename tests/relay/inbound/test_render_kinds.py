"""Rendering the message kinds of 2026 (edits, revokes, reaction removals, failed media) as
Chatwoot message bodies, incoming and outgoing alike."""

from __future__ import annotations

from typing import Any

import pytest

from app.relay.inbound.render import render_inbound
from app.relay.messages import Direction, InboundMessage, Media

ORIGINAL = "wamid.original"


def msg(kind: Any, direction: Direction = "incoming", **fields: Any) -> InboundMessage:
    return InboundMessage(
        message_id="wamid.new",
        chat_id="16505550199",
        sender_id="16505550199",
        kind=kind,
        direction=direction,
        **fields,
    )


@pytest.mark.parametrize("direction", ["incoming", "outgoing"])
def test_edit_quotes_the_original_with_the_new_text(direction: Direction) -> None:
    rendered = render_inbound(
        msg("edit", direction, text="Can I pick it up at *4pm* instead?", quoted_id=ORIGINAL)
    )

    assert rendered.content == "✏️ Edited: Can I pick it up at **4pm** instead?"
    assert rendered.content_attributes == {"in_reply_to_external_id": ORIGINAL}
    assert rendered.needs_media is False


def test_edit_without_text_still_says_what_happened() -> None:
    rendered = render_inbound(msg("edit", quoted_id=ORIGINAL))

    assert rendered.content == "✏️ Edited this message"
    assert rendered.content_attributes == {"in_reply_to_external_id": ORIGINAL}


@pytest.mark.parametrize("direction", ["incoming", "outgoing"])
def test_revoke_quotes_the_deleted_message(direction: Direction) -> None:
    rendered = render_inbound(msg("revoke", direction, quoted_id=ORIGINAL))

    assert rendered.content == "🗑️ Deleted this message"
    assert rendered.content_attributes == {"in_reply_to_external_id": ORIGINAL}


def test_reaction_removed_quotes_the_reacted_message() -> None:
    rendered = render_inbound(msg("reaction", reaction_emoji="", reaction_to=ORIGINAL))

    assert rendered.content == "Removed a reaction"
    assert rendered.content_attributes == {"in_reply_to_external_id": ORIGINAL}


def test_reaction_to_an_unknown_message_is_the_emoji_without_a_quote() -> None:
    rendered = render_inbound(msg("reaction", reaction_emoji="👍"))

    assert rendered.content == "Reacted 👍"
    assert rendered.content_attributes == {}


def test_media_error_posts_the_caption_and_names_the_file_without_fetching_it() -> None:
    rendered = render_inbound(
        msg(
            "image",
            text="Receipt *attached*",
            media=Media(mime_type="image/jpeg", media_id="1764091283375510"),
            media_error="400: Media download failed",
        )
    )

    assert rendered.content == (
        "Receipt **attached**\n\n"
        "⚠️ The image could not be fetched from WhatsApp: 400: Media download failed"
    )
    assert rendered.needs_media is False


def test_media_error_without_caption_names_the_document_by_its_file_name() -> None:
    rendered = render_inbound(
        msg(
            "document",
            media=Media(mime_type="application/pdf", media_id="9", filename="invoice_2026.pdf"),
            media_error="131052: Media download error",
        )
    )

    assert rendered.content == (
        "⚠️ The document “invoice\\_2026.pdf” could not be fetched from WhatsApp: "
        "131052: Media download error"
    )
    assert rendered.needs_media is False


def test_media_error_of_a_voice_note_says_voice_message() -> None:
    rendered = render_inbound(
        msg("audio", media=Media(mime_type="audio/ogg", voice=True), media_error="expired")
    )

    assert rendered.content == "⚠️ The voice message could not be fetched from WhatsApp: expired"


def test_unsupported_131060_is_a_visible_placeholder() -> None:
    rendered = render_inbound(
        msg("unsupported", unsupported_reason="131060: This message is unavailable")
    )

    assert rendered.content == "[Unsupported message: 131060: This message is unavailable]"
