"""Contact and conversation of a WhatsApp chat in Chatwoot, cached in :class:`ChatLink`.

An ongoing chat costs no call here. A brand-new one costs two (create contact with its
contact-inbox, create conversation); a contact Chatwoot already knows (422 on create) is found
through ``contact_inboxes/filter`` by source id, else by phone, and linked to the inbox.
Per-chat lanes guarantee that only one worker resolves a given chat at a time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from app.integrations.chatwoot import ChatwootClient
from app.integrations.errors import RemoteNotFound, RemoteUnprocessable
from app.relay.inbound import profiles
from app.relay.messages import InboundMessage
from app.relay.phones import e164, is_bsuid
from app.store.models import ChatLink, ChatwootIntegration
from app.store.prepared import get_where

logger = logging.getLogger(__name__)

OPEN_STATUSES = ("open", "pending", "snoozed")


def link_for(integration: ChatwootIntegration, chat_key: str) -> ChatLink:
    link = get_where(ChatLink, integration=integration, chat_key=chat_key)
    if link is None:
        link = ChatLink.create(integration=integration, chat_key=chat_key)
    return link


def _inbox_id(integration: ChatwootIntegration) -> int:
    if integration.chatwoot_inbox_id is None:
        raise RuntimeError(f"integration {integration.id} has no inbox")
    return int(integration.chatwoot_inbox_id)


def _contact(link: ChatLink) -> tuple[int, str]:
    """The contact id and contact-inbox source id of a resolved link."""
    if link.contact_id is None or link.source_id is None:
        raise RuntimeError(f"chat {link.chat_key} has no contact yet")
    return int(link.contact_id), str(link.source_id)


def ensure_conversation(
    client: ChatwootClient,
    integration: ChatwootIntegration,
    link: ChatLink,
    message: InboundMessage,
) -> int:
    """The Chatwoot conversation (display id) this message belongs in; updates ``link``."""
    if link.conversation_id is not None and link.conversation_status in OPEN_STATUSES:
        return int(link.conversation_id)
    created_contact = False
    if link.contact_id is None:
        created_contact = _ensure_contact(client, integration, link, message)
    conversation = None
    if not created_contact:
        conversation = _reusable_conversation(client, integration, link)
    if conversation is None:
        status = "pending" if integration.start_as_pending else None
        contact_id, source_id = _contact(link)
        try:
            conversation = client.create_conversation(
                _inbox_id(integration), contact_id, source_id, status=status
            )
        except RemoteNotFound:
            forget_contact(link)  # deleted in Chatwoot: found or created again next attempt
            raise
    link.conversation_id = int(conversation["id"])
    link.conversation_status = str(conversation.get("status") or "open")
    link.save()
    return int(link.conversation_id)


def forget_conversation(link: ChatLink) -> None:
    """The conversation is gone in Chatwoot: the next message opens a new one."""
    link.conversation_id = None
    link.conversation_status = None
    link.save()


def forget_contact(link: ChatLink) -> None:
    link.contact_id = None
    link.source_id = None
    forget_conversation(link)


def _reusable_conversation(
    client: ChatwootClient, integration: ChatwootIntegration, link: ChatLink
) -> dict[str, Any] | None:
    """An open/pending conversation of the contact in our inbox; a resolved one reopened when
    ``reopenResolved``; otherwise ``None`` (a new conversation will be created)."""
    if link.conversation_id is not None and link.conversation_status == "resolved":
        if integration.reopen_resolved:
            client.toggle_conversation_status(int(link.conversation_id), "open")
            return {"id": link.conversation_id, "status": "open"}
        return None
    contact_id, _ = _contact(link)
    ours = [
        c
        for c in client.list_contact_conversations(contact_id)
        if c.get("inbox_id") == integration.chatwoot_inbox_id
    ]
    ours.sort(key=lambda c: int(c.get("id", 0)), reverse=True)
    for conversation in ours:
        if conversation.get("status") in OPEN_STATUSES:
            return conversation
    if ours and integration.reopen_resolved:
        latest = ours[0]
        client.toggle_conversation_status(int(latest["id"]), "open")
        return {**latest, "status": "open"}
    return None


@dataclass(frozen=True)
class ContactFields:
    """What a new Chatwoot contact is created with."""

    name: str
    phone_number: str | None = None
    additional_attributes: dict[str, Any] = field(default_factory=dict)


def _phone_of(message: InboundMessage) -> str | None:
    """The customer's number (``+`` E.164) when this message names one: ``chat_id`` is the
    canonical number whenever WhatsApp gave it, else a BSUID (or a LID on a gateway)."""
    if message.is_group or not message.chat_id.isdigit():
        return None
    return e164(message.chat_id)


def _bsuid_of(message: InboundMessage) -> str | None:
    """The customer's business-scoped user id in this message (not the parent one)."""
    for identifier in (message.chat_id, *message.chat_aliases):
        if is_bsuid(identifier) and ".ENT." not in identifier:
            return identifier
    return None


