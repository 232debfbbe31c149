"""The outbound lane handler: agent replies to WhatsApp, with WhatsApp's answers classified.

* sent → each part recorded, the Chatwoot message ticked ``sent``;
* permanent for the message (24-hour window closed, invalid recipient, …) → Chatwoot message
  ``failed`` with ``"<code>: <title>"``, event failed, no retry;
* transient (throughput and pair rate limits, 5xx, not connected) → backoff (never under the
  pair limit's pause for one customer);
* unknown outcome (a timeout after the request went out, or a worker killed mid-send) → the
  reply waits for confirmation; resent only if none comes within ``UNCONFIRMED_SEND_SECONDS``;
* credentials refused → the integration turns ``error`` and replies wait.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from app.config import get_settings
from app.integrations.errors import (
    RemoteError,
    RemoteForbidden,
    RemoteNotFound,
    RemoteUnauthorized,
    is_transient,
)
from app.integrations.whatsapp.send import (
    SendAuthFailure,
    SendFailure,
    SendOutcomeUnknown,
    SendRetryLater,
)
from app.relay import claims, lanes
from app.relay.chatwoot_events import AgentReply
from app.relay.context import outbound_context
from app.relay.message_map import advances, record_sent
from app.relay.outbound import (
    OutboundContext,
    mark_sending,
    plan,
    quoted_whatsapp_id,
    record_sent_part,
    send_part,
)
from app.store.models import (
    DIRECTION_INBOUND,
    DIRECTION_OUTBOUND,
    EVENT_DELIVERED,
    ChatwootIntegration,
    RelayEvent,
    utcnow,
)

logger = logging.getLogger(__name__)

PAIR_RATE_LIMIT_SECONDS = 6.0
Waker = Callable[[str, str, str], None]  # direction, integration id, chat key


class OutboundHandler:
    direction = DIRECTION_OUTBOUND
    asserts_claim = True  # folded into ``mark_sending``, right before each send

    def __init__(self, wake: Waker) -> None:
        self._wake = wake

    def open(self, integration: ChatwootIntegration) -> OutboundContext:
        return outbound_context(integration)

    def deliver(self, context: object, row: RelayEvent, interrupted: bool) -> lanes.Step:
        assert isinstance(context, OutboundContext)
        reply = AgentReply.from_json(row.payload)
        if row.sending:
            return await_confirmation(row, "the previous attempt was cut off while sending")
        if row.unconfirmed:
            _resend_after_window(row)
        try:
            woken = _send_remaining(context, row, reply)
        except SendFailure as exc:
            _tick(context, reply, "failed", exc.external_error)
            return lanes.fail(row, exc.external_error)
        except SendRetryLater as exc:
            pause = PAIR_RATE_LIMIT_SECONDS if exc.per_recipient else 0.0
            return lanes.retry_later(row, exc.reason, at_least=max(exc.retry_after or 0.0, pause))
        except SendOutcomeUnknown as exc:
            return await_confirmation(row, str(exc))
        except SendAuthFailure as exc:
            error = f"WhatsApp rejected the instance's credentials: {exc}"
            return lanes.hold_integration(context.integration, row, error)
        except RemoteError as exc:
            return _attachment_failed(context, row, reply, exc)
        if woken:
            self._wake(DIRECTION_INBOUND, context.integration.id, row.chat_key)
        return _finish_sent(context, row, reply)


def _send_remaining(context: OutboundContext, row: RelayEvent, reply: AgentReply) -> int:
    """Send the parts not sent yet; returns how many waiting statuses they woke."""
    integration = context.integration
    sign_with = (reply.sender_name or "") if integration.sign_messages else None
    parts = plan(reply, sign_with or None)
    reply_to = quoted_whatsapp_id(integration, reply)
    woken = 0
    while row.progress < len(parts):
        quote = reply_to if row.progress == 0 else None
        mark_sending(row)
        result = send_part(context, reply, parts[row.progress], quote)
        woken += record_sent_part(integration, row, reply, result.message_id)
    return woken


def _finish_sent(context: OutboundContext, row: RelayEvent, reply: AgentReply) -> lanes.Step:
    """Tick the Chatwoot message ``sent``. Every part is already recorded, so if the tick has
    to wait (Chatwoot down, token revoked), the retry or the replay after ``set`` only ticks."""
    try:
        if advances(context.integration, reply.chatwoot_message_id, "sent"):
            _tick(context, reply, "sent", None)
            record_sent(context.integration, reply.chatwoot_message_id)
    except (RemoteUnauthorized, RemoteForbidden) as exc:
        error = f"Chatwoot rejected the API token — verify chatwootApiToken. Detail: {exc.detail}"
        return lanes.hold_integration(context.integration, row, error)
    except RemoteError as exc:
        if is_transient(exc):
            return lanes.retry_later(row, f"sent; Chatwoot tick pending: {exc}")
        logger.warning("reply %s sent; Chatwoot tick refused: %s", reply.chatwoot_message_id, exc)
    lanes.finish(row, EVENT_DELIVERED)
    return lanes.DELIVERED


def _tick(context: OutboundContext, reply: AgentReply, status: str, error: str | None) -> None:
    context.chatwoot.update_message_status(
        reply.conversation_id, reply.chatwoot_message_id, status, external_error=error
    )


def _attachment_failed(
    context: OutboundContext, row: RelayEvent, reply: AgentReply, exc: RemoteError
) -> lanes.Step:
    if is_transient(exc):
        return lanes.retry_later(row, str(exc))
    reason = f"attachment unavailable: {exc}" if isinstance(exc, RemoteNotFound) else str(exc)
    try:
        _tick(context, reply, "failed", reason)
    except RemoteError as tick_error:
        logger.warning("could not mark reply %s failed: %s", reply.chatwoot_message_id, tick_error)
    return lanes.fail(row, reason)


def await_confirmation(row: RelayEvent, reason: str) -> lanes.Step:
    """Hold a reply whose last send may have gone out, until evidence or the window's end."""
    window = get_settings().unconfirmed_send_seconds
    claims.update_owned(
        row,
        unconfirmed=True,
        sending=False,
        attempts=row.attempts + 1,
        last_error=f"outcome unknown ({reason}); waiting {window:.0f}s for WhatsApp to confirm",
        next_attempt_at=utcnow() + dt.timedelta(seconds=window),
        **claims.released(),
    )
    logger.warning("reply event %s unconfirmed: %s", row.id, reason)
    return lanes.Step("retry", window)


def _resend_after_window(row: RelayEvent) -> None:
    """No confirmation came: send again (committed first, so a crash now waits once more)."""
    logger.warning("reply event %s was not confirmed in time; sending it again", row.id)
    claims.update_owned(row, unconfirmed=False)
    row.unconfirmed = False
