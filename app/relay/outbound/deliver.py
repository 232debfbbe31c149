"""Chatwoot reply ▸ WhatsApp: the outbound lane handler. :mod:`app.relay.outbound.send` sends
the reply's parts; this module decides what WhatsApp's (and Chatwoot's) answers mean:

* sent → each part recorded, the Chatwoot message ticked ``sent``;
* permanent for the message (24-hour window closed, invalid recipient, …) → Chatwoot message
  ``failed`` with ``"<code>: <title>"``, event failed, no retry;
* transient (throughput and pair rate limits, 5xx, not connected) → backoff (never under the
  pair limit's pause for one customer; a day for the per-user marketing limit, 131049);
* no pacing slot soon (:mod:`app.integrations.whatsapp.pacing`) → back at the slot, no
  attempt counted;
* unknown outcome (a timeout after the request went out, or a worker killed mid-send) → the
  reply waits for confirmation; resent only if none comes within ``UNCONFIRMED_SEND_SECONDS``;
* credentials refused, or the business account blocked (policy, payment, locked) → the
  integration turns ``error`` and replies wait.
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
from app.integrations.whatsapp.cloud_send import MARKETING_LIMIT
from app.integrations.whatsapp.pacing import PacingBusy
from app.integrations.whatsapp.send import (
    SendAuthFailure,
    SendFailure,
    SendOutcomeUnknown,
    SendRetryLater,
)
from app.relay import clients, read_receipts
from app.relay.lanes import claims, drain
from app.relay.message_map import Tick, apply_tick
from app.relay.outbound import deletion
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
MARKETING_LIMIT_ATTEMPTS = 3  # 131049: tried at most this often, a day apart
MIN_SLOT_WAIT_SECONDS = 0.05
SENT = Tick("sent")


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
        if row.kind == deletion.DELETE_KIND:
            return deletion.deliver_deletion(context, row, interrupted)
        reply = AgentReply.from_json(row.payload)
        if deletion.deleted_in_chatwoot(context.integration, reply):
            return deletion.withhold(row, reply)
        if row.sending:
            return await_confirmation(row, "the previous attempt was cut off while sending")
        if row.unconfirmed:
            _resend_after_window(row)
        read_receipts.mark_read_before_reply(context.integration, row.chat_key)  # never raises
        try:
            woken = send_remaining(context, row, reply)
        except PacingBusy as exc:
            return _wait_for_slot(row, exc)
        except SendFailure as exc:
            if exc.account_level:
                return _hold_for_account(context, row, exc)
            _tick(context, reply, "failed", exc.external_error)
            return drain.fail(row, exc.external_error)
        except SendRetryLater as exc:
            return _back_off(context, row, reply, exc)
        except SendOutcomeUnknown as exc:
            return await_confirmation(row, str(exc))
        except SendAuthFailure as exc:
            error = f"WhatsApp rejected the instance's credentials: {exc}"
            return drain.hold_integration(context.integration, row, error)
        except RemoteError as exc:
            return _attachment_failed(context, row, reply, exc)
        if woken:
            self._wake(DIRECTION_INBOUND, context.integration.id, row.chat_key)
        return _finish_sent(context, row, reply, interrupted)


def _wait_for_slot(row: RelayEvent, exc: PacingBusy) -> drain.Step:
    """The number's pacer has no slot soon (:mod:`app.integrations.whatsapp.pacing`): nothing
    was sent, and it is no failure of the reply (no attempt counted); the lane comes back at
    the slot instead of pinning a worker thread."""
    wait = max(exc.retry_after or 0.0, MIN_SLOT_WAIT_SECONDS)
    drain.postpone(row, wait, sending=False, last_error=exc.reason)
    logger.info("reply event %s given back for %.1fs: %s", row.id, wait, exc.reason)
    return drain.Step("retry", wait)


def _hold_for_account(context: OutboundContext, row: RelayEvent, exc: SendFailure) -> drain.Step:
    """WhatsApp refuses the business, not this reply (368 policy block, 131031 account locked,
    131042 payment, 131045 certificate, 133010 number not registered): every reply would fail
    alike, so the integration turns ``error`` with the reason and its replies wait, in order,
    for ``set`` or ``resume``."""
    error = f"WhatsApp refuses to send as this number: {exc}"
    return drain.hold_integration(context.integration, row, error)


def _back_off(
    context: OutboundContext, row: RelayEvent, reply: AgentReply, exc: SendRetryLater
) -> drain.Step:
    """Transient: back off. The pair rate limit (131056) waits at least 6 s before the next
    send to this customer (the lane waits; other chats go on); the marketing limit (131049) a
    day, given up after :data:`MARKETING_LIMIT_ATTEMPTS` tries (the reply is then ``failed``)."""
    if exc.code == MARKETING_LIMIT and row.attempts + 1 >= MARKETING_LIMIT_ATTEMPTS:
        reason = f"{exc.reason} (tried {row.attempts + 1} times, a day apart)"
        _tick(context, reply, "failed", reason)
        return drain.fail(row, reason)
    pause = PAIR_RATE_LIMIT_SECONDS if exc.per_recipient else 0.0
    return drain.retry_later(row, exc.reason, at_least=max(exc.retry_after or 0.0, pause))


def _finish_sent(
    context: OutboundContext, row: RelayEvent, reply: AgentReply, interrupted: bool
) -> drain.Step:
    """Tick the Chatwoot message ``sent`` (or the further tick a status of WhatsApp's claimed
    meanwhile: :func:`~app.relay.message_map.apply_tick`). Every part is already recorded,
    so if the tick has to wait (Chatwoot down, token revoked), the retry or the replay after
    ``set`` only ticks. The lane records the event delivered and the tick, batched: if that
    record is lost, the next attempt finds every part sent and only ticks again."""
    ticked = None
    try:
        applied = apply_tick(
            context.integration,
            reply.chatwoot_message_id,
            SENT,
            lambda tick: _tick(context, reply, tick.status, tick.error),
            claimed=False,
            retrying=interrupted,
        )
        if applied is not None:
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
