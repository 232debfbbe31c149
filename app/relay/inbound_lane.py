"""The inbound lane handler: WhatsApp events into Chatwoot, with Chatwoot's failures classified.

* transient (connect, timeout, 429, 5xx) → retry with backoff;
* permanent for the event (422, media gone or too large) → ``failed`` with the reason;
* permanent for the integration (401/403, inbox gone) → integration ``error``, events held.
"""

from __future__ import annotations

import logging

from app.integrations.errors import (
    RemoteError,
    RemoteForbidden,
    RemoteNotFound,
    RemoteUnauthorized,
    is_transient,
)
from app.relay import lanes
from app.relay.context import inbound_context
from app.relay.inbound import (
    Delivered,
    EchoOfOwnReply,
    InboundContext,
    MediaUnavailable,
    Outcome,
    Waker,
    deliver,
)
from app.relay.message_map import remember_message
from app.store.db import database
from app.store.models import (
    DIRECTION_INBOUND,
    EVENT_DELIVERED,
    EVENT_WAITING,
    ChatwootIntegration,
    RelayEvent,
)

logger = logging.getLogger(__name__)


class IntegrationBroken(Exception):
    """Chatwoot refuses the integration itself; carries the text for ``last_error``."""


class InboundHandler:
    direction = DIRECTION_INBOUND
    asserts_claim = False  # the lane re-asserts the claim before each event

    def __init__(self, wake: Waker) -> None:
        self._wake = wake

    def open(self, integration: ChatwootIntegration) -> InboundContext:
        return inbound_context(integration, self._wake)

    def deliver(self, context: object, row: RelayEvent, interrupted: bool) -> lanes.Step:
        assert isinstance(context, InboundContext)
        try:
            outcome = _deliver_retrying_lost_conversation(context, row, interrupted)
        except MediaUnavailable as exc:
            return lanes.fail(row, f"media unavailable: {exc}")
        except EchoOfOwnReply:
            return lanes.wait_briefly(row, "may belong to a reply whose send is under way")
        except IntegrationBroken as exc:
            return lanes.hold_integration(context.integration, row, str(exc))
        except RemoteError as exc:
            return _classify(context, row, exc)
        _record(context, row, outcome)
        return lanes.DELIVERED


def _record(context: InboundContext, row: RelayEvent, outcome: Outcome) -> None:
    if not isinstance(outcome, Delivered):
        lanes.finish(row, EVENT_WAITING, "waiting for the message this status belongs to")
        return
    with database.atomic():
        if outcome.link is not None:
            link = outcome.link
            remember_message(
                context.integration,
                link.whatsapp_id,
                link.chatwoot_id,
                link.conversation_id,
                link.direction,
            )
        lanes.finish(row, EVENT_DELIVERED)


def _deliver_retrying_lost_conversation(
    context: InboundContext, row: RelayEvent, interrupted: bool
) -> Outcome:
    """A conversation deleted in Chatwoot is recreated once; a second 404 means the inbox
    itself may be gone, which is checked before blaming the event."""
    try:
        return deliver(context, row, interrupted)
    except RemoteNotFound:
        logger.info("event %s: conversation gone in Chatwoot, opening a new one", row.id)
    try:
        return deliver(context, row, interrupted)
    except RemoteNotFound as exc:
        _raise_if_inbox_gone(context)
        raise exc


def _raise_if_inbox_gone(context: InboundContext) -> None:
    inbox_id = context.integration.chatwoot_inbox_id
    if inbox_id is None:
        raise IntegrationBroken("the integration has no Chatwoot inbox — run set")
    try:
        context.client.get_inbox(int(inbox_id))
    except RemoteNotFound:
        raise IntegrationBroken(
            f"Chatwoot inbox {inbox_id} no longer exists — run set to create a new one"
        ) from None


def _classify(context: InboundContext, row: RelayEvent, exc: RemoteError) -> lanes.Step:
    if isinstance(exc, RemoteUnauthorized):
        error = f"Chatwoot rejected the API token — verify chatwootApiToken. Detail: {exc.detail}"
        return lanes.hold_integration(context.integration, row, error)
    if isinstance(exc, RemoteForbidden):
        error = f"Chatwoot denied the request — verify the token's access. Detail: {exc.detail}"
        return lanes.hold_integration(context.integration, row, error)
    if is_transient(exc):
        return lanes.retry_later(row, str(exc))
    return lanes.fail(row, str(exc))
