"""What a gateway ``message.exchange`` says: its kind and content (text, media, place, cards...).

:func:`message_body` reads one ``message`` object into a :class:`Body`. It never raises and never
gives up: a message it cannot classify becomes ``unsupported`` with a reason naming what arrived.
Edits, revocations and reactions (removed ones included) are read here too.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from typing import Any

from app.relay.inbound.gateway_fields import first, ident, obj, text
from app.relay.messages import Location, Media, MessageKind, SharedContact

# media.type -> (kind, voice note)
_MEDIA_KINDS: dict[str, tuple[MessageKind, bool]] = {
    "image": ("image", False),
    "video": ("video", False),
    "ptv": ("video", False),  # round "video note"
    "audio": ("audio", False),
    "ptt": ("audio", True),  # push-to-talk voice note
    "document": ("document", False),
    "sticker": ("sticker", False),
}
_MIME_KINDS: dict[str, MessageKind] = {"image": "image", "video": "video", "audio": "audio"}
REVOKE_TYPES = frozenset({"message_revoke", "revoke", "revoked", "message_revoked"})
EDIT_TYPES = frozenset({"message_edit", "edit", "edited", "message_edited"})
# Where an edit or a revocation may name the message it changes (whatsmeow: the protocol
# message's ``key.id``); without one, the event's own id is the changed message's.
_TARGET_KEYS = (
    "editedMessageId",
    "revokedMessageId",
    "deletedMessageId",
    "originalMessageId",
    "targetMessageId",
    "targetId",
)
_EDIT_TEXT_KEYS = ("newContent", "newText", "editedText", "text")  # besides ``content``
# fields every message has; what is left says what arrived
_ENVELOPE_KEYS = frozenset(
    {"id", "messageId", "direction", "fromMe", "timestamp", "chat", "sender", "type"}
)


@dataclass(frozen=True)
class Body:
    kind: MessageKind
    text: str | None = None
    media: Media | None = None
    location: Location | None = None
    contacts: tuple[SharedContact, ...] = ()
    reaction_emoji: str | None = None
    reaction_to: str | None = None
    quoted_id: str | None = None
    unsupported_reason: str | None = None
    media_error: str | None = None
    own_id_suffix: str | None = None  # set when the event must not reuse the target's id


def message_type(msg: dict[str, Any], data: dict[str, Any]) -> str:
    return (text(msg.get("type")) or text(data.get("type"))).lower()[:60]


def message_body(msg: dict[str, Any], mtype: str, message_id: str) -> Body:
    """What the message says (see the module docstring)."""
    if mtype in REVOKE_TYPES or msg.get("isRevoke") is True:
        return _revoke(msg, message_id)
    if mtype in EDIT_TYPES or msg.get("isEdit") is True:
        return _edit(msg, message_id)
    reaction = obj(msg, "reaction")
    if reaction or mtype == "reaction":
        return _reaction(msg, reaction)
    body = _content(msg)
    if body is not None:
        return body
    reason = f"message type {mtype!r}" if mtype else f"message without content {_arrived(msg)}"
    return Body("unsupported", unsupported_reason=reason, quoted_id=quoted_id(msg))


def _content(msg: dict[str, Any]) -> Body | None:
    """An ordinary message (media, place, cards, poll, text), None when none of them."""
    quoted = quoted_id(msg)
    if obj(msg, "media"):
        return _with_quote(_media(msg, obj(msg, "media")), quoted)
    if obj(msg, "location"):
        return _with_quote(_location(obj(msg, "location")), quoted)
    cards = _contacts(msg)
    if cards:
        return Body("contacts", contacts=cards, quoted_id=quoted)
    if obj(msg, "poll"):
        question = first(obj(msg, "poll"), "name", "question", "title")
        return Body(
            "unsupported", text=question or None, unsupported_reason="poll", quoted_id=quoted
        )
    body = message_text(msg)
    return Body("text", text=body, quoted_id=quoted) if body is not None else None


def _with_quote(body: Body, quoted: str | None) -> Body:
    return replace(body, quoted_id=quoted)


def _arrived(msg: dict[str, Any]) -> str:
    keys = [str(k)[:30] for k in msg if k not in _ENVELOPE_KEYS][:6]
    return f"(fields: {', '.join(keys)})" if keys else "(no fields)"


def quoted_id(msg: dict[str, Any]) -> str | None:
    reply = msg.get("replyTo")
    reply_id = ident(reply, "messageId", "id") if isinstance(reply, dict) else text(reply)
    quoted = obj(msg, "quoted") or obj(msg, "quotedMessage")
    return (
        reply_id
        or ident(quoted, "id", "messageId")
        or ident(msg, "quotedMessageId")
        or ident(obj(msg, "contextInfo"), "stanzaId", "quotedMessageId")
        or None
    )


def message_text(msg: dict[str, Any]) -> str | None:
    content = msg.get("content")
    if isinstance(content, dict):
        return first(content, "text", "caption", "body") or None
    return text(content) or None


# ---- edits, revocations, reactions ----
def _target(msg: dict[str, Any]) -> str:
    """The message an edit or revocation changes, when the event names it."""
    protocol = obj(msg, "protocolMessage")
    return (
        ident(msg, *_TARGET_KEYS)
        or ident(obj(protocol, "key"), "id")
        or ident(obj(msg, "key"), "id")
        or ident(obj(msg, "edited"), "id", "messageId")
    )


def _edit(msg: dict[str, Any], message_id: str) -> Body:
    new_text = message_text(msg) or first(msg, *_EDIT_TEXT_KEYS) or None
    target = _target(msg) or message_id
    suffix = None
    if target == message_id:  # the event reuses the edited message's id: give it its own
        digest = hashlib.sha256((new_text or "").encode("utf-8", "surrogatepass")).hexdigest()
        suffix = f"edit-{digest[:12]}"
    return Body("edit", text=new_text, quoted_id=target, own_id_suffix=suffix)


def _revoke(msg: dict[str, Any], message_id: str) -> Body:
    # a deleted message quotes nothing, so a ``replyTo`` here names the deleted one
    target = _target(msg) or quoted_id(msg) or message_id
    return Body(
        "revoke", quoted_id=target, own_id_suffix="revoke" if target == message_id else None
    )


def _reaction(msg: dict[str, Any], reaction: dict[str, Any]) -> Body:
    """A reaction; an empty emoji is a removed reaction (kept, with its target when known)."""
    emoji = first(reaction, "text", "emoji", "reaction") or (message_text(msg) or "")
    target = ident(reaction, "messageId", "targetId", "id") or quoted_id(msg)
    return Body("reaction", reaction_emoji=emoji, reaction_to=target or None)


# ---- media, places, cards ----
def _media(msg: dict[str, Any], media: dict[str, Any]) -> Body:
    mtype = text(media.get("type")).lower()
    mime = first(media, "mimetype", "mimeType")[:200] or None
    if mtype in _MEDIA_KINDS:
        kind, voice = _MEDIA_KINDS[mtype]
    else:  # an unknown media type still carries bytes worth relaying
        kind, voice = _kind_from_mime(mime), False
    # s3Url is the gateway's decrypted copy; url may be WhatsApp's encrypted CDN object
    url = first(media, "s3Url", "url", "mediaUrl") or None
    inline = text(media.get("base64")) or None
    caption = text(media.get("caption")) or message_text(msg)
    return Body(
        kind,
        text=caption,
        media=Media(
            mime_type=mime,
            url=url,
            base64=inline,
            filename=first(media, "fileName", "filename") or None,
            voice=voice,
            sha256=first(media, "sha256", "fileSha256") or None,
        ),
        media_error=None if url or inline else "the gateway sent no url or base64 for the file",
    )


def _kind_from_mime(mime: str | None) -> MessageKind:
    return _MIME_KINDS.get((mime or "").split("/", 1)[0].lower(), "document")


def _coordinate(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _location(loc: dict[str, Any]) -> Body:
    latitude = _coordinate(loc.get("latitude", loc.get("degreesLatitude")))
    longitude = _coordinate(loc.get("longitude", loc.get("degreesLongitude")))
    if latitude is None or longitude is None:
        return Body("unsupported", unsupported_reason="location without coordinates")
    return Body(
        "location",
        location=Location(
            latitude=latitude,
            longitude=longitude,
            name=text(loc.get("name")) or None,
            address=text(loc.get("address")) or None,
        ),
    )


def _contacts(msg: dict[str, Any]) -> tuple[SharedContact, ...]:
    cards = msg.get("contacts") or msg.get("contact")
    cards = [cards] if isinstance(cards, dict) else cards
    if not isinstance(cards, list):
        return ()
    return tuple(_contact(c) for c in cards if isinstance(c, dict))


def _contact(card: dict[str, Any]) -> SharedContact:
    """A shared contact from its fields and/or its vCard (``TEL``, ``EMAIL``, ``ORG``, ``FN``)."""
    fields = _vcard(text(card.get("vcard")))
    listed = card.get("phones")
    phones = [
        p.strip() if isinstance(p, str) else first(p, "phone", "number", "wa_id")
        for p in (listed if isinstance(listed, list) else [])
        if isinstance(p, str | dict)
    ]
    name = first(card, "displayName", "name", "fullName") or fields.get("FN") or "Contact"
    return SharedContact(
        name=name,
        phones=tuple(dict.fromkeys(p for p in [*phones, *fields["TEL"]] if p)),
        emails=tuple(fields["EMAIL"]),
        organization=fields.get("ORG") or None,
    )


def _vcard(card: str) -> dict[str, Any]:
    """The few vCard properties we show: FN, ORG, every TEL and EMAIL."""
    fields: dict[str, Any] = {"TEL": [], "EMAIL": []}
    for line in card.replace("\r\n", "\n").split("\n"):
        key, sep, value = line.partition(":")
        if not sep or not value.strip():
            continue
        prop = key.split(";", 1)[0].split(".")[-1].upper()
        if prop in ("TEL", "EMAIL"):
            fields[prop].append(value.strip())
        elif prop in ("FN", "ORG") and prop not in fields:
            fields[prop] = value.strip().rstrip(";").replace(";", " ")
    return fields
