"""A customer typing on WhatsApp (a gateway's presence webhook) ▸ "typing…" in Chatwoot.

Chatwoot shows a contact typing when its public API's ``toggle_typing`` is called for the
conversation (:mod:`app.integrations.chatwoot_public`). Chatwoot then sends our inbox webhook a
``conversation_typing_on`` whose ``user`` is that contact; the webhook parser ignores a contact's
typing, so our own toggle never comes back to the customer as an agent's typing.

Ephemeral: a typing job, never a stored event. A chat without a conversation yet (the customer's
first message is still on its way), a paused or broken integration, or a Chatwoot that fails
are all skipped with a log line. The inbox's public identifier is read once from Chatwoot
(``GET .../inboxes/{id}``, ``inbox_identifier``) and kept in the worker's memory for an hour:
it is that API's only credential, so it is stored nowhere else and never logged.
"""

from __future__ import annotations

import logging
import threading
import time

from app.config import get_settings
from app.integrations.chatwoot_public import ChatwootPublicClient
from app.integrations.errors import RemoteError, RemoteNotFound
from app.integrations.http import shared_client
from app.relay.clients import client_for
from app.store.models import STATE_ACTIVE, ChatAlias, ChatLink, ChatwootIntegration

__all__ = ["customer_typing"]

logger = logging.getLogger(__name__)

IDENTIFIER_TTL_SECONDS = 3600.0
MAX_IDENTIFIERS = 10_000
_identifiers: dict[tuple[str, int | None], tuple[str, float]] = {}  # -> (identifier, when)
_identifiers_lock = threading.Lock()
_SHOWN_STATUSES = ("open", "pending", "snoozed")


def customer_typing(integration_id: str, identifiers: list[str], on: bool) -> str:
    """The customer of the chat named by ``identifiers`` (chat id first, then its aliases)
    started (``on``) or stopped typing. Returns what was done, for the log."""
    integration: ChatwootIntegration | None = ChatwootIntegration.get_or_none(
        ChatwootIntegration.id == integration_id
    )
    if integration is None or integration.status != STATE_ACTIVE:
        return "skipped: no active integration"
    link = _link(integration, identifiers)
    if link is None or link.conversation_id is None or link.source_id is None:
        return "skipped: no conversation for this chat yet"
    if link.conversation_status not in _SHOWN_STATUSES:
        return f"skipped: conversation {link.conversation_status}"
    settings = get_settings()
    public = ChatwootPublicClient(
        integration.chatwoot_base_url,
        http=shared_client(allow_private=settings.allow_private_urls),
        retry_attempts=settings.remote_retry_attempts,
        retry_max_wait=settings.remote_retry_max_wait,
        timeout=settings.remote_timeout_seconds,
    )
    try:
        identifier = _inbox_identifier(integration)
        public.toggle_typing(identifier, str(link.source_id), int(link.conversation_id), on)
    except RemoteNotFound as exc:
        _forget_identifier(integration)  # the inbox may have been made anew by a set
        logger.warning("customer typing not shown: %s", exc)
        return "failed"
    except RemoteError as exc:
        logger.warning("customer typing not shown: %s", exc)
        return "failed"
    return "typing shown" if on else "typing ended"


def _link(integration: ChatwootIntegration, identifiers: list[str]) -> ChatLink | None:
    """The chat's link: its lane is the one any of its identifiers is recorded under, as the
    intake resolves it (:mod:`app.relay.inbound.intake`), else the chat id itself."""
    wanted = [i for i in identifiers if i]
    if not wanted:
        return None
    lane = (
        ChatAlias.select(ChatAlias.chat_key)
        .where((ChatAlias.integration == integration) & (ChatAlias.identifier.in_(wanted)))
        .order_by(ChatAlias._meta.primary_key)  # the oldest lane wins, as in the intake
        .limit(1)
        .scalar()
    )
    chat_key = str(lane) if lane else wanted[0]
    found: ChatLink | None = ChatLink.get_or_none(
        (ChatLink.integration == integration) & (ChatLink.chat_key == chat_key)
    )
    return found


def _identifier_key(integration: ChatwootIntegration) -> tuple[str, int | None]:
    inbox_id = integration.chatwoot_inbox_id
    return str(integration.id), None if inbox_id is None else int(inbox_id)


def _inbox_identifier(integration: ChatwootIntegration) -> str:
    """The API channel's public identifier (remembered, else from Chatwoot's inbox)."""
    key = _identifier_key(integration)
    with _identifiers_lock:
        cached = _identifiers.get(key)
    if cached is not None and time.monotonic() - cached[1] < IDENTIFIER_TTL_SECONDS:
        return cached[0]
    if integration.chatwoot_inbox_id is None:
        raise RemoteNotFound("the integration has no inbox")
    inbox = client_for(integration, get_settings()).get_inbox(int(integration.chatwoot_inbox_id))
    identifier = inbox.get("inbox_identifier")
    if not isinstance(identifier, str) or not identifier:
        raise RemoteNotFound("the inbox has no public identifier (not an API channel?)")
    with _identifiers_lock:
        if len(_identifiers) >= MAX_IDENTIFIERS:
            _identifiers.clear()
        _identifiers[key] = (identifier, time.monotonic())
    return identifier


def _forget_identifier(integration: ChatwootIntegration) -> None:
    with _identifiers_lock:
        _identifiers.pop(_identifier_key(integration), None)
