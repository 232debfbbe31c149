"""A gateway's presence webhook ▸ is the customer typing? (:class:`CustomerPresence`).

RyzeAPI documents six events and no presence event (``tests/fakes/RYZEAPI_NOTES.md``,
"Presence"); WhatsApp Web libraries do report a contact's typing when the gateway subscribed
to it (whatsmeow ``events.ChatPresence``: chat, sender, ``IsFromMe``, ``State`` composing or
paused, ``Media`` audio when recording; Evolution API ``presence.update``: ``{id, presences:
{<jid>: {lastKnownPresence}}}``). So a RyzeAPI-compatible gateway that forwards them is read
leniently [assumed]: event ``chat.presence``, ``presence.update`` or ``presence``; ``data`` a
whatsmeow-like record (``chat``/``sender`` as in ``message.exchange``, the state in ``state``,
``presence``, ``status`` or ``type``), or Evolution's shape. ``composing``/``typing``/
``recording`` mean typing, ``paused``/``pause``/``available``/``unavailable`` not.

Ephemeral: never stored. Anything unreadable, and our own presence echoed back (``fromMe``),
reads as ``None``; the webhook answers 200 all the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.relay.inbound.gateway_fields import (
    MAX_ALIAS_CHARS,
    first,
    group_form,
    identities,
    obj,
    text,
)
from app.relay.phones import canonical_phone, is_group_jid, phone_aliases

__all__ = ["PRESENCE_EVENTS", "CustomerPresence", "parse_gateway_presence"]

PRESENCE_EVENTS = frozenset({"chat.presence", "presence.update", "presence"})
_TYPING = frozenset({"composing", "typing", "recording"})
_NOT_TYPING = frozenset({"paused", "pause", "available", "unavailable", "stop"})
_STATE_KEYS = ("state", "presence", "lastKnownPresence", "status", "type")


@dataclass(frozen=True)
class CustomerPresence:
    """The customer of a chat started (``typing``) or stopped typing. ``identifiers``: the
    chat id first (canonical phone, ``<lid>@lid`` or the group JID), then its aliases."""

    identifiers: tuple[str, ...]
    typing: bool


def parse_gateway_presence(body: Any) -> CustomerPresence | None:
    """The presence a gateway webhook body reports, or ``None`` (not a presence event, not
    readable, or the business's own)."""
    if not isinstance(body, dict):
        return None
    event = text(body.get("event")).lower()
    if event not in PRESENCE_EVENTS:
        return None
    data = body.get("data")
    if not isinstance(data, dict):
        return None
    if data.get("fromMe") is True or data.get("isFromMe") is True:
        return None
    presences = data.get("presences")
    if isinstance(presences, dict):
        return _evolution(data, presences)
    state = _typing(first(data, *_STATE_KEYS))
    identifiers = _chat(data)
    if state is None or not identifiers:
        return None
    return CustomerPresence(identifiers, state)


def _evolution(data: dict[str, Any], presences: dict[str, Any]) -> CustomerPresence | None:
    """``{id: <chat jid>, presences: {<jid>: {lastKnownPresence}}}``: typing if anyone is."""
    states = [_typing(first(p, *_STATE_KEYS)) for p in presences.values() if isinstance(p, dict)]
    known = [s for s in states if s is not None]
    identifiers = _chat({"chat": data.get("id")})
    if not known or not identifiers:
        return None
    return CustomerPresence(identifiers, any(known))


def _typing(state: str) -> bool | None:
    name = state.lower()
    if name in _TYPING:
        return True
    if name in _NOT_TYPING:
        return False
    return None


def _person(data: dict[str, Any], key: str, *fallbacks: str) -> dict[str, Any]:
    """``data[key]`` as a person object (a bare JID string counts), else a JID field."""
    value = data.get(key)
    if isinstance(value, dict):
        return value
    jid = text(value) or first(data, *fallbacks)
    return {"jid": jid} if jid else {}


def _chat(data: dict[str, Any]) -> tuple[str, ...]:
    """The chat's identifiers: a group's JID, else the customer's phone (then its other
    spellings and LIDs), else their LID; chat first, then sender (the customer in a 1:1)."""
    chat = _person(data, "chat", "chatJid", "chat_jid", "remoteJid", "jid", "id", "number")
    jid = text(chat.get("jid"))
    if is_group_jid(jid):
        group = group_form(jid)
        return (group,) if group else ()
    sender = _person(data, "sender", "senderJid", "participant")
    phone, lids = "", list[str]()
    for person in (chat, sender, obj(data, "contact")):
        found_phone, found_lids = identities(person)
        phone, lids = phone or found_phone, [*lids, *found_lids]
    found = [canonical_phone(phone), *phone_aliases(phone)] if phone else []
    return tuple(a for a in dict.fromkeys([*found, *lids]) if a and len(a) <= MAX_ALIAS_CHARS)
