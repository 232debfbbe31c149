"""Parse a RyzeAPI-compatible gateway webhook into normalized events.

The envelope is ``{"event", "data", "instanceData": {"baseUrl", "instance", "token"}}``.
``message.exchange`` becomes one :class:`InboundMessage`. ``message.status`` becomes one
:class:`StatusUpdate` per message id it covers. Every other event is reported in
``ParsedBody.ignored``. The field names are RyzeAPI's (see ``tests/fakes/RYZEAPI_NOTES.md``).
Where the docs do not show a field, several likely spellings are accepted: a message the
parser cannot classify is kept as ``unsupported``, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.relay.messages import (
    Direction,
    InboundMessage,
    Location,
    Media,
    MessageKind,
    ParsedBody,
    ParseError,
    SharedContact,
    StatusName,
    StatusUpdate,
)
from app.relay.phones import canonical_phone, is_group_jid, is_lid, phone_aliases

EXCHANGE = "message.exchange"
STATUS = "message.status"

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
_RECEIPTS: dict[str, StatusName] = {
    "": "delivered",  # whatsmeow's plain delivery receipt has an empty type
    "delivered": "delivered",
    "delivery": "delivered",
    "read": "read",
    "played": "read",
    "sent": "sent",
    "server": "sent",
    "server_error": "failed",
    "error": "failed",
    "failed": "failed",
}
# the status endpoint's numeric codes (pending 0, sent 1, delivered 2, received 3, read 4, ...)
_RECEIPT_CODES: dict[int, StatusName] = {
    1: "sent",
    2: "delivered",
    4: "read",
    5: "read",
    -1: "failed",
}
_REVOKE_TYPES = frozenset({"message_revoke", "revoke", "revoked", "message_revoked"})
_EDIT_TYPES = frozenset({"message_edit", "edit", "edited", "message_edited"})
_DIRECTIONS: dict[str, Direction] = {
    "incoming": "incoming",
    "received": "incoming",
    "inbound": "incoming",
    "in": "incoming",
    "outgoing": "outgoing",
    "sent": "outgoing",
    "outbound": "outgoing",
    "out": "outgoing",
}


def envelope_token(body: Any) -> str | None:
    """``instanceData.token``: the gateway instance's own token, for the webhook to verify."""
    instance_data = body.get("instanceData") if isinstance(body, dict) else None
    token = instance_data.get("token") if isinstance(instance_data, dict) else None
    return token if isinstance(token, str) and token else None


def parse_gateway_webhook(body: Any, path_event: str | None) -> ParsedBody:
    """Normalize one gateway webhook body.

    ``path_event`` is the ``/:event`` suffix the gateway appends when ``byEvents`` is on.
    Raises :class:`ParseError` for a body the gateway would not send.
    """
    if not isinstance(body, dict):
        raise ParseError("body is not a JSON object")
    event = body.get("event")
    if not isinstance(event, str) or not event.strip():
        raise ParseError("event is missing")
    if path_event is not None and path_event != event:
        raise ParseError(f"URL event {path_event!r} does not match body event {event!r}")
    parsed = ParsedBody()
    if event == EXCHANGE:
        _parse_exchange(_data(body), parsed)
    elif event == STATUS:
        _parse_status(_data(body), parsed)
    else:
        parsed.ignored.append(f"{event}: not relayed")
    return parsed


def _data(body: dict[str, Any]) -> dict[str, Any]:
    data = body.get("data")
    if not isinstance(data, dict):
        raise ParseError("data is not an object")
    return data


