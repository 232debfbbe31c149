"""Rendering WhatsApp messages as Chatwoot message bodies."""

from __future__ import annotations

from typing import Any

import pytest

from app.relay.inbound.render import RenderedMessage, render_inbound, whatsapp_to_markdown
from app.relay.messages import InboundMessage, Location, Media, SharedContact


def msg(kind: Any = "text", **fields: Any) -> InboundMessage:
    return InboundMessage(
        message_id="wamid.1",
        chat_id="5511999998888",
        sender_id="5511999998888",
        kind=kind,
        **fields,
    )


@pytest.mark.parametrize(
    ("whatsapp", "markdown"),
    [
        ("*bold*", "**bold**"),
        ("_italic_", "*italic*"),
        ("~strike~", "~~strike~~"),
        ("```mono```", "`mono`"),
        (
            "a *bold* and _it_ and ~gone~ and ```code```.",
            "a **bold** and *it* and ~~gone~~ and `code`.",
        ),
        ("*negrito*, _itálico_!", "**negrito**, *itálico*!"),
        ("(*p*)", "(**p**)"),
        ("*two words*", "**two words**"),
        # markers inside words or between blanks are literal
        ("snake_case_words", "snake_case_words"),
        ("my_var_name = 1", "my_var_name = 1"),
        ("2*3*4", "2\\*3\\*4"),
        ("2 * 3 * 4", "2 * 3 * 4"),
        ("x _ y", "x _ y"),
        ("~5 min ~10 min", "~5 min ~10 min"),
        ("* not bold*", "* not bold\\*"),
        ("__init__", "\\_\\_init\\_\\_"),
        # nested and adjacent
        ("*_both_*", "***both***"),
        ("_*both*_", "***both***"),
        ("*a* *b*", "**a** **b**"),
        ("*a*b*", "**a\\*b**"),
        ("*bold ~and strike~*", "**bold ~~and strike~~**"),
        # URLs and e-mail addresses are never reformatted
        ("https://example.com/a_b_c_d", "https://example.com/a_b_c_d"),
        ("see https://x.com/_q_/z.", "see https://x.com/_q_/z."),
        ("go www.site.org/*x*/y now", "go www.site.org/*x*/y now"),
        ("https://en.wikipedia.org/wiki/Foo_(bar)", "https://en.wikipedia.org/wiki/Foo_(bar)"),
        ("*https://x.com/a_b*.", "**https://x.com/a_b**."),
        ("_https://x.com/a_b_", "*https://x.com/a_b*"),
        ("mail john_doe_x@ex.com", "mail john_doe_x@ex.com"),
        ("_jo@ex.com_", "*jo@ex.com*"),
        # code keeps its content
        ("```_not_ *this*```", "`_not_ *this*`"),
        ("`_inline_`", "`_inline_`"),
        ("```line one\nline_two```", "```\nline one\nline_two\n```"),
        # line by line: a pair split over lines is literal, lists stay lists
        ("*bold\nline*", "\\*bold\nline\\*"),
        ("*one*\n_two_\n~three~", "**one**\n*two*\n~~three~~"),
        ("* item\n  * nested\n- dash", "* item\n  * nested\n- dash"),
        ("> _quoted_", "> *quoted*"),
        ("", ""),
        ("plain text", "plain text"),
    ],
)
def test_whatsapp_formatting_to_markdown(whatsapp: str, markdown: str) -> None:
    assert whatsapp_to_markdown(whatsapp) == markdown


def test_reserved_characters_in_input_do_not_break_conversion() -> None:
    assert whatsapp_to_markdown("a\ue0005\ue001 *b* \ue010") == "a5 **b** "


def test_text_message() -> None:
    rendered = render_inbound(msg(text="Hello *there*"))
    assert rendered == RenderedMessage("Hello **there**", {}, False)


def test_quoted_reply_points_at_the_quoted_message() -> None:
    rendered = render_inbound(msg(text="yes", quoted_id="wamid.quoted"))
    assert rendered.content == "yes"
    assert rendered.content_attributes == {"in_reply_to_external_id": "wamid.quoted"}


@pytest.mark.parametrize("kind", ["image", "video", "audio", "document", "sticker"])
def test_media_needs_download_and_uses_caption(kind: Any) -> None:
    media = Media(mime_type="x/y", media_id="123")
    with_caption = render_inbound(msg(kind, media=media, text="look _here_"))
    assert with_caption == RenderedMessage("look *here*", {}, True)
    without = render_inbound(msg(kind, media=media))
    assert without == RenderedMessage("", {}, True)


def test_media_reply_keeps_quote() -> None:
    rendered = render_inbound(msg("image", media=Media(media_id="1"), quoted_id="wamid.q"))
    assert rendered.needs_media
    assert rendered.content_attributes == {"in_reply_to_external_id": "wamid.q"}


def test_location_is_readable_with_maps_link() -> None:
    location = Location(
        latitude=37.44221496582,
        longitude=-122.16165924072,
        name="Philz Coffee",
        address="101 Forest Ave, Palo Alto, CA 94301",
    )
    rendered = render_inbound(msg("location", location=location))
    assert rendered.content == (
        "📍 Philz Coffee\n"
        "101 Forest Ave, Palo Alto, CA 94301\n"
        "https://www.google.com/maps/search/?api=1&query=37.44221496582,-122.16165924072"
    )
    assert not rendered.needs_media


