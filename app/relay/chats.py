"""Contact and conversation of a WhatsApp chat in Chatwoot, cached in :class:`ChatLink`.

An ongoing chat costs no call here. A brand-new one costs two (create contact with its
contact-inbox, create conversation); a contact Chatwoot already knows (422 on create) is found
through ``contact_inboxes/filter`` by source id, else by phone, and linked to the inbox.
Per-chat lanes guarantee that only one worker resolves a given chat at a time.
"""

from __future__ import annotations

import logging
from typing import Any

from app.integrations.chatwoot import ChatwootClient
from app.integrations.errors import RemoteNotFound, RemoteUnprocessable
from app.relay.messages import InboundMessage
from app.relay.phones import e164
from app.store.models import ChatLink, ChatwootIntegration

logger = logging.getLogger(__name__)

OPEN_STATUSES = ("open", "pending", "snoozed")


def link_for(integration: ChatwootIntegration, chat_key: str) -> ChatLink:
    link: ChatLink | None = ChatLink.get_or_none(
        (ChatLink.integration == integration) & (ChatLink.chat_key == chat_key)
    )
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


def _contact_fields(message: InboundMessage) -> dict[str, Any]:
    if message.is_group:
        return {"name": message.chat_name or message.chat_id, "phone_number": None}
    name = message.chat_name or message.sender_name or e164(message.chat_id)
    return {"name": name, "phone_number": e164(message.chat_id)}


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
        created = client.create_contact(inbox_id, source_id, fields["name"], fields["phone_number"])
    except RemoteUnprocessable as exc:
        logger.info("contact for chat exists in Chatwoot (%s); linking it", exc.detail)
        link.contact_id = _existing_contact(client, inbox_id, source_id, fields["phone_number"])
        link.source_id = source_id
        link.save()
        return False
    link.contact_id = int(created["contact"]["id"])
    link.source_id = str((created.get("contact_inbox") or {}).get("source_id") or source_id)
    link.save()
    return True


def _existing_contact(
    client: ChatwootClient, inbox_id: int, source_id: str, phone_number: str | None
) -> int:
    found = client.filter_contact_inbox(inbox_id, source_id)
    if found is not None:
        return int(found["id"])
    if phone_number is None:
        raise RemoteUnprocessable(f"no contact with source id {source_id} in inbox {inbox_id}")
    for candidate in client.search_contacts(phone_number):
        if candidate.get("phone_number") == phone_number:
            client.create_contact_inbox(int(candidate["id"]), inbox_id, source_id)
            return int(candidate["id"])
    raise RemoteUnprocessable(f"Chatwoot refused the contact and none matches {phone_number}")
