"""Chatwoot's public (client) API for API-channel inboxes: what a contact does in a conversation.

Only ``POST /public/api/v1/inboxes/{inbox_identifier}/contacts/{contact_identifier}/
conversations/{conversation_id}/toggle_typing`` ``{"typing_status": "on" | "off"}`` is used:
Chatwoot's ``Public::Api::V1::Inboxes::ConversationsController#toggle_typing`` dispatches
``conversation_typing_on``/``_off`` with ``user: @conversation.contact``, so the agents see the
*customer* typing. (The application API's ``toggle_typing_status`` would run as the token's user:
the agents would see an agent typing.) ``inbox_identifier`` is the API channel's ``identifier``
(the inbox's ``inbox_identifier``), ``contact_identifier`` the contact inbox's ``source_id``,
``conversation_id`` the display id. No token: the identifiers are the credentials.

Cosmetic, like typing itself: one attempt, repeated only when it surely never left. Failures
raise :class:`~app.integrations.errors.RemoteError`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from app.integrations.errors import (
    RemoteError,
    error_from_response,
    error_from_transport,
    is_safe_to_resend,
)
from app.integrations.http import read_timeout, transient_retry

__all__ = ["ChatwootPublicClient"]


class ChatwootPublicClient:
    """Chatwoot's public API at ``base_url`` (acting as contacts of API-channel inboxes)."""

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.Client,
        retry_attempts: int = 3,
        retry_max_wait: float = 2.0,
        timeout: float | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = http
        self._retry_attempts = retry_attempts
        self._retry_max_wait = retry_max_wait
        self._timeout = read_timeout(http, timeout)

    def __repr__(self) -> str:
        return f"ChatwootPublicClient(base_url={self.base_url!r})"

    def toggle_typing(
        self, inbox_identifier: str, contact_identifier: str, conversation_id: int, on: bool
    ) -> None:
        """Show (``on``) or end the contact's "typing…" in the conversation (display id)."""
        path = (
            f"/public/api/v1/inboxes/{quote(inbox_identifier, safe='')}"
            f"/contacts/{quote(contact_identifier, safe='')}"
            f"/conversations/{int(conversation_id)}/toggle_typing"
        )
        body = {"typing_status": "on" if on else "off"}
        retrying = transient_retry(
            self._retry_attempts, self._retry_max_wait, retry_if=is_safe_to_resend
        )
        retrying(self._post_once, path, body, inbox_identifier)

    def _post_once(self, path: str, body: dict[str, Any], secret: str) -> None:
        failure: RemoteError | None = None
        options: dict[str, Any] = {"json": body, "headers": {"Accept": "application/json"}}
        if self._timeout is not None:
            options["timeout"] = self._timeout
        try:
            resp = self._http.post(self.base_url + path, **options)
        except httpx.HTTPError as exc:
            failure = error_from_transport(exc)
        if failure is not None:
            raise failure
        if not resp.is_success:
            # the inbox identifier is this API's only credential: never echo it
            raise error_from_response(resp, (secret,))