def test_location_without_name_or_address() -> None:
    rendered = render_inbound(msg("location", location=Location(latitude=-23.5, longitude=-46.6)))
    assert rendered.content == (
        "📍 Location\nhttps://www.google.com/maps/search/?api=1&query=-23.5,-46.6"
    )


def test_location_name_is_not_read_as_markdown() -> None:
    location = Location(latitude=1.0, longitude=2.0, name="*Bar* _Central_")
    content = render_inbound(msg("location", location=location)).content
    assert content.splitlines()[0] == "📍 \\*Bar\\* \\_Central\\_"


def test_shared_contacts_as_text_lines() -> None:
    contacts = (
        SharedContact(
            name="Lucía Gómez",
            phones=("+1 (983) 555-2319", "+55 11 3333-4444"),
            emails=("lucia@example.com",),
            organization="Google",
        ),
        SharedContact(name="Bob", phones=("+1 555 0100",)),
    )
    rendered = render_inbound(msg("contacts", contacts=contacts))
    assert rendered.content == (
        "👤 Lucía Gómez (Google)\n"
        "Phone: +1 (983) 555-2319\n"
        "Phone: +55 11 3333-4444\n"
        "Email: lucia@example.com\n"
        "\n"
        "👤 Bob\n"
        "Phone: +1 555 0100"
    )
    assert rendered.content_attributes == {}


@pytest.mark.parametrize("kind", ["interactive", "button"])
def test_interactive_and_button_show_their_titles(kind: Any) -> None:
    rendered = render_inbound(
        msg(kind, text="Priority Mail Express\nNext Day to 2 Days", quoted_id="wamid.menu")
    )
    assert rendered.content == "Priority Mail Express\nNext Day to 2 Days"
    assert rendered.content_attributes == {"in_reply_to_external_id": "wamid.menu"}


def test_reaction_refers_to_the_reacted_message() -> None:
    rendered = render_inbound(msg("reaction", reaction_emoji="👍", reaction_to="wamid.target"))
    assert rendered == RenderedMessage(
        "Reacted 👍 to a message", {"in_reply_to_external_id": "wamid.target"}, False
    )


def test_removed_reaction() -> None:
    rendered = render_inbound(msg("reaction", reaction_emoji="", reaction_to="wamid.target"))
    assert rendered.content == "Removed a reaction"
    assert rendered.content_attributes == {"in_reply_to_external_id": "wamid.target"}


def test_unsupported_is_a_visible_placeholder() -> None:
    reason = "131051: Message type unknown (Message type is currently not supported.)"
    rendered = render_inbound(msg("unsupported", unsupported_reason=reason))
    assert rendered.content == f"[Unsupported message: {reason}]"
    assert not rendered.needs_media
    assert render_inbound(msg("unsupported")).content == "[Unsupported message: unknown type]"


def test_system_message() -> None:
    text = "User Sheena Nelson changed from 16505551234 to 12195555358"
    assert render_inbound(msg("system", text=text)).content == f"[System: {text}]"


def _group(**fields: Any) -> InboundMessage:
    return InboundMessage(
        message_id="wamid.g",
        chat_id="120363041234567890@g.us",
        sender_id="5511999998888",
        is_group=True,
        **fields,
    )


def test_group_message_is_prefixed_with_its_author() -> None:
    rendered = render_inbound(_group(kind="text", sender_name="Ana", text="hi *all*"))
    assert rendered.content == "**Ana (+5511999998888):**\nhi **all**"


def test_group_author_without_name_or_phone() -> None:
    assert render_inbound(_group(kind="text", text="hi")).content == "**+5511999998888:**\nhi"
    lid = InboundMessage(
        message_id="wamid.g",
        chat_id="1@g.us",
        sender_id="99@lid",
        kind="text",
        is_group=True,
        text="hi",
    )
    assert render_inbound(lid).content == "**99@lid:**\nhi"


def test_group_author_name_is_escaped() -> None:
    rendered = render_inbound(_group(kind="text", sender_name="*Ana*_x", text="hi"))
    assert rendered.content.startswith("**\\*Ana\\*\\_x (+5511999998888):**\n")


def test_group_media_without_caption_is_just_the_author() -> None:
    rendered = render_inbound(_group(kind="image", sender_name="Ana", media=Media(media_id="1")))
    assert rendered == RenderedMessage("**Ana (+5511999998888):**", {}, True)


def test_group_reaction_keeps_the_target() -> None:
    rendered = render_inbound(
        _group(kind="reaction", sender_name="Ana", reaction_emoji="❤️", reaction_to="wamid.t")
    )
    assert rendered.content == "**Ana (+5511999998888):**\nReacted ❤️ to a message"
    assert rendered.content_attributes == {"in_reply_to_external_id": "wamid.t"}


def test_outgoing_messages_render_the_same() -> None:
    incoming = render_inbound(msg(text="_ok_", quoted_id="wamid.q"))
    outgoing = render_inbound(msg(text="_ok_", quoted_id="wamid.q", direction="outgoing"))
    assert (
        outgoing
        == incoming
        == RenderedMessage("*ok*", {"in_reply_to_external_id": "wamid.q"}, False)
    )


def test_rendered_attributes_are_not_shared_between_messages() -> None:
    first = render_inbound(msg(text="a"))
    first.content_attributes["x"] = 1
    assert render_inbound(msg(text="b")).content_attributes == {}


def test_unsupported_keeps_the_text_it_carried() -> None:
    rendered = render_inbound(msg("unsupported", unsupported_reason="poll", text="Qual *horário*?"))

    assert rendered.content == "[Unsupported message: poll]\nQual \\*horário\\*?"
