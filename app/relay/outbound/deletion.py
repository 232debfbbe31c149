"""An agent deletes a message in Chatwoot: WhatsApp follows where it can, the agent is told where
it cannot.

Chatwoot's delete (``messages_controller.rb#destroy``) posts ``message_updated`` with
``content_attributes.deleted`` (:class:`~app.relay.outbound.chatwoot_webhook.MessageDeleted`).
Like a reply, it is stored before it is acknowledged, once (natural key
``cw:<message id>:deleted``), as an event of the chat's outbound lane, so it is handled after
the reply it deletes:

* the reply was never sent (still pending, backing off, or failed): it is never sent now. The
  lane withholds a pending reply whose delete is stored (:func:`deleted_in_chatwoot`), and the
  delete marks a failed one done, so neither the retry API nor Chatwoot's Retry sends it;
* it reached WhatsApp (its parts are in the message map; a message typed on the business phone
  too): on a gateway that can revoke (:class:`Revoker`), each part is deleted for everyone and
  no note is needed; the Cloud API has no way for a business to delete a sent message, so a
  private note in the conversation says the message is deleted in Chatwoot only. A gateway
  that refuses the revoke (too old, unknown to it) gets the same note, with its reason.

The note is posted once per message: a repeated webhook stores nothing, and a delivery cut off
after posting finds the note by its ``source_id`` before posting again.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

import peewee

from app.integrations.errors import (
    RemoteError,
    RemoteForbidden,
    RemoteUnauthorized,
    is_transient,
)
from app.integrations.whatsapp.send import (
    SendAuthFailure,
    SendFailure,
    SendOutcomeUnknown,
    SendRetryLater,
)
from app.relay.lanes import drain
from app.relay.outbound.chatwoot_webhook import AgentReply, MessageDeleted
from app.relay.outbound.send import OutboundContext
from app.store.counters import bump_counters
from app.store.db import database
from app.store.models import (
    DIRECTION_OUTBOUND,
    EVENT_DELIVERED,
    EVENT_FAILED,
    ChatwootIntegration,
    MessageMap,
    RelayEvent,
    utcnow,
)
from app.store.prepared import exists_where

logger = logging.getLogger(__name__)

DELETE_KIND = "delete"
WITHHELD = "not sent: deleted in Chatwoot before it was sent"
NOTE_CLOUD = (
    "🗑️ This message was deleted in Chatwoot only: WhatsApp does not let businesses delete a "
    "sent message, so the customer still sees it."
)
NOTE_REFUSED = (
    "🗑️ This message was deleted in Chatwoot only: WhatsApp did not delete it for the customer "
    "({reason}), so the customer still sees it."
)


@runtime_checkable
class Revoker(Protocol):
    """A WhatsApp provider that can delete a sent message for everyone (a gateway)."""

    def revoke_message(self, message_id: str) -> None: ...


def note_source_id(chatwoot_message_id: int) -> str:
    """The ``source_id`` of our note about this message: how a retry finds it posted."""
    return f"wootbridge:deleted:{chatwoot_message_id}"


# ---- intake (web process, inside the webhook's transaction) ----


def store_deletion(integration: ChatwootIntegration, deleted: MessageDeleted) -> bool:
    """Store the delete once; False when it was stored before (a repeated webhook)."""
    known = (
        RelayEvent.select()
        .where(
            (RelayEvent.integration == integration)
            & (RelayEvent.direction == DIRECTION_OUTBOUND)
            & (RelayEvent.natural_key == deleted.natural_key)
        )
        .exists()
    )
    if known:
        return False
    try:
        with database.atomic():
            RelayEvent.create(
                integration=integration,
                direction=DIRECTION_OUTBOUND,
                natural_key=deleted.natural_key,
                chat_key=deleted.recipient,
                kind=DELETE_KIND,
                payload=deleted.to_json(),
            )
            bump_counters([(integration.id, DIRECTION_OUTBOUND, "received", 1)])
    except peewee.IntegrityError:
        logger.info("delete of message %s already stored", deleted.chatwoot_message_id)
        return False
    return True


# ---- the lane (worker) ----


def deleted_in_chatwoot(integration: ChatwootIntegration, reply: AgentReply) -> bool:
    """Whether the agent deleted this reply in Chatwoot (its delete is stored)."""
    return exists_where(
        RelayEvent,
        integration=integration,
        direction=DIRECTION_OUTBOUND,
        natural_key=f"cw:{reply.chatwoot_message_id}:deleted",
    )


def withhold(row: RelayEvent, reply: AgentReply) -> drain.Step:
    """A reply deleted before it was (fully) sent: done, its remaining parts never sent."""
    logger.info("reply %s was deleted in Chatwoot; not sending it", reply.chatwoot_message_id)
    drain.finish(row, EVENT_DELIVERED, WITHHELD)
    return drain.WAITING  # recorded here: the lane goes on (nothing more to record)


def deliver_deletion(context: OutboundContext, row: RelayEvent, interrupted: bool) -> drain.Step:
    """Handle a stored delete (see the module docstring)."""
    deleted = MessageDeleted.from_json(row.payload)
    integration = context.integration
    _retire_failed_reply(integration, deleted.chatwoot_message_id)
    parts = _sent_parts(integration, deleted.chatwoot_message_id)
    if not parts:
        return drain.delivered()  # it never reached WhatsApp: nothing more to do
    refused = None
    if isinstance(context.sender, Revoker):
        try:
            for whatsapp_id in parts:
                context.sender.revoke_message(whatsapp_id)
        except SendFailure as exc:
            refused = str(exc)
        except (SendRetryLater, SendOutcomeUnknown) as exc:
            return drain.retry_later(row, f"revoke on WhatsApp: {exc}")
        except SendAuthFailure as exc:
            error = f"WhatsApp rejected the instance's credentials: {exc}"
            return drain.hold_integration(integration, row, error)
        if refused is None:
            logger.info("message %s deleted on WhatsApp too", deleted.chatwoot_message_id)
            return drain.delivered()
    text = NOTE_CLOUD if refused is None else NOTE_REFUSED.format(reason=refused)
    return _note(context, row, deleted, text, interrupted)


def _retire_failed_reply(integration: ChatwootIntegration, chatwoot_message_id: int) -> None:
    """A failed reply that is deleted is done: neither a retry nor Chatwoot's Retry sends it."""
    RelayEvent.update(status=EVENT_DELIVERED, last_error=WITHHELD, delivered_at=utcnow()).where(
        (RelayEvent.integration == integration)
        & (RelayEvent.direction == DIRECTION_OUTBOUND)
        & (RelayEvent.natural_key == f"cw:{chatwoot_message_id}")
        & (RelayEvent.status == EVENT_FAILED)
    ).execute()