# ---- small readers ----
def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _obj(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _first(parent: dict[str, Any], *keys: str) -> str:
    """The first non-empty string among ``keys``."""
    return next((s for s in (_str(parent.get(k)) for k in keys) if s), "")


def _timestamp(value: Any) -> int | None:
    """RFC 3339 text or epoch seconds/milliseconds -> epoch seconds."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        seconds = int(value)
        return seconds // 1000 if seconds > 10**12 else seconds
    if isinstance(value, str) and value.strip():
        try:
            return int(datetime.fromisoformat(value.strip()).timestamp())
        except ValueError:
            return None
    return None


def _user(jid: str) -> str:
    """The user part of a JID, without domain or device: ``123:4@lid`` -> ``123``."""
    return jid.split("@", 1)[0].split(":", 1)[0]


def _lid_form(value: str) -> str | None:
    """``<user>@lid`` for a LID field (the docs' example wrongly shows an ``s.whatsapp.net``)."""
    user = _user(value)
    return f"{user}@lid" if user.isdigit() else None


def _phone_of(jid: str, lid: str = "") -> str | None:
    """Canonical phone digits of ``jid``, or None when it is not a phone (group, LID, ...)."""
    if not jid or is_lid(jid) or (lid and _user(jid) == _user(lid)):
        return None
    try:
        return canonical_phone(jid)
    except ValueError:
        return None


def _person_id(person: dict[str, Any]) -> str:
    """Who wrote a message: canonical phone, else ``<lid>@lid``, else ``""``."""
    jid, lid = _str(person.get("jid")), _str(person.get("lid"))
    phone = _phone_of(jid, lid)
    if phone:
        return phone
    return _lid_form(lid) or (_lid_form(jid) if is_lid(jid) else None) or ""


# ---- message.exchange ----
@dataclass(frozen=True)
class _Chat:
    chat_id: str
    sender_id: str
    is_group: bool
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Body:
    kind: MessageKind
    text: str | None = None
    media: Media | None = None
    location: Location | None = None
    contacts: tuple[SharedContact, ...] = ()
    reaction_emoji: str | None = None
    reaction_to: str | None = None
    unsupported_reason: str | None = None


def _parse_exchange(data: dict[str, Any], parsed: ParsedBody) -> None:
    msg = data.get("message")
    if not isinstance(msg, dict):
        raise ParseError("message.exchange without a message object")
    message_id = _first(msg, "id", "messageId") or _first(data, "id", "messageId")
    if not message_id:
        raise ParseError("message.exchange without a message id")
    mtype = (_str(msg.get("type")) or _str(data.get("type"))).lower()
    if mtype in _REVOKE_TYPES or msg.get("isRevoke") is True:
        parsed.ignored.append(f"{message_id}: revocation (message_revoke) not relayed yet")
        return
    if mtype in _EDIT_TYPES or msg.get("isEdit") is True:
        parsed.ignored.append(f"{message_id}: edit (message_edit) not relayed yet")
        return
    direction = _direction(msg)
    chat, sender = _obj(msg, "chat"), _obj(msg, "sender")
    where = _route(chat, sender, direction)
    if isinstance(where, str):
        parsed.ignored.append(f"{message_id}: {where}")
        return
    body = _body(msg, mtype)
    if body is None:
        parsed.ignored.append(f"{message_id}: reaction removed")
        return
    parsed.events.append(_inbound(message_id, msg, direction, where, body, chat, sender))


def _inbound(
    message_id: str,
    msg: dict[str, Any],
    direction: Direction,
    where: _Chat,
    body: _Body,
    chat: dict[str, Any],
    sender: dict[str, Any],
) -> InboundMessage:
    sender_name = _str(sender.get("name")) or None
    chat_name = _first(chat, "name", "groupName") or None
    if chat_name is None and not where.is_group and direction == "incoming":
        chat_name = sender_name
    return InboundMessage(
        message_id=message_id,
        chat_id=where.chat_id,
        sender_id=where.sender_id,
        kind=body.kind,
        direction=direction,
        is_group=where.is_group,
        chat_name=chat_name,
        sender_name=sender_name,
        timestamp=_timestamp(msg.get("timestamp")),
        text=body.text,
        media=body.media,
        location=body.location,
        contacts=body.contacts,
        reaction_emoji=body.reaction_emoji,
        reaction_to=body.reaction_to,
        quoted_id=None if body.kind == "reaction" else _quoted_id(msg),
        chat_aliases=where.aliases,
        unsupported_reason=body.unsupported_reason,
    )


def _direction(msg: dict[str, Any]) -> Direction:
    raw = _str(msg.get("direction")).lower()
    if raw:
        if raw not in _DIRECTIONS:
            raise ParseError(f"unknown direction {raw!r}")
        return _DIRECTIONS[raw]
    return "outgoing" if msg.get("fromMe") is True else "incoming"


def _route(chat: dict[str, Any], sender: dict[str, Any], direction: Direction) -> _Chat | str:
    """Which conversation the message belongs to, or why it is not relayed."""
    jid, ctype = _str(chat.get("jid")), _str(chat.get("type")).lower()
    if ctype == "newsletter" or jid.lower().endswith("@newsletter"):
        return "newsletter (channel) messages are not relayed"
    if jid.lower().endswith("@broadcast"):
        return "status/broadcast messages are not relayed"
    if ctype == "group" or is_group_jid(jid):
        if not jid:
            raise ParseError("group chat without a jid")
        group = jid if is_group_jid(jid) else f"{_user(jid)}@g.us"
        return _Chat(group, _person_id(sender), True)
    return _private(chat, sender, direction)


def _private(chat: dict[str, Any], sender: dict[str, Any], direction: Direction) -> _Chat:
    """A 1:1 chat is keyed by the customer's phone; their LID becomes an alias.

    For an incoming message the sender is the customer, so a phone or LID found only on the
    sender counts too; for an outgoing one the sender is the business and is not looked at.
    """
    people = [chat, sender] if direction == "incoming" else [chat]
    phone_raw, lids = "", []
    for person in people:
        jid, lid = _str(person.get("jid")), _str(person.get("lid"))
        if not phone_raw and _phone_of(jid, lid):
            phone_raw = jid
        lids += [_lid_form(lid) if lid else None, _lid_form(jid) if is_lid(jid) else None]
    found = [*(phone_aliases(phone_raw) if phone_raw else ()), *(x for x in lids if x)]
    if phone_raw:
        chat_id = canonical_phone(phone_raw)
    elif found:
        chat_id = found[0]
    else:
        raise ParseError("private chat without a phone number or LID")
    sender_id = chat_id if direction == "incoming" else _person_id(sender)
    aliases = tuple(a for a in dict.fromkeys(found) if a != chat_id)
    return _Chat(chat_id, sender_id, False, aliases)


def _quoted_id(msg: dict[str, Any]) -> str | None:
    reply = msg.get("replyTo")
    if isinstance(reply, dict):
        reply = _first(reply, "messageId", "id")
    quoted = _obj(msg, "quoted") or _obj(msg, "quotedMessage")
    context = _obj(msg, "contextInfo")
    return (
        _str(reply)
        or _first(quoted, "id", "messageId")
        or _str(msg.get("quotedMessageId"))
        or _first(context, "stanzaId", "quotedMessageId")
        or None
    )


def _text(msg: dict[str, Any]) -> str | None:
    content = msg.get("content")
    if isinstance(content, dict):
        return _first(content, "text", "caption", "body") or None
    return _str(content) or None


def _body(msg: dict[str, Any], mtype: str) -> _Body | None:
    """What the message says; None for a removed reaction (nothing to show)."""
    reaction = _obj(msg, "reaction")
    if reaction or mtype == "reaction":
        return _reaction(msg, reaction)
    if _obj(msg, "media"):
        return _media(msg, _obj(msg, "media"))
    if _obj(msg, "location"):
        return _location(_obj(msg, "location"))
    contacts = msg.get("contacts") or msg.get("contact")
    contacts = [contacts] if isinstance(contacts, dict) else contacts
    if isinstance(contacts, list) and contacts:
        return _Body(
            "contacts", contacts=tuple(_contact(c) for c in contacts if isinstance(c, dict))
        )
    if _obj(msg, "poll"):
        poll = _obj(msg, "poll")
        question = _first(poll, "name", "question", "title")
        return _Body("unsupported", text=question or None, unsupported_reason="poll")
    text = _text(msg)
    if text is not None:
        return _Body("text", text=text)
    return _Body("unsupported", unsupported_reason=f"message type {mtype or 'unknown'!r}")


def _reaction(msg: dict[str, Any], reaction: dict[str, Any]) -> _Body | None:
    emoji = _first(reaction, "text", "emoji", "reaction") or (_text(msg) or "")
    target = _first(reaction, "messageId", "targetId", "id") or _quoted_id(msg)
    if not emoji:
        return None
    return _Body("reaction", reaction_emoji=emoji, reaction_to=target or None)


def _media(msg: dict[str, Any], media: dict[str, Any]) -> _Body:
    mtype = _str(media.get("type")).lower()
    mime = _first(media, "mimetype", "mimeType") or None
    if mtype in _MEDIA_KINDS:
        kind, voice = _MEDIA_KINDS[mtype]
    else:  # an unknown media type still carries bytes worth relaying
        kind, voice = _kind_from_mime(mime), False
    # s3Url is the gateway's decrypted copy; url may be WhatsApp's encrypted CDN object
    url = _first(media, "s3Url", "url", "mediaUrl") or None
    caption = _str(media.get("caption")) or _text(msg)
    return _Body(
        kind,
        text=caption,
        media=Media(
            mime_type=mime,
            url=url,
            base64=_str(media.get("base64")) or None,
            filename=_first(media, "fileName", "filename") or None,
            voice=voice,
            sha256=_first(media, "sha256", "fileSha256") or None,
        ),
    )


def _kind_from_mime(mime: str | None) -> MessageKind:
    return _MIME_KINDS.get((mime or "").split("/", 1)[0], "document")


def _location(loc: dict[str, Any]) -> _Body:
    lat = loc.get("latitude", loc.get("degreesLatitude"))
    lon = loc.get("longitude", loc.get("degreesLongitude"))
    try:
        latitude, longitude = float(str(lat)), float(str(lon))
    except ValueError:
        return _Body("unsupported", unsupported_reason="location without coordinates")
    return _Body(
        "location",
        location=Location(
            latitude=latitude,
            longitude=longitude,
            name=_str(loc.get("name")) or None,
            address=_str(loc.get("address")) or None,
        ),
    )


def _contact(card: dict[str, Any]) -> SharedContact:
    """A shared contact from its fields and/or its vCard (``TEL``, ``EMAIL``, ``ORG``, ``FN``)."""
    fields = _vcard(_str(card.get("vcard")))
    phones = [
        p if isinstance(p, str) else _first(p, "phone", "number", "wa_id")
        for p in card.get("phones") or []
        if isinstance(p, str | dict)
    ]
    name = _first(card, "displayName", "name", "fullName") or _first(fields, "FN") or "Contact"
    return SharedContact(
        name=name,
        phones=tuple(dict.fromkeys(p for p in [*phones, *fields.get("TEL_ALL", [])] if p)),
        emails=tuple(fields.get("EMAIL_ALL", [])),
        organization=_first(fields, "ORG") or None,
    )


def _vcard(text: str) -> dict[str, Any]:
    """The few vCard properties we show: FN, ORG, every TEL and EMAIL."""
    fields: dict[str, Any] = {"TEL_ALL": [], "EMAIL_ALL": []}
    for line in text.replace("\r\n", "\n").split("\n"):
        key, sep, value = line.partition(":")
        if not sep or not value.strip():
            continue
        prop = key.split(";", 1)[0].split(".")[-1].upper()
        if prop in ("TEL", "EMAIL"):
            fields[f"{prop}_ALL"].append(value.strip())
        elif prop in ("FN", "ORG") and prop not in fields:
            fields[prop] = value.strip().rstrip(";").replace(";", " ")
    return fields


# ---- message.status ----
def _parse_status(data: dict[str, Any], parsed: ParsedBody) -> None:
    ids = _status_ids(data)
    if not ids:
        raise ParseError("message.status without message ids")
    status = _receipt(data)
    if status is None:
        parsed.ignored.append(f"{','.join(ids)}: receipt {_receipt_name(data)!r} not relayed")
        return
    recipient = _status_recipient(data)
    code, title = _status_error(data) if status == "failed" else (None, None)
    when = _timestamp(data.get("timestamp"))
    parsed.events.extend(
        StatusUpdate(
            message_id=mid,
            status=status,
            recipient_id=recipient,
            timestamp=when,
            error_code=code,
            error_title=title,
        )
        for mid in ids
    )


def _status_ids(data: dict[str, Any]) -> list[str]:
    message = _obj(data, "message")
    for source in (data, message):
        for key in ("messageIds", "ids", "messageIDs"):
            values = source.get(key)
            if isinstance(values, list):
                return list(dict.fromkeys(s for s in (_str(v) for v in values) if s))
    single = _first(data, "messageId", "id") or _first(message, "id", "messageId")
    return [single] if single else []


def _receipt_name(data: dict[str, Any]) -> Any:
    for source in (data, _obj(data, "message")):
        for key in ("type", "status", "receiptType", "state"):
            if key in source and source[key] is not None:
                return source[key]
    return ""


def _receipt(data: dict[str, Any]) -> StatusName | None:
    raw = _receipt_name(data)
    if isinstance(raw, int) and not isinstance(raw, bool):
        return _RECEIPT_CODES.get(raw)
    return _RECEIPTS.get(_str(raw).lower()) if isinstance(raw, str) else None


def _status_recipient(data: dict[str, Any]) -> str:
    """The chat of the acknowledged message: group JID, else the customer's phone (or LID)."""
    chat = data.get("chat")
    chat = chat if isinstance(chat, dict) else {"jid": _str(chat)}
    if not _str(chat.get("jid")):
        chat = {**chat, "jid": _first(data, "chat_jid", "chatJid", "remoteJid", "from")}
    jid = _str(chat.get("jid"))
    if is_group_jid(jid) or _str(chat.get("type")).lower() == "group":
        return jid if is_group_jid(jid) else f"{_user(jid)}@g.us"
    return _person_id(chat) or _person_id(_obj(data, "sender"))


def _status_error(data: dict[str, Any]) -> tuple[int | None, str | None]:
    error = data.get("error")
    detail = error if isinstance(error, dict) else {"message": error}
    code = detail.get("code", data.get("errorCode"))
    title = _first(detail, "message", "title") or _str(data.get("reason")) or None
    try:
        number = int(code) if code is not None and not isinstance(code, bool) else None
    except (TypeError, ValueError):
        number = None
    return number, title or _str(_receipt_name(data)) or None
