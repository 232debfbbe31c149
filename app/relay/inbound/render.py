"""Normalized WhatsApp message ▸ the body of a Chatwoot message.

Chatwoot renders message content as CommonMark (markdown-it), WhatsApp has its own markers:
``*bold*``, ``_italic_``, ``~strike~``, ````` ```mono``` `````. Markers are converted only where
WhatsApp itself would format: wrapping non-blank text at word boundaries, never inside a word
(``snake_case_names``, ``2*3*4``), a URL, an e-mail address or a code span.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.relay.messages import MEDIA_KINDS, InboundMessage, Location, SharedContact

MAPS_URL = "https://www.google.com/maps/search/?api=1&query={lat},{lng}"

# Private-use characters stand in for converted markers and protected spans while converting,
# so one pass never re-reads another pass's output.
_BOLD, _ITALIC, _STRIKE = "\ue010", "\ue011", "\ue012"
_MARKDOWN = {_BOLD: "**", _ITALIC: "*", _STRIKE: "~~"}
_SLOT = re.compile("\ue000(\\d+)\ue001")
_RESERVED = re.compile("[\ue000\ue001\ue010-\ue012]")

_FENCED = re.compile(r"```(.+?)```", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_URL = re.compile(r"(?:https?://|www\.)[^\s<>]+", re.IGNORECASE)
_EMAIL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_URL_TRAILING = ".,;:!?'\""
_LEFTOVER = re.compile(r"[*_]")
_MARKER_CHARS = "*_~"
_NAME_SPECIALS = re.compile(r"([\\`*_~\[\]])")


def _marker(char: str) -> re.Pattern[str]:
    """``char``-wrapped text on one line, not touching a letter, a digit or another ``char``."""
    m = re.escape(char)
    edge = rf"[^\s{m}]"
    opening = rf"(?<!{m})(?<![^\W_]){m}(?={edge})"
    closing = rf"{m}(?!{m})(?![^\W_])"
    return re.compile(rf"{opening}([^\n]*?{edge}|{edge}){closing}")


_MARKERS = ((_marker("*"), _BOLD), (_marker("_"), _ITALIC), (_marker("~"), _STRIKE))


@dataclass(frozen=True)
class RenderedMessage:
    """What to post to Chatwoot: ``content``, ``content_attributes``, and whether the
    attachment must be fetched and uploaded with it."""

    content: str
    content_attributes: dict[str, Any] = field(default_factory=dict)
    needs_media: bool = False


def render_inbound(msg: InboundMessage) -> RenderedMessage:
    """The Chatwoot body of ``msg`` (incoming or sent from the business phone alike)."""
    content = _RENDERERS.get(msg.kind, _render_text)(msg)
    attributes: dict[str, Any] = {}
    reply_to = msg.reaction_to if msg.kind == "reaction" else msg.quoted_id
    if reply_to:
        attributes["in_reply_to_external_id"] = reply_to
    if msg.is_group:
        content = _sender_prefix(msg) + ("\n" + content if content else "")
    if msg.media_error is not None:
        content = _media_error_note(msg, content)
    needs_media = msg.kind in MEDIA_KINDS and msg.media is not None and msg.media_error is None
    return RenderedMessage(content, attributes, needs_media)


def whatsapp_to_markdown(text: str) -> str:
    """Convert WhatsApp formatting in ``text`` to Chatwoot (CommonMark) markdown."""
    slots: list[str] = []

    def keep(rendered: str) -> str:
        slots.append(rendered)
        return f"\ue000{len(slots) - 1}\ue001"

    text = _RESERVED.sub("", text)
    text = _FENCED.sub(lambda m: keep(_code(m.group(1))), text)
    text = _INLINE_CODE.sub(lambda m: keep(m.group(0)), text)
    text = _URL.sub(lambda m: _keep_url(m, keep), text)
    text = _EMAIL.sub(lambda m: keep(m.group(0)), text)
    for pattern, sentinel in _MARKERS:
        text = pattern.sub(sentinel + r"\1" + sentinel, text)
    text = _escape_leftovers(text)
    for sentinel, markdown in _MARKDOWN.items():
        text = text.replace(sentinel, markdown)
    return _SLOT.sub(lambda m: slots[int(m.group(1))], text)


def _escape_leftovers(text: str) -> str:
    """Escape the markers WhatsApp shows literally but CommonMark could read as emphasis
    (``2*3*4``, ``__init__``, a pair split over two lines). Left alone: markers between
    blanks (``2 * 3``, ``* item`` bullets) and underscores inside words (``snake_case``)."""

    def escape(match: re.Match[str]) -> str:
        before = text[match.start() - 1] if match.start() else " "
        after = text[match.end()] if match.end() < len(text) else " "
        if before.isspace() and after.isspace():
            return match.group(0)
        if match.group(0) == "_" and before.isalnum() and after.isalnum():
            return "_"
        return "\\" + match.group(0)

    return _LEFTOVER.sub(escape, text)


def _code(body: str) -> str:
    """WhatsApp monospace: an inline code span, or a fenced block when it spans lines."""
    if "\n" in body:
        return f"```\n{body.strip(chr(10))}\n```"
    return f"`{body}`"


def _keep_url(match: re.Match[str], keep: Callable[[str], str]) -> str:
    """Protect a URL. Trailing punctuation stays outside, and so do closing markers when the
    URL is wrapped in them (``*https://x.y*``); other underscores belong to the URL."""
    url, start = match.group(0), match.start()
    wrappers = ""
    while start and match.string[start - 1] in _MARKER_CHARS:
        start -= 1
        wrappers += match.string[start]
    end = len(url)
    while end and (
        url[end - 1] in _URL_TRAILING + wrappers
        or (url[end - 1] == ")" and url[:end].count("(") < url[:end].count(")"))
    ):
        end -= 1
    return keep(url[:end]) + url[end:]


def escape_markdown(text: str) -> str:
    """Literal text (names, addresses) that must not be read as markdown."""
    return _NAME_SPECIALS.sub(r"\\\1", text)


def _sender_prefix(msg: InboundMessage) -> str:
    who = f"+{msg.sender_id}" if msg.sender_id.isdigit() else msg.sender_id
    if msg.sender_name:
        who = f"{escape_markdown(msg.sender_name)} ({who})"
    return f"**{who}:**"


def _render_text(msg: InboundMessage) -> str:
    return whatsapp_to_markdown(msg.text or "")


def _render_location(msg: InboundMessage) -> str:
    loc: Location | None = msg.location
    if loc is None:
        return "📍 Location"
    lines = [f"📍 {escape_markdown(loc.name)}" if loc.name else "📍 Location"]
    if loc.address:
        lines.append(escape_markdown(loc.address))
    lines.append(MAPS_URL.format(lat=loc.latitude, lng=loc.longitude))
    return "\n".join(lines)


def _render_contact(contact: SharedContact) -> str:
    title = escape_markdown(contact.name)
    if contact.organization:
        title += f" ({escape_markdown(contact.organization)})"
    lines = [f"👤 {title}"]
    lines += [f"Phone: {phone}" for phone in contact.phones]
    lines += [f"Email: {email}" for email in contact.emails]
    return "\n".join(lines)


def _render_contacts(msg: InboundMessage) -> str:
    if not msg.contacts:
        return "👤 Shared contact"
    return "\n\n".join(_render_contact(c) for c in msg.contacts)


def _render_plain(msg: InboundMessage) -> str:
    """Button and list titles (or a flow's answer): WhatsApp shows them unformatted."""
    return msg.text or ""


def _render_reaction(msg: InboundMessage) -> str:
    """A quote of the reacted message carries the context; without one, the emoji alone."""
    if not msg.reaction_emoji:
        return "Removed a reaction"
    if msg.reaction_to is None:
        return f"Reacted {msg.reaction_emoji}"
    return f"Reacted {msg.reaction_emoji} to a message"


def _render_edit(msg: InboundMessage) -> str:
    """Quoting the edited message (``quoted_id``): what it says now."""
    if not msg.text:
        return "✏️ Edited this message"
    return f"✏️ Edited: {whatsapp_to_markdown(msg.text)}"


def _render_revoke(msg: InboundMessage) -> str:
    """Quoting the deleted message (``quoted_id``); the original stays in Chatwoot."""
    return "🗑️ Deleted this message"


def _media_error_note(msg: InboundMessage, content: str) -> str:
    """The caption (if any), then which attachment WhatsApp could not provide, and why."""
    media = msg.media
    what: str = msg.kind if msg.kind in MEDIA_KINDS else "attachment"
    if media is not None and media.voice:
        what = "voice message"
    if media is not None and media.filename:
        what += f" “{escape_markdown(media.filename)}”"
    reason = escape_markdown(msg.media_error or "unknown error")
    note = f"⚠️ The {what} could not be fetched from WhatsApp: {reason}"
    return f"{content}\n\n{note}" if content else note


def _render_unsupported(msg: InboundMessage) -> str:
    """A visible placeholder, with whatever text the message carried (e.g. a poll question)."""
    placeholder = f"[Unsupported message: {msg.unsupported_reason or 'unknown type'}]"
    return f"{placeholder}\n{escape_markdown(msg.text)}" if msg.text else placeholder


def _render_system(msg: InboundMessage) -> str:
    return f"[System: {msg.text or ''}]"


_RENDERERS: dict[str, Callable[[InboundMessage], str]] = {
    "location": _render_location,
    "contacts": _render_contacts,
    "interactive": _render_plain,
    "button": _render_plain,
    "reaction": _render_reaction,
    "unsupported": _render_unsupported,
    "system": _render_system,
    "edit": _render_edit,
    "revoke": _render_revoke,
}
