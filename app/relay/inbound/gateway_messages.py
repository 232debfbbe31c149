"""Gateway ``message.exchange`` ▸ one :class:`InboundMessage` per message record, or one note.

A record is the event's ``data`` (``{"id", "message": {...}}``; a ``data`` without a ``message``
object is read as the message itself; a list of them is several records). Nothing here raises:

- a message without an id gets ``noid-<16 hex of sha256(canonical JSON of data)>``, the same
  for every retry of the same body;
- a message that cannot be classified is relayed as ``unsupported``, naming what arrived;
- an unknown ``direction`` falls back to ``fromMe`` (else incoming) and is logged;
- a message without any chat identity is a note starting with ``message without sender``.

Identity (DESIGN.md "One person, many identifiers"): a private chat is keyed by the customer's
canonical phone when the message gives one anywhere (chat, or sender for an incoming message:
``jid``, ``phone``/``senderPn``-style fields, an ``…Alt`` JID), else by their LID; every other
identifier seen goes to ``chat_aliases``. ``reply_address`` stays None (the chat id is the
address): the gateway never names a different number to answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from app.relay.inbound.gateway_content import Body, message_body, message_type
from app.relay.inbound.gateway_fields import (
    MAX_ALIAS_CHARS,
    describe,
    first,
    group_form,
    ident,
    identities,
    person_id,
    stable_id,
    text,
    timestamp,
)
from app.relay.messages import Direction, InboundMessage
from app.relay.phones import canonical_phone, is_group_jid, phone_aliases

logger = logging.getLogger(__name__)

NO_SENDER = "message without sender"
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
# message-level fields (Baileys/whatsmeow spellings) that complete the chat and sender objects
_CHAT_FIELDS = {"chatJid": "jid", "chat_jid": "jid", "remoteJid": "jid", "remoteJidAlt": "jidAlt"}
_SENDER_FIELDS = {
    "senderJid": "jid",
    "participant": "jid",
    "senderPn": "senderPn",
    "senderLid": "senderLid",
    "senderAlt": "senderAlt",
    "participantPn": "participantPn",
    "participantLid": "participantLid",
}


@dataclass(frozen=True)
class _Skip:
    """Why a message is not relayed (``no_sender``: nobody to file it under)."""

    reason: str
    no_sender: bool = False

    def note(self, message_id: str) -> str:
        if self.no_sender:
            return f"{NO_SENDER} {message_id}: {self.reason}"
        return f"{message_id}: {self.reason}"


@dataclass(frozen=True)
class _Chat:
    chat_id: str
    sender_id: str
    is_group: bool
    aliases: tuple[str, ...] = ()


def exchange_records(data: Any) -> list[Any]:
    """The message records of one ``message.exchange`` ``data`` (at least one, maybe unusable)."""
    return data if isinstance(data, list) and data else [data]


def parse_exchange_record(record: Any) -> InboundMessage | str:
    """One message record ▸ its event, or the note saying why it is not relayed."""
    if not isinstance(record, dict):
        return f"message.exchange: data is not an object ({describe(record)})"
    message = record.get("message")
    msg: dict[str, Any] = message if isinstance(message, dict) else record
    message_id = ident(msg, "id", "messageId") or ident(record, "id", "messageId")
    message_id = message_id or stable_id(record)
    direction = _direction(msg, message_id)
    where = _route(msg, direction)
    if isinstance(where, _Skip):
        return where.note(message_id)
    body = message_body(msg, message_type(msg, record), message_id)
    return _inbound(message_id, msg, direction, where, body)


def _inbound(
    message_id: str, msg: dict[str, Any], direction: Direction, where: _Chat, body: Body
) -> InboundMessage:
    chat, sender = _person(msg, "chat", _CHAT_FIELDS), _person(msg, "sender", _SENDER_FIELDS)
    sender_name = text(sender.get("name")) or None
    chat_name = first(chat, "name", "groupName") or None
    if chat_name is None and not where.is_group and direction == "incoming":
        chat_name = sender_name
    return InboundMessage(
        message_id=f"{message_id}-{body.own_id_suffix}" if body.own_id_suffix else message_id,
        chat_id=where.chat_id,
        sender_id=where.sender_id,
        kind=body.kind,
        direction=direction,
        is_group=where.is_group,
        chat_name=chat_name,
        sender_name=sender_name,
        timestamp=timestamp(msg.get("timestamp")),
        text=body.text,
        media=body.media,
        location=body.location,
        contacts=body.contacts,
        reaction_emoji=body.reaction_emoji,
        reaction_to=body.reaction_to,
        quoted_id=body.quoted_id,
        chat_aliases=where.aliases,
        unsupported_reason=body.unsupported_reason,
        media_error=body.media_error,
    )


def _direction(msg: dict[str, Any], message_id: str) -> Direction:
    raw = msg.get("direction")
    name = text(raw).lower()
    if name in _DIRECTIONS:
        return _DIRECTIONS[name]
    found: Direction = "outgoing" if msg.get("fromMe") is True else "incoming"
    if not (raw is None or (isinstance(raw, str) and not name)):
        logger.warning(
            "gateway message %s: unknown direction %s, taken as %s",
            message_id[:80],
            describe(raw, 20),
            found,
        )
    return found


def _person(msg: dict[str, Any], key: str, fallbacks: dict[str, str]) -> dict[str, Any]:
    """``msg[key]`` as a person object (a bare JID string counts), completed from ``msg``."""
    value = msg.get(key)
    person = dict(value) if isinstance(value, dict) else {"jid": value}
    for field, target in fallbacks.items():
        if not text(person.get(target)) and text(msg.get(field)):
            person[target] = msg[field]
    return person


def _route(msg: dict[str, Any], direction: Direction) -> _Chat | _Skip:
    """Which conversation the message belongs to, or why it is not relayed."""
    chat, sender = _person(msg, "chat", _CHAT_FIELDS), _person(msg, "sender", _SENDER_FIELDS)
    jid, ctype = text(chat.get("jid")), text(chat.get("type")).lower()
    if ctype == "newsletter" or jid.lower().endswith("@newsletter"):
        return _Skip("newsletter (channel) messages are not relayed")
    if jid.lower().endswith("@broadcast"):
        return _Skip("status/broadcast messages are not relayed")
    if ctype == "group" or is_group_jid(jid):
        group = group_form(jid)
        if group is None:
            return _Skip(f"a group chat without a readable jid ({describe(jid)})", no_sender=True)
        return _Chat(group, person_id(sender), True)
    return _private(chat, sender, direction)


def _private(chat: dict[str, Any], sender: dict[str, Any], direction: Direction) -> _Chat | _Skip:
    """A 1:1 chat is keyed by the customer's phone; their LID and other spellings are aliases.

    For an incoming message the sender is the customer, so a phone or LID found only on the
    sender counts too; for an outgoing one the sender is the business and is not looked at.
    """
    phone, lids = "", list[str]()
    for person in [chat, sender] if direction == "incoming" else [chat]:
        found_phone, found_lids = identities(person)
        phone, lids = phone or found_phone, [*lids, *found_lids]
    if not phone and not lids:
        return _Skip("no phone, LID or group id in chat or sender", no_sender=True)
    chat_id = canonical_phone(phone) if phone else lids[0]
    found = [*(phone_aliases(phone) if phone else ()), *lids]
    sender_id = chat_id if direction == "incoming" else person_id(sender)
    aliases = tuple(a for a in dict.fromkeys(found) if a != chat_id and len(a) <= MAX_ALIAS_CHARS)
    return _Chat(chat_id, sender_id, False, aliases)
