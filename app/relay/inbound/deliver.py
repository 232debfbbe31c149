"""WhatsApp event ▸ Chatwoot: the inbound lane handler, one stored event at a time.

:func:`deliver_event` talks to Chatwoot and the WhatsApp media host; :class:`InboundHandler`
(driven by :mod:`app.relay.lanes.drain`) classifies what went wrong:

* transient (connect, timeout, 429, 5xx) → retry with backoff;
* permanent for the event (422, media gone or too large) → ``failed`` with the reason;
* permanent for the integration (401/403, inbox gone) → integration ``error``, events held.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from app.config import get_settings
from app.integrations.chatwoot import ChatwootClient
from app.integrations.errors import (
    RemoteError,
    RemoteForbidden,
    RemoteNotFound,
    RemoteUnauthorized,
    is_transient,
)
from app.integrations.files import File
from app.relay import clients, confirmations, read_receipts
from app.relay.clients import MediaFetcher
from app.relay.inbound import chats, failure_notes, profiles
from app.relay.inbound.render import render_inbound
from app.relay.lanes import drain
from app.relay.message_map import (
    MessageLink,
    Tick,
    apply_tick,
    chatwoot_target,
    claim_tick,
    is_mapped,
)
from app.relay.messages import InboundMessage, Media, StatusUpdate, event_from_json
from app.store.models import (
    DIRECTION_INBOUND,
    DIRECTION_OUTBOUND,
    ChatwootIntegration,
    RelayEvent,
)

logger = logging.getLogger(__name__)


class MediaUnavailable(Exception):
    """The attachment cannot be fetched for good (gone, expired, too large)."""


@dataclass(frozen=True)
class Delivered:
    """The event reached Chatwoot (or was found there already). ``link`` and the ``after``
    writes are recorded by the lane in the same transaction that marks the event delivered."""

    link: MessageLink | None = None
    after: tuple[Callable[[], object], ...] = ()


@dataclass(frozen=True)
class Waiting:
    """A status for a message we do not know (yet); applied when the message appears."""


Outcome = Delivered | Waiting


class EchoOfOwnReply(Exception):
    """Evidence (a gateway echo, a status) that may belong to a reply being sent right now:
    it waits until that send has recorded its message id."""


@dataclass
class InboundContext:
    integration: ChatwootIntegration
    client: ChatwootClient
    fetch_media: MediaFetcher
    wake: drain.Waker


def deliver_event(context: InboundContext, row: RelayEvent, interrupted: bool) -> Outcome:
    """Deliver one stored inbound event. Raises RemoteError subclasses for the lane to classify.

    ``interrupted``: an earlier attempt may have reached Chatwoot, so we look for our message
    (by its ``source_id``) before posting again.
    """
    event = event_from_json(row.payload)
    if isinstance(event, StatusUpdate):
        return _apply_status(context, event, row.chat_key, interrupted)
    return _post_message(context, row, event, interrupted)


def _post_message(
    context: InboundContext, row: RelayEvent, message: InboundMessage, interrupted: bool
) -> Outcome:
    if message.direction == "outgoing" and _is_own_reply(context, row, message):
        return Delivered()
    link = chats.link_for(context.integration, row.chat_key)
    conversation_id = chats.ensure_conversation(context.client, context.integration, link, message)
    chats.complete_contact(context.client, link, message)
    if interrupted:
        already = _find_posted(context.client, conversation_id, message.message_id)
        if already is not None:
            logger.info("event %s was already in Chatwoot as message %s", row.id, already)
            chats.remember_reply_address(link, message)
            remember = _remember_for_receipts(context, row, message)
            return Delivered(_link(message, already, conversation_id), remember)
    rendered = render_inbound(message)
    attachments = []
    if rendered.needs_media and message.media is not None:  # never when media_error is set
        attachments.append(_download(context, message.media))
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
    chats.remember_reply_address(link, message)
    profiles.follow(context.client, link, message)  # after the post: it never costs the message
    remember = _remember_for_receipts(context, row, message)
    return Delivered(_link(message, message_id, conversation_id), remember)


def _remember_for_receipts(
    context: InboundContext, row: RelayEvent, message: InboundMessage
) -> tuple[Callable[[], object], ...]:
    """The chat's last customer message, recorded with the delivery (not a commit of its own
    per message: that doubled the inbound lane's commits)."""
    integration, chat_key = context.integration, str(row.chat_key)
    return (partial(read_receipts.remember_inbound, integration, chat_key, message),)


