"""Profiles follow the customer: a changed WhatsApp profile name or username reaches the Chatwoot
contact, without ever undoing an agent's edit and without a Chatwoot call per message.

* **When.** Each chat remembers the profile name and username its customer's messages last
  carried (``ChatLink.profile_name``/``profile_username``). Only a message that brings a
  different one costs anything: one read of the contact and at most one update. Group chats and
  the business's own messages are left alone.
* **Name.** The contact is renamed only while its name is still the one Wootbridge gave it
  (``ChatLink.contact_name_set``: the name it was created with, or the last rename). The
  contact's *current* name is read from Chatwoot at the change and compared with it, rather than
  trusting what we stored: agents rename contacts in Chatwoot and an API inbox is never told
  (Chatwoot posts ``contact_updated`` to account webhooks only), so only the contact itself knows.
  A contact whose name differs was renamed by someone: it is never renamed again (until its name
  happens to equal the profile's again). A contact Wootbridge did not create (linked, or created
  before this existed) is adopted when its name is the profile name the chat saw before, or
  the new one. Chatwoot has no conditional update, so an agent's rename landing between our
  read and our write (one round trip, at a profile change) would still be overwritten.
* **Username.** Kept where Chatwoot's own WhatsApp channel keeps it:
  ``additional_attributes.social_profiles.whatsapp`` and ``social_whatsapp_user_name``.
  Chatwoot merges ``additional_attributes`` one level deep, so ``social_profiles`` is sent whole,
  with the contact's other profiles kept; every other attribute is left as it is.
* **Best effort.** The message is posted first; a failed update is logged and never costs the
  message. A transient failure is tried again with the customer's next message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from app.integrations.chatwoot import ChatwootClient
from app.integrations.errors import RemoteError, is_transient
from app.relay.messages import InboundMessage
from app.store.models import ChatLink

logger = logging.getLogger(__name__)


def profile_name_of(message: InboundMessage) -> str | None:
    """The name a customer's message gives them, as a new contact is named (the profile name,
    else the username); None when the message names nobody (never the phone number)."""
    if message.direction != "incoming" or message.is_group:
        return None
    for candidate in (message.chat_name, message.sender_name, username_of(message)):
        if candidate and candidate.strip():
            return candidate.strip()[:255]
    return None


def username_of(message: InboundMessage) -> str | None:
    username = (message.username or "").strip().lstrip("@")
    return username[:255] or None


def remember_created(link: ChatLink, name: str, message: InboundMessage) -> None:
    """A contact was created for this chat with ``name``: it is ours, and the profile it was
    made from is the one seen (the caller saves ``link``)."""
    link.contact_name_set = name[:255]
    link.profile_name = profile_name_of(message)
    link.profile_username = username_of(message)


@dataclass
class _Update:
    fields: dict[str, Any] = field(default_factory=dict)
    name_set: str | None = None


def follow(client: ChatwootClient, link: ChatLink, message: InboundMessage) -> None:
    """After ``message`` was posted: bring the contact up to date if its profile changed."""
    if message.direction != "incoming" or message.is_group or link.contact_id is None:
        return
    name, username = profile_name_of(message), username_of(message)
    new_name = name if name is not None and name != link.profile_name else None
    new_username = username if username is not None and username != link.profile_username else None
    if new_name is None and new_username is None:
        return
    contact_id = int(link.contact_id)
    update = _Update(name_set=link.contact_name_set)
    try:
        contact = client.get_contact(contact_id)
        update = _changes(link, contact, new_name, new_username)
        if update.fields:
            client.update_contact(contact_id, update.fields)
            logger.info("contact %s follows the WhatsApp profile (%s)", contact_id, _keys(update))
    except RemoteError as exc:
        if is_transient(exc):
            logger.info(
                "contact %s not updated now (%s); next message tries again", contact_id, exc
            )
            return
        logger.warning(
            "contact %s keeps its profile: Chatwoot refused the update (%s)", contact_id, exc
        )
        update.name_set = link.contact_name_set
    _remember(link, name, username, update.name_set)


def _changes(
    link: ChatLink, contact: dict[str, Any], new_name: str | None, new_username: str | None
) -> _Update:
    update = _Update(name_set=link.contact_name_set)
    if new_name is not None:
        current = contact.get("name")
        if current == new_name:
            update.name_set = new_name  # already right (by us, or someone): ours from now on
        elif _is_ours(link, current):
            update.fields["name"] = new_name
            update.name_set = new_name
        else:
            update.name_set = None  # an agent's name: never overwritten
    if new_username is not None:
        attributes = contact.get("additional_attributes")
        attributes = attributes if isinstance(attributes, dict) else {}
        social = attributes.get("social_profiles")
        social = dict(social) if isinstance(social, dict) else {}
        if (
            social.get("whatsapp") != new_username
            or attributes.get("social_whatsapp_user_name") != new_username
        ):
            update.fields["additional_attributes"] = {
                "social_profiles": {**social, "whatsapp": new_username},
                "social_whatsapp_user_name": new_username,
            }
    return update


def _is_ours(link: ChatLink, current: Any) -> bool:
    """Is the contact's current name the one we gave it (or, for a contact we did not create,
    the profile name the chat carried before)?"""
    if not isinstance(current, str):
        return False
    if link.contact_name_set is not None:
        return bool(current == link.contact_name_set)
    return link.profile_name is not None and current == link.profile_name


def _remember(link: ChatLink, name: str | None, username: str | None, name_set: str | None) -> None:
    """What was seen and set, written at once (only these columns: the lane saves whole rows
    later, with the same values)."""
    changes: dict[str, Any] = {"contact_name_set": name_set}
    if name is not None:
        changes["profile_name"] = name
    if username is not None:
        changes["profile_username"] = username
    ChatLink.update(**changes).where(
        (ChatLink.integration == link.__data__["integration"])
        & (ChatLink.chat_key == link.chat_key)
    ).execute()
    for key, value in changes.items():
        setattr(link, key, value)


def _keys(update: _Update) -> str:
    return " and ".join("name" if key == "name" else "username" for key in update.fields)