def identity_attributes(message: InboundMessage) -> dict[str, Any]:
    """The contact's ``additional_attributes`` for the identifiers that are not a phone.

    The username is kept where Chatwoot's own WhatsApp channel keeps it
    (``social_profiles.whatsapp`` and ``social_whatsapp_user_name``, see Chatwoot's
    ``Whatsapp::IdentifierSyncService``); the BSUID as ``social_whatsapp_user_id``, named the
    way Chatwoot's TikTok channel names its user id (``social_tiktok_user_id``).
    """
    if message.is_group:
        return {}
    attributes: dict[str, Any] = {}
    username = (message.username or "").lstrip("@")
    if username:
        attributes["social_profiles"] = {"whatsapp": username}
        attributes["social_whatsapp_user_name"] = username
    bsuid = _bsuid_of(message)
    if bsuid:
        attributes["social_whatsapp_user_id"] = bsuid
    return attributes


def _contact_fields(message: InboundMessage) -> ContactFields:
    if message.is_group:
        return ContactFields(message.chat_name or message.chat_id)
    phone = _phone_of(message)
    # in a business message (an echo) the sender is the business, not the customer
    sender = message.sender_name if message.direction == "incoming" else None
    name = message.chat_name or sender or message.username or phone or message.chat_id
    return ContactFields(name, phone, identity_attributes(message))


def _ensure_contact(
    client: ChatwootClient,
    integration: ChatwootIntegration,
    link: ChatLink,
    message: InboundMessage,
) -> bool:
    """Set ``link.contact_id``/``source_id``; True when the contact was created just now."""
    source_id = str(link.chat_key)
    fields = _contact_fields(message)
    inbox_id = _inbox_id(integration)
    try:
        created = client.create_contact(
            inbox_id,
            source_id,
            fields.name,
            fields.phone_number,
            additional_attributes=fields.additional_attributes or None,
        )
    except RemoteUnprocessable as exc:
        logger.info("contact for chat exists in Chatwoot (%s); linking it", exc.detail)
        found = _existing_contact(client, inbox_id, source_id, fields.phone_number)
        link.contact_id = int(found["id"])
        link.contact_phone = found.get("phone_number") or None
        link.source_id = source_id
        link.save()
        return False
    link.contact_id = int(created["contact"]["id"])
    link.contact_phone = fields.phone_number
    link.source_id = str((created.get("contact_inbox") or {}).get("source_id") or source_id)
    profiles.remember_created(link, fields.name, message)  # the name is ours to follow
    link.save()
    return True


def _existing_contact(
    client: ChatwootClient, inbox_id: int, source_id: str, phone_number: str | None
) -> dict[str, Any]:
    found = client.filter_contact_inbox(inbox_id, source_id)
    if found is not None:
        return found
    if phone_number is None:
        raise RemoteUnprocessable(f"no contact with source id {source_id} in inbox {inbox_id}")
    for candidate in client.search_contacts(phone_number):
        if candidate.get("phone_number") == phone_number:
            client.create_contact_inbox(int(candidate["id"]), inbox_id, source_id)
            return candidate
    raise RemoteUnprocessable(f"Chatwoot refused the contact and none matches {phone_number}")


def complete_contact(client: ChatwootClient, link: ChatLink, message: InboundMessage) -> None:
    """Give a contact first known without a number (a BSUID-only customer) the number a later
    message of theirs brings, once: a number another contact already has (422) is logged and
    left alone, and the message is relayed all the same."""
    phone = _phone_of(message)
    if phone is None or message.direction != "incoming" or link.contact_id is None:
        return
    if link.contact_phone is not None:
        return
    contact_id = int(link.contact_id)
    current = client.get_contact(contact_id).get("phone_number") or None
    if current is None:
        fields: dict[str, Any] = {"phone_number": phone}
        attributes = identity_attributes(message)
        if attributes:
            fields["additional_attributes"] = attributes
        try:
            client.update_contact(contact_id, fields)
            current = phone
        except RemoteUnprocessable as exc:
            logger.warning(
                "contact %s keeps no phone number: Chatwoot refused it (%s)", contact_id, exc.detail
            )
    link.contact_phone = current or phone
    link.save()


def remember_reply_address(link: ChatLink, message: InboundMessage) -> None:
    """After an incoming message was delivered: replies now go where the customer wrote from."""
    if message.direction != "incoming" or message.is_group:
        return
    address = message.reply_address or message.chat_id
    if link.reply_address != address:
        link.reply_address = address
        link.save()
