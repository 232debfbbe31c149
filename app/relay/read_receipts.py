"""Blue ticks and "typing…" for the customer: what an agent's activity shows on WhatsApp.

With the integration's ``mark_read`` on (the default):

- every customer message delivered into Chatwoot is remembered as the chat's last inbound
  message (:func:`remember_inbound`, from the inbound lane);
- before an agent's reply is sent, that message is marked read if it is not yet
  (:func:`mark_read_before_reply`, from the outbound lane): once per message, never again;
- when an agent starts typing (Chatwoot's ``conversation_typing_on``, handed to a typing job,
  :func:`agent_typing`), the customer sees "typing…": on the Cloud API one read+typing call on
  the last inbound message (which also marks it read), on a gateway its presence call (plus
  the read receipt, so both providers show the same). At most once per
  :data:`TYPING_WINDOW_SECONDS` per chat, over every worker (a Redis ``SET NX EX``); on a
  gateway the typing-off that follows ends the indicator (one more call at most per window).

Receipts are cosmetic: a failure is logged and never blocks or fails a reply. Marking read is
claimed in the database before the call (``read_id`` moves to the message with a conditional
update), so two workers never both mark one message; a transient failure hands the claim back
so the next reply or typing tries again, a refusal keeps it (the same call would be refused).
"""

from __future__ import annotations

import logging

import peewee

from app.config import get_settings
from app.integrations.errors import RemoteError, is_transient
from app.integrations.http import shared_client
from app.integrations.whatsapp.receipts import CloudReceipts, GatewayReceipts, ReadReceipts
from app.relay.clients import provider_client
from app.relay.messages import InboundMessage
from app.relay.reply_address import reply_address
from app.store.models import (
    STATE_ACTIVE,
    ChatReadState,
    ChatwootIntegration,
    Instance,
    utcnow,
)
from app.store.prepared import get_where, insert_ignore, update_where
from app.store.redis_client import get_redis, redis_key

__all__ = [
    "TYPING_WINDOW_SECONDS",
    "agent_typing",
    "mark_read_before_reply",
    "receipts_for",
    "remember_inbound",
]

logger = logging.getLogger(__name__)

TYPING_WINDOW_SECONDS = 20
"""At most one typing call per chat in this many seconds (Meta shows the indicator for up to
25 s; the gateway is asked to keep it as long)."""
RECEIPT_TIMEOUT_SECONDS = 5.0  # per call to WhatsApp (the relay's own timeout when shorter)
RECEIPT_ATTEMPTS = 2  # and only when the first surely never left (connect failure, 429, 503)
# kinds whose WhatsApp id is no message the customer sees as theirs to be read
_NOT_READABLE = frozenset({"reaction", "system", "edit", "revoke"})
_TYPING_ON = "on"
# a typing-off ends the indicator once: only when typing was shown in this window ("on"),
# which then becomes "off" for the rest of the window (a new typing-on waits for its end)
_END_TYPING = """
if redis.call('GET', KEYS[1]) ~= 'on' then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then redis.call('SET', KEYS[1], 'off', 'PX', ttl) end
return 1
"""


def remember_inbound(
    integration: ChatwootIntegration, chat_key: str, message: InboundMessage
) -> None:
    """After a customer message was delivered into Chatwoot: it is now the chat's last
    inbound message (unless an older one arrived late: WhatsApp timestamps decide)."""
    if not integration.mark_read or not _readable(message):
        return
    sender = message.sender_id if message.is_group else None
    newest = {
        "last_inbound_id": message.message_id,
        "last_inbound_at": message.timestamp,
        "last_inbound_sender": sender,
        "updated_at": utcnow(),
    }
    # without a timestamp it is taken as the newest; with one, never over a newer message
    older = None if message.timestamp is None else ("last_inbound_at", message.timestamp)
    if not update_where(
        ChatReadState, newest, not_above=older, integration=integration, chat_key=chat_key
    ):
        insert_ignore(
            ChatReadState,
            integration=integration,
            chat_key=chat_key,
            last_inbound_id=message.message_id,
            last_inbound_at=message.timestamp,
            last_inbound_sender=sender,
        )


def mark_read_before_reply(integration: ChatwootIntegration, chat_key: str) -> None:
    """Mark the chat's last inbound message read if it is not yet. Never raises: a failure
    is logged and the reply goes on."""
    try:
        if integration.mark_read:
            _mark_unread(integration, chat_key, None)
    except Exception as exc:  # cosmetic: nothing here may cost the reply
        logger.warning("read receipt before a reply in %s failed: %s", chat_key, _name(exc))


def agent_typing(integration_id: str, chat_key: str, on: bool) -> str:
    """An agent started (``on``) or stopped typing in the chat: show it to the customer.
    Returns what was done, for the log (the typing job's only outcome)."""
    integration: ChatwootIntegration | None = ChatwootIntegration.get_or_none(
        ChatwootIntegration.id == integration_id
    )
    if integration is None or not integration.mark_read:
        return "skipped: no integration, or markRead is off"
    if integration.status != STATE_ACTIVE:
        return f"skipped: integration {integration.status}"
    receipts = receipts_for(integration.instance)
    if receipts.typing_needs_message:
        return _cloud_typing(integration, chat_key, on, receipts)
    return _gateway_typing(integration, chat_key, on, receipts)


