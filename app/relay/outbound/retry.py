"""Chatwoot's Retry button: a failed reply is sent again, once; a sent one never twice.

Pressing Retry on a failed message makes Chatwoot set it ``sent`` again and post
``message_updated`` (twice: one update per field, see
:class:`~app.relay.outbound.chatwoot_webhook.RetryRequested`). Such a body looks like our own
``sent`` tick, and Chatwoot may deliver it twice or both updates at once, so what happens is
decided by the database, inside the webhook's intake transaction, with one conditional
``UPDATE`` (:func:`app.relay.lanes.replay.back_to_pending`, the reset the retry API uses):

* the reply's event is ``failed`` (WhatsApp refused it, its attachment was gone, …): it goes
  back to ``pending`` in its lane, keeping the parts already sent, and its lane is enqueued.
  A second Retry webhook finds it ``pending`` (or ``delivered``) and changes nothing;
* the event was ``delivered`` but WhatsApp reported every part of it ``failed`` afterwards
  (a status webhook: 131047, 131026, …), and the body shows the failure being cleared
  (``explicit``, never true for our own ticks): the reply goes back to ``pending`` with no part
  sent, the failed WhatsApp ids are forgotten (they never reached the customer), and it is sent
  again. A part that WhatsApp accepted, delivered or did not report failed yet keeps the whole
  reply from being sent again;
* anything else (delivered, pending, in flight, or a Chatwoot message we hold no reply for,
  such as one we refused at intake or one typed on the business phone): nothing is sent. The
  Chatwoot message then shows ``sent`` (Chatwoot's own doing); its next real tick corrects it.

When the resend succeeds, the lane ticks the Chatwoot message ``sent`` as for any reply, and
WhatsApp's statuses carry it on to ``delivered`` and ``read``.
"""

from __future__ import annotations

import logging
from typing import Any

from peewee import fn

from app.relay.lanes.replay import back_to_pending
from app.relay.outbound.chatwoot_webhook import RetryRequested
from app.store.models import (
    DIRECTION_OUTBOUND,
    EVENT_DELIVERED,
    EVENT_FAILED,
    ChatwootIntegration,
    MessageMap,
    RelayEvent,
)

logger = logging.getLogger(__name__)

FAILED_TICK = "failed"


def request_retry(integration: ChatwootIntegration, retry: RetryRequested) -> bool:
    """Inside the intake transaction: send the reply again if (and only if) it failed; True
    when it went back to its lane (which the caller enqueues)."""
    reply = _reply_condition(integration, retry.chatwoot_message_id)
    if back_to_pending(reply & (RelayEvent.status == EVENT_FAILED)):
        logger.info("reply %s failed; Chatwoot's Retry sends it again", retry.chatwoot_message_id)
        return True
    if retry.explicit and _reset_failed_on_whatsapp(integration, retry.chatwoot_message_id, reply):
        logger.info(
            "reply %s was refused by WhatsApp after sending; Chatwoot's Retry sends it again",
            retry.chatwoot_message_id,
        )
        return True
    return False


def _reply_condition(integration: ChatwootIntegration, chatwoot_message_id: int) -> Any:
    """The agent reply's event (``AgentReply.natural_key``), by the unique index."""
    return (
        (RelayEvent.integration == integration.id)
        & (RelayEvent.direction == DIRECTION_OUTBOUND)
        & (RelayEvent.natural_key == f"cw:{chatwoot_message_id}")
    )


def _reset_failed_on_whatsapp(
    integration: ChatwootIntegration, chatwoot_message_id: int, reply: Any
) -> bool:
    """A delivered reply whose every WhatsApp part was reported ``failed``: pending again from
    its first part, in the same conditional write (so a repeated Retry, which finds it
    ``pending``, or finds a part of the resend not failed, changes nothing)."""
    parts = MessageMap.select(MessageMap.whatsapp_message_id).where(
        (MessageMap.integration == integration.id)
        & (MessageMap.chatwoot_message_id == chatwoot_message_id)
        & (MessageMap.direction != "incoming")
    )
    failed = parts.where(MessageMap.status == FAILED_TICK)
    not_failed = parts.where(MessageMap.status.is_null() | (MessageMap.status != FAILED_TICK))
    condition = (
        reply & (RelayEvent.status == EVENT_DELIVERED) & fn.EXISTS(failed) & ~fn.EXISTS(not_failed)
    )
    if not back_to_pending(condition, progress=0):
        return False
    MessageMap.delete().where(
        (MessageMap.integration == integration.id)
        & (MessageMap.chatwoot_message_id == chatwoot_message_id)
        & (MessageMap.direction != "incoming")
        & (MessageMap.status == FAILED_TICK)
    ).execute()
    return True
