"""WhatsApp event ▸ Chatwoot: one stored event delivered, or classified as not deliverable.

The caller (the per-chat lane in :mod:`app.relay.lanes`) decides what an outcome means for
the event and the integration; this module only talks to Chatwoot and the WhatsApp media host.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from app.integrations.chatwoot import Attachment, ChatwootClient
from app.integrations.errors import RemoteError, RemoteNotFound, is_transient
from app.integrations.whatsapp.media import DownloadedMedia
from app.relay import chats
from app.relay.messages import InboundMessage, Media, StatusUpdate, event_from_json
from app.relay.rendering import render_inbound
from app.store.models import (
    EVENT_PENDING,
    EVENT_WAITING,
    ChatwootIntegration,
    MessageMap,
    RelayEvent,
)

logger = logging.getLogger(__name__)

MediaFetcher = Callable[[Media], DownloadedMedia]


class MediaUnavailable(Exception):
    """The attachment cannot be fetched for good (gone, expired, too large)."""


@dataclass(frozen=True)
class MessageLink:
    """A WhatsApp message and the Chatwoot message it became, to be remembered."""

    whatsapp_id: str
    chatwoot_id: int
    conversation_id: int
    direction: str


@dataclass(frozen=True)
class Delivered:
    """The event reached Chatwoot (or was found there already). ``link`` is recorded by the
    caller in the same transaction that marks the event delivered."""

    link: MessageLink | None = None


@dataclass(frozen=True)
class Waiting:
    """A status for a message we do not know (yet); applied when the message appears."""


Outcome = Delivered | Waiting


@dataclass
class InboundContext:
    integration: ChatwootIntegration
    client: ChatwootClient
    fetch_media: MediaFetcher


def deliver(context: InboundContext, row: RelayEvent, interrupted: bool) -> Outcome:
    """Deliver one stored inbound event. Raises RemoteError subclasses for the lane to classify.

    ``interrupted``: an earlier attempt may have reached Chatwoot, so we look for our message
    (by its ``source_id``) before posting again.
    """
    event = event_from_json(row.payload)
    if isinstance(event, StatusUpdate):
        return _apply_status(context, event)
    return _post_message(context, row, event, interrupted)


def _post_message(
    context: InboundContext, row: RelayEvent, message: InboundMessage, interrupted: bool
) -> Outcome:
    link = chats.link_for(context.integration, row.chat_key)
    conversation_id = chats.ensure_conversation(context.client, context.integration, link, message)
    if interrupted:
        already = _find_posted(context.client, conversation_id, message.message_id)
        if already is not None:
            logger.info("event %s was already in Chatwoot as message %s", row.id, already)
            return Delivered(_link(message, already, conversation_id))
    rendered = render_inbound(message)
    attachments = []
    if rendered.needs_media and message.media is not None:
        downloaded = _download(context, message.media)
        attachments.append(
            Attachment(downloaded.filename, downloaded.content_type, downloaded.data)
        )
    try:
        posted = context.client.create_message(
            conversation_id,
            content=rendered.content,
            message_type=message.direction,
            source_id=message.message_id,
            content_attributes=rendered.content_attributes or None,
            attachments=attachments,
        )
    except RemoteNotFound:
        chats.forget_conversation(link)
        raise
    message_id = int(posted["id"])
    return Delivered(_link(message, message_id, conversation_id))


def _download(context: InboundContext, media: Media) -> DownloadedMedia:
    """Fetch an attachment; transient failures propagate (retried), others are permanent."""
    try:
        return context.fetch_media(media)
    except RemoteError as exc:
        if is_transient(exc):
            raise
        raise MediaUnavailable(str(exc)) from None


def _find_posted(client: ChatwootClient, conversation_id: int, source_id: str) -> int | None:
    """After an attempt whose outcome is unknown, look for our message before posting again."""
    for posted in client.list_messages(conversation_id):
        if posted.get("source_id") == source_id:
            return int(posted["id"])
    return None


def _link(message: InboundMessage, chatwoot_id: int, conversation_id: int) -> MessageLink:
    return MessageLink(message.message_id, chatwoot_id, conversation_id, message.direction)


def remember_message(
    integration: ChatwootIntegration,
    whatsapp_id: str,
    chatwoot_id: int,
    conversation: int,
    direction: str,
) -> int:
    """Map a WhatsApp message id to its Chatwoot message, and wake the statuses that arrived
    before it (they wait in ``waiting``). Returns how many statuses were woken."""
    MessageMap.insert(
        integration=integration,
        whatsapp_message_id=whatsapp_id,
        chatwoot_message_id=chatwoot_id,
        chatwoot_conversation_id=conversation,
        direction=direction,
    ).on_conflict_ignore().execute()
    if direction == "incoming":
        return 0  # WhatsApp sends statuses only for messages the business sent
    return int(
        RelayEvent.update(status=EVENT_PENDING, next_attempt_at=None)
        .where(
            (RelayEvent.integration == integration)
            & (RelayEvent.message_id == whatsapp_id)
            & (RelayEvent.status == EVENT_WAITING)
        )
        .execute()
    )


def _apply_status(context: InboundContext, status: StatusUpdate) -> Outcome:
    mapped = MessageMap.get_or_none(
        (MessageMap.integration == context.integration)
        & (MessageMap.whatsapp_message_id == status.message_id)
    )
    if mapped is None:
        return Waiting()
    context.client.update_message_status(
        mapped.chatwoot_conversation_id,
        mapped.chatwoot_message_id,
        status.status,
        external_error=status.external_error,
    )
    return Delivered()