def receipts_for(instance: Instance) -> ReadReceipts:
    """The instance's provider, for read receipts and typing."""
    settings = get_settings()
    # cosmetic calls, some right before a reply: they may cost it little time, never much
    receipts: ReadReceipts = provider_client(
        instance,
        CloudReceipts,
        GatewayReceipts,
        http=shared_client(allow_private=settings.allow_private_urls),
        retry_attempts=min(settings.remote_retry_attempts, RECEIPT_ATTEMPTS),
        retry_max_wait=settings.remote_retry_max_wait,
        timeout=min(settings.remote_timeout_seconds, RECEIPT_TIMEOUT_SECONDS),
    )
    return receipts


# ---- typing ----


def _cloud_typing(
    integration: ChatwootIntegration, chat_key: str, on: bool, receipts: ReadReceipts
) -> str:
    """Meta's indicator rides on marking the last inbound message read; it cannot be ended."""
    if not on:
        return "typing off: nothing to send (Meta ends the indicator itself)"
    state = _state(integration, chat_key)
    if state is None or not state.last_inbound_id:
        return "skipped: no customer message in this chat to show typing on"
    if not _open_window(integration, chat_key):
        return "skipped: typing shown less than 20 s ago"
    message_id = str(state.last_inbound_id)
    where = _of(integration, chat_key)
    claimed = _claim(where, state.read_id, message_id)
    try:
        receipts.typing(reply_address(integration, chat_key), True, message_id)
    except RemoteError as exc:
        if claimed:
            _settle_failed(where, state.read_id, message_id, exc)
        logger.warning("typing indicator in %s failed: %s", chat_key, exc)
        return "failed"
    return "typing shown (and read)"


def _gateway_typing(
    integration: ChatwootIntegration, chat_key: str, on: bool, receipts: ReadReceipts
) -> str:
    """Presence ``typing`` once per window (the unread message marked read first), and
    ``pause`` when the agent stops, once."""
    to = reply_address(integration, chat_key)
    if not on:
        if not get_redis().eval(_END_TYPING, 1, _window_key(integration, chat_key)):
            return "typing off: no indicator shown"
    elif not _open_window(integration, chat_key):
        return "skipped: typing shown less than 20 s ago"
    else:
        _mark_unread(integration, chat_key, receipts)
    try:
        receipts.typing(to, on)
    except RemoteError as exc:
        logger.warning("presence in %s failed: %s", chat_key, exc)
        return "failed"
    return "typing shown" if on else "typing ended"


def _open_window(integration: ChatwootIntegration, chat_key: str) -> bool:
    """Whether no typing was shown in this chat in the last window (and now one is)."""
    key = _window_key(integration, chat_key)
    return bool(get_redis().set(key, _TYPING_ON, nx=True, ex=TYPING_WINDOW_SECONDS))


def _window_key(integration: ChatwootIntegration, chat_key: str) -> str:
    return redis_key("typing", str(integration.id), chat_key)


# ---- marking read ----


def _mark_unread(
    integration: ChatwootIntegration, chat_key: str, receipts: ReadReceipts | None
) -> None:
    """Mark the last inbound message read unless it is (or is being) already."""
    state = _state(integration, chat_key)
    if state is None or not state.last_inbound_id or state.read_id == state.last_inbound_id:
        return
    message_id = str(state.last_inbound_id)
    where = _of(integration, chat_key)
    if not _claim(where, state.read_id, message_id):
        return  # another worker marks it right now
    receipts = receipts or receipts_for(integration.instance)
    to = reply_address(integration, chat_key)
    try:
        receipts.mark_read(to, message_id, state.last_inbound_sender)
    except RemoteError as exc:
        _settle_failed(where, state.read_id, message_id, exc)
        logger.warning("marking %s read failed: %s", chat_key, exc)
        return
    logger.info("marked the last customer message of %s read", chat_key)


def _claim(where: peewee.Expression, previous: str | None, message_id: str) -> bool:
    """Move the chat's ``read_id`` to ``message_id`` if it still is ``previous``."""
    unchanged = (
        ChatReadState.read_id.is_null() if previous is None else ChatReadState.read_id == previous
    )
    claimed = (
        ChatReadState.update(read_id=message_id, updated_at=utcnow())
        .where(where & unchanged)
        .execute()
    )
    return bool(claimed)


def _settle_failed(
    where: peewee.Expression, previous: str | None, message_id: str, exc: RemoteError
) -> None:
    """A transient failure hands the claim back (the next reply or typing tries again); a
    refusal keeps it: the same call would be refused again."""
    if not is_transient(exc):
        return
    ChatReadState.update(read_id=previous, updated_at=utcnow()).where(
        where & (ChatReadState.read_id == message_id)
    ).execute()


# ---- lookups ----


def _readable(message: InboundMessage) -> bool:
    return (
        message.direction == "incoming"
        and message.kind not in _NOT_READABLE
        and not message.message_id.startswith("noid-")
    )


def _of(integration: ChatwootIntegration, chat_key: str) -> peewee.Expression:
    return (ChatReadState.integration == integration) & (ChatReadState.chat_key == chat_key)


def _state(integration: ChatwootIntegration, chat_key: str) -> ChatReadState | None:
    return get_where(ChatReadState, integration=integration, chat_key=chat_key)


def _name(exc: BaseException) -> str:
    return type(exc).__name__
