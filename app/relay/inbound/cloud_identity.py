"""Who a Cloud API message is from (or, for an echo, to): one person, many identifiers.

A customer is named by a phone (``from`` / ``contacts[].wa_id``), a business-scoped user id
(BSUID: ``from_user_id`` / ``contacts[].user_id``), a parent BSUID, and a username
(``contacts[].profile.username``); since usernames roll out the phone may be absent. The chat is
keyed by the canonical phone when there is one, else by the BSUID; every other identifier goes
into the aliases, which the intake unites into one lane. System messages ``user_changed_user_id``
and ``user_changed_number`` add the previous and the new identifiers (read from their typed
fields, never from ``body``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from app.relay.inbound.cloud_shapes import opt_str, text_of
from app.relay.phones import canonical_phone, is_bsuid, phone_aliases

MAX_IDENTIFIER = 160  # a BSUID is at most 135 characters; longer "spellings" are noise
SENDER = ("from", "from_user_id", "from_parent_user_id")
RECIPIENT = ("to", "to_user_id", "to_parent_user_id")


@dataclass(frozen=True)
class Identity:
    """The routing fields of an :class:`~app.relay.messages.InboundMessage`."""

    chat_id: str
    aliases: tuple[str, ...]
    reply_address: str
    name: str | None = None
    username: str | None = None


def person(
    msg: dict[str, Any], contacts: list[dict[str, Any]], keys: tuple[str, str, str]
) -> Identity | None:
    """The customer named by ``keys`` (phone, BSUID, parent BSUID fields) of ``msg``, with the
    profile of their ``contacts[]`` entry; ``None`` when the message names nobody."""
    phone_key, user_key, parent_key = keys
    raw_phone = opt_str(msg, phone_key)
    phone = _canonical(raw_phone)
    user_id = _bsuid(msg.get(user_key))
    extra: list[str] = []
    if phone is None and raw_phone is not None and is_bsuid(raw_phone):
        if user_id is None:
            user_id = raw_phone.strip()
        else:
            extra.append(raw_phone.strip())
    if phone is None and user_id is None:
        return None
    chat_id = phone if phone is not None else str(user_id)
    contact = _contact_of(contacts, phone, user_id)
    groups: list[tuple[str, ...]] = [
        phone_aliases(str(raw_phone)) if phone is not None else (),
        (user_id or "",),
        tuple(extra),
        (_bsuid(msg.get(parent_key)) or "",),
        _contact_ids(contact) if _matches(contact, phone, user_id) else (),
    ]
    profile = _profile(contact)
    return Identity(
        chat_id=chat_id,
        aliases=merge(chat_id, *groups),
        reply_address=chat_id,
        name=text_of(profile, "name"),
        username=text_of(profile, "username"),
    )


def system_identity(
    msg: dict[str, Any], system: dict[str, Any], contacts: list[dict[str, Any]]
) -> Identity | None:
    """The sender of a system message, linked to the identifiers the change names."""
    stype = opt_str(system, "type")
    base = person(msg, contacts, SENDER)
    new_user_id = _bsuid(system.get("user_id"))
    if base is None and new_user_id is not None:
        base = Identity(chat_id=new_user_id, aliases=(), reply_address=new_user_id)
    if base is None:
        return None
    linked = tuple(
        _bsuid(system.get(key)) or ""
        for key in ("previous_user_id", "user_id", "previous_parent_user_id", "parent_user_id")
    )
    raw_new_phone = opt_str(system, "wa_id")
    new_phone = _canonical(raw_new_phone) if stype == "user_changed_number" else None
    if new_phone is None:
        return replace(base, aliases=merge(base.chat_id, base.aliases, linked))
    spellings = (new_phone, *phone_aliases(str(raw_new_phone)))
    return replace(
        base,
        aliases=merge(base.chat_id, base.aliases, spellings, linked),
        reply_address=new_phone,
    )


def merge(chat_id: str, *groups: tuple[str, ...]) -> tuple[str, ...]:
    """The identifiers of ``groups`` in order, once each, without ``chat_id`` and blanks."""
    seen: list[str] = []
    for group in groups:
        for identifier in group:
            fits = 0 < len(identifier) <= MAX_IDENTIFIER
            if fits and identifier != chat_id and identifier not in seen:
                seen.append(identifier)
    return tuple(seen)


def _canonical(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        return canonical_phone(raw)
    except ValueError:
        return None


def _bsuid(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and is_bsuid(value) else None


def _matches(contact: dict[str, Any] | None, phone: str | None, user_id: str | None) -> bool:
    if contact is None:
        return False
    wa_id = opt_str(contact, "wa_id")
    if phone is not None and wa_id is not None and _canonical(wa_id) == phone:
        return True
    return user_id is not None and _bsuid(contact.get("user_id")) == user_id


def _contact_of(
    contacts: list[dict[str, Any]], phone: str | None, user_id: str | None
) -> dict[str, Any] | None:
    """The ``contacts[]`` entry of this person, matched by ``wa_id`` or ``user_id``; the only
    entry when Meta listed one that names nobody we know."""
    match = next((c for c in contacts if _matches(c, phone, user_id)), None)
    if match is None and len(contacts) == 1:
        return contacts[0]
    return match


def _contact_ids(contact: dict[str, Any] | None) -> tuple[str, ...]:
    """Every identifier a matched ``contacts[]`` entry adds: phone spellings, BSUIDs."""
    if contact is None:
        return ()
    ids: list[str] = []
    wa_id = opt_str(contact, "wa_id")
    phone = _canonical(wa_id)
    if phone is not None:
        ids += [phone, *phone_aliases(str(wa_id))]
    ids += [_bsuid(contact.get(key)) or "" for key in ("user_id", "parent_user_id")]
    return tuple(ids)


def _profile(contact: dict[str, Any] | None) -> dict[str, Any]:
    profile = contact.get("profile") if contact is not None else None
    return profile if isinstance(profile, dict) else {}
