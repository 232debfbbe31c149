"""Chatwoot reply ▸ WhatsApp: the outbound lane handler. :mod:`app.relay.outbound.send` sends
the reply's parts; this module decides what WhatsApp's (and Chatwoot's) answers mean:

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

import logging

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
from app.relay import clients
from app.relay.lanes import claims, drain
from app.relay.message_map import advances
from app.relay.outbound.chatwoot_webhook import AgentReply
from app.relay.outbound.send import OutboundContext, send_remaining
from app.store.models import (
    DIRECTION_INBOUND,
    DIRECTION_OUTBOUND,
    ChatwootIntegration,
    RelayEvent,
)

logger = logging.getLogger(__name__)

PAIR_RATE_LIMIT_SECONDS = 6.0


class OutboundHandler:
    direction = DIRECTION_OUTBOUND

    def __init__(self, wake: drain.Waker) -> None:
        self._wake = wake

    def open(self, integration: ChatwootIntegration) -> OutboundContext:
        instance = integration.instance
        return OutboundContext(
            integration=integration,
            sender=clients.whatsapp_sender(instance),
            chatwoot=clients.client_for(integration, get_settings()),
            fetch_file=clients.file_fetcher(),
            passes_links=clients.passes_links(instance),
        )

    def deliver(self, context: object, row: RelayEvent, interrupted: bool) -> drain.Step:
        assert isinstance(context, OutboundContext)
        reply = AgentReply.from_json(row.payload)
        if row.sending:
            return await_confirmation(row, "the previous attempt was cut off while sending")
        if row.unconfirmed:
            _resend_after_window(row)
        try:
            woken = send_remaining(context, row, reply)
        except SendFailure as exc:
            _tick(context, reply, "failed", exc.external_error)
            return drain.fail(row, exc.external_error)
        except SendRetryLater as exc:
            pause = PAIR_RATE_LIMIT_SECONDS if exc.per_recipient else 0.0
            return drain.retry_later(row, exc.reason, at_least=max(exc.retry_after or 0.0, pause))
        except SendOutcomeUnknown as exc:
            return await_confirmation(row, str(exc))
        except SendAuthFailure as exc:
            error = f"WhatsApp rejected the instance's credentials: {exc}"
            return drain.hold_integration(context.integration, row, error)
        except RemoteError as exc:
            return _attachment_failed(context, row, reply, exc)
        if woken:
            self._wake(DIRECTION_INBOUND, context.integration.id, row.chat_key)
        return _finish_sent(context, row, reply)


def _finish_sent(context: OutboundContext, row: RelayEvent, reply: AgentReply) -> drain.Step:
    """Tick the Chatwoot message ``sent``. Every part is already recorded, so if the tick has
    to wait (Chatwoot down, token revoked), the retry or the replay after ``set`` only ticks.
    The lane records the event delivered and the tick, batched: if that record is lost, the
    next attempt finds every part sent and only ticks again."""
    ticked = None
    try:
        if advances(context.integration, reply.chatwoot_message_id, "sent"):
            _tick(context, reply, "sent", None)
            ticked = reply.chatwoot_message_id
    except (RemoteUnauthorized, RemoteForbidden) as exc:
        error = f"Chatwoot rejected the API token — verify chatwootApiToken. Detail: {exc.detail}"
        return drain.hold_integration(context.integration, row, error)
    except RemoteError as exc:
        if is_transient(exc):
            return drain.retry_later(row, f"sent; Chatwoot tick pending: {exc}")
        logger.warning("reply %s sent; Chatwoot tick refused: %s", reply.chatwoot_message_id, exc)
    return drain.delivered(sent_tick=ticked)


def _tick(context: OutboundContext, reply: AgentReply, status: str, error: str | None) -> None:
    context.chatwoot.update_message_status(
        reply.conversation_id, reply.chatwoot_message_id, status, external_error=error
    )


def _attachment_failed(
    context: OutboundContext, row: RelayEvent, reply: AgentReply, exc: RemoteError
) -> drain.Step:
    if is_transient(exc):
        return drain.retry_later(row, str(exc))
    reason = f"attachment unavailable: {exc}" if isinstance(exc, RemoteNotFound) else str(exc)
    try:
        _tick(context, reply, "failed", reason)
    except RemoteError as tick_error:
        logger.warning("could not mark reply %s failed: %s", reply.chatwoot_message_id, tick_error)
    return drain.fail(row, reason)


def await_confirmation(row: RelayEvent, reason: str) -> drain.Step:
    """Hold a reply whose last send may have gone out, until evidence or the window's end."""
    window = get_settings().unconfirmed_send_seconds
    drain.postpone(
        row,
        window,
        unconfirmed=True,
        sending=False,
        attempts=row.attempts + 1,
        last_error=f"outcome unknown ({reason}); waiting {window:.0f}s for WhatsApp to confirm",
    )
    logger.warning("reply event %s unconfirmed: %s", row.id, reason)
    return drain.Step("retry", window)


def _resend_after_window(row: RelayEvent) -> None:
    """No confirmation came: send again (committed first, so a crash now waits once more)."""
    logger.warning("reply event %s was not confirmed in time; sending it again", row.id)
    claims.update_owned(row, unconfirmed=False)
    row.unconfirmed = False