def _sent_parts(integration: ChatwootIntegration, chatwoot_message_id: int) -> list[str]:
    """The WhatsApp messages this Chatwoot message became (an agent's reply or a message from
    the business phone), oldest first."""
    rows = (
        MessageMap.select(MessageMap.whatsapp_message_id)
        .where(
            (MessageMap.integration == integration)
            & (MessageMap.chatwoot_message_id == chatwoot_message_id)
            & (MessageMap.direction != "incoming")
        )
        .order_by(MessageMap.created_at, MessageMap.whatsapp_message_id)
    )
    return [str(row.whatsapp_message_id) for row in rows]


def _note(
    context: OutboundContext,
    row: RelayEvent,
    deleted: MessageDeleted,
    text: str,
    interrupted: bool,
) -> drain.Step:
    source_id = note_source_id(deleted.chatwoot_message_id)
    try:
        if interrupted and _note_posted(context, deleted.conversation_id, source_id):
            return drain.delivered()
        context.chatwoot.create_message(
            deleted.conversation_id,
            content=text,
            message_type="outgoing",
            private=True,
            source_id=source_id,
        )
    except (RemoteUnauthorized, RemoteForbidden) as exc:
        error = f"Chatwoot rejected the API token — verify chatwootApiToken. Detail: {exc.detail}"
        return drain.hold_integration(context.integration, row, error)
    except RemoteError as exc:
        if is_transient(exc):
            return drain.retry_later(row, f"note about a deleted message: {exc}")
        return drain.fail(row, f"note about a deleted message not posted: {exc}")
    logger.info("message %s deleted in Chatwoot only; note posted", deleted.chatwoot_message_id)
    return drain.delivered()


def _note_posted(context: OutboundContext, conversation_id: int, source_id: str) -> bool:
    """After an attempt cut off: is our note already in the conversation (newest page)?"""
    posted = context.chatwoot.list_messages(conversation_id)
    return any(message.get("source_id") == source_id for message in posted)