def _is_own_reply(context: InboundContext, row: RelayEvent, message: InboundMessage) -> bool:
    """Is this business message (a gateway echo, a Cloud ``smb_message_echoes`` entry) one of
    our own sends? Those are already in Chatwoot as the agent's reply and must not appear
    twice; they are known by WhatsApp message id (the message map, or an unconfirmed send)."""
    integration = context.integration
    if is_mapped(integration, message.message_id):
        return True
    if confirmations.adopt(integration, row.chat_key, message.message_id):
        context.wake(DIRECTION_OUTBOUND, integration.id, row.chat_key)
        return True
    if confirmations.send_in_progress(integration, row.chat_key):
        raise EchoOfOwnReply(message.message_id)
    return False


def _download(context: InboundContext, media: Media) -> File:
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


def _apply_status(
    context: InboundContext, status: StatusUpdate, chat_key: str, interrupted: bool
) -> Outcome:
    """Tick the agent's message (unless a further tick was already claimed for it: read before
    delivered). ``chat_key`` is the lane the intake resolved (the status may name the customer
    by a BSUID while the chat is keyed by the phone, or the other way)."""
    integration = context.integration
    target = chatwoot_target(integration, status.message_id)
    if target is None and confirmations.adopt(integration, chat_key, status.message_id):
        context.wake(DIRECTION_OUTBOUND, integration.id, chat_key)
        target = chatwoot_target(integration, status.message_id)
    if target is None and confirmations.send_in_progress(integration, chat_key):
        # WhatsApp may report a message before our send call has even returned its id
        raise EchoOfOwnReply(status.message_id)
    if target is None:
        return Waiting()
    tick = Tick(status.status, status.external_error)
    claim_tick(integration, status.message_id, tick)  # committed before the call: apply_tick
    chatwoot_id, conversation_id = target

    def send(shown: Tick) -> None:
        context.client.update_message_status(
            conversation_id, chatwoot_id, shown.status, external_error=shown.error
        )

    apply_tick(integration, chatwoot_id, tick, send, claimed=True, retrying=interrupted)
    return Delivered()


class IntegrationBroken(Exception):
    """Chatwoot refuses the integration itself; carries the text for ``last_error``."""


class InboundHandler:
    direction = DIRECTION_INBOUND

    def __init__(self, wake: drain.Waker) -> None:
        self._wake = wake

    def open(self, integration: ChatwootIntegration) -> InboundContext:
        return InboundContext(
            integration=integration,
            client=clients.client_for(integration, get_settings()),
            fetch_media=clients.media_fetcher(integration.instance),
            wake=self._wake,
        )

    def deliver(self, context: object, row: RelayEvent, interrupted: bool) -> drain.Step:
        assert isinstance(context, InboundContext)
        try:
            outcome = _deliver_retrying_lost_conversation(context, row, interrupted)
        except MediaUnavailable as exc:
            return _fail(context, row, f"media unavailable: {exc}")
        except EchoOfOwnReply:
            return drain.wait_briefly(row, "may belong to a reply whose send is under way")
        except IntegrationBroken as exc:
            return drain.hold_integration(context.integration, row, str(exc))
        except RemoteError as exc:
            return _classify(context, row, exc)
        if not isinstance(outcome, Delivered):
            return drain.park(row, "waiting for the message this status belongs to")
        failure_notes.note_recovery(context.client, context.integration, row)
        return drain.delivered(outcome.link, after=outcome.after)


def _fail(context: InboundContext, row: RelayEvent, reason: str) -> drain.Step:
    """Failed for good: recorded first, then the agent is told in the conversation."""
    step = drain.fail(row, reason)
    failure_notes.note_failure(context.client, context.integration, row, reason)
    return step


def _deliver_retrying_lost_conversation(
    context: InboundContext, row: RelayEvent, interrupted: bool
) -> Outcome:
    """A conversation deleted in Chatwoot is recreated once; a second 404 means the inbox
    itself may be gone, which is checked before blaming the event."""
    try:
        return deliver_event(context, row, interrupted)
    except RemoteNotFound:
        logger.info("event %s: conversation gone in Chatwoot, opening a new one", row.id)
    try:
        return deliver_event(context, row, interrupted)
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


def _classify(context: InboundContext, row: RelayEvent, exc: RemoteError) -> drain.Step:
    if isinstance(exc, RemoteUnauthorized):
        error = f"Chatwoot rejected the API token — verify chatwootApiToken. Detail: {exc.detail}"
        return drain.hold_integration(context.integration, row, error)
    if isinstance(exc, RemoteForbidden):
        error = f"Chatwoot denied the request — verify the token's access. Detail: {exc.detail}"
        return drain.hold_integration(context.integration, row, error)
    if is_transient(exc):
        step = drain.retry_later(row, str(exc))
        if step is drain.FAILED:  # the last attempt: failed for good
            failure_notes.note_failure(context.client, context.integration, row, str(exc))
        return step
    return _fail(context, row, str(exc))
