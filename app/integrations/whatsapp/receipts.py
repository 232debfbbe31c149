"""Read receipts and typing indicators to WhatsApp: what the customer sees of an agent.

Cloud API (Meta's "Mark messages as read" and "Typing indicators" references; the body of
``tests/data/whatsapp_cloud/2026/requests/mark_read_with_typing.json``): one
``POST /{phone-number-id}/messages`` with ``{"messaging_product": "whatsapp", "status": "read",
"message_id": <an inbound wamid>}`` marks that message and every earlier one read (blue ticks);
adding ``"typing_indicator": {"type": "text"}`` also shows "typing…" for up to 25 s or until the
next message. There is no way to show typing without naming a message (and so marking it read),
nor to stop the indicator.

RyzeAPI-compatible gateway (docs.ryzeapi.cloud, ``chat/mark-read`` and ``chat/presence``; see
``tests/fakes/RYZEAPI_NOTES.md``): ``POST /api/chat/markRead/{instance}`` ``{"messageId",
"number", "sender"?}`` (``sender``, the author's JID, only in groups), and ``POST
/api/chat/presence/{instance}`` ``{"number", "state": "typing" | "pause"}``.

These calls are cosmetic: one attempt, repeated only when it surely never left (a connect
failure, 429/503). Failures raise :class:`~app.integrations.errors.RemoteError` (tokens
redacted, httpx exceptions never chained); the caller logs them and goes on.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import quote

import httpx

from app.integrations.errors import (
    RemoteError,
    RemoteRateLimited,
    RemoteUnprocessable,
    error_from_response,
    error_from_transport,
    is_safe_to_resend,
    response_detail,
)
from app.integrations.http import read_timeout, transient_retry
from app.integrations.whatsapp.pacing import Pacer, PacingBusy

__all__ = ["CloudReceipts", "GatewayReceipts", "ReadReceipts"]


class ReadReceipts(Protocol):
    """What the relay asks of a provider for read receipts and typing."""

    typing_needs_message: bool
    """True when showing typing needs (and marks read) a customer message (Cloud)."""

    def mark_read(self, to: str, message_id: str, sender: str | None = None) -> None:
        """Blue ticks on ``message_id`` (and, on WhatsApp, everything before it) in chat
        ``to``; ``sender`` is the author of a group message."""
        ...

    def typing(self, to: str, on: bool, message_id: str | None = None) -> None:
        """Show (``on``) or stop "typing…" in chat ``to``; with ``typing_needs_message`` the
        indicator rides on marking ``message_id`` read and cannot be stopped."""
        ...


class _Poster:
    """One JSON POST with the short retry rule of the module docstring."""

    def __init__(
        self,
        http: httpx.Client,
        headers: dict[str, str],
        secret: str,
        retry_attempts: int,
        retry_max_wait: float,
        timeout: float | None,
    ) -> None:
        self._http = http
        self.__headers = headers
        self.__secret = secret
        self._retry_attempts = retry_attempts
        self._retry_max_wait = retry_max_wait
        self._timeout = read_timeout(http, timeout)

    def __repr__(self) -> str:
        return "_Poster()"

    def post(self, url: str, body: dict[str, Any]) -> None:
        retrying = transient_retry(
            self._retry_attempts, self._retry_max_wait, retry_if=is_safe_to_resend
        )
        retrying(self._once, url, body)

    def _once(self, url: str, body: dict[str, Any]) -> None:
        failure: RemoteError | None = None
        options: dict[str, Any] = {"json": body, "headers": dict(self.__headers)}
        if self._timeout is not None:
            options["timeout"] = self._timeout
        try:
            resp = self._http.post(url, **options)
        except httpx.HTTPError as exc:
            failure = error_from_transport(exc)
        if failure is not None:
            raise failure
        if not resp.is_success:
            raise error_from_response(resp, (self.__secret,))
        answer = _json_or_none(resp)
        if isinstance(answer, dict) and answer.get("success") is False:  # a gateway's refusal
            detail = response_detail(resp, (self.__secret,))
            raise RemoteUnprocessable(detail, status=resp.status_code)


class CloudReceipts:
    """Read receipts and typing for one Cloud API phone number."""

    typing_needs_message = True

    def __init__(
        self,
        api_base_url: str,
        phone_number_id: str,
        access_token: str,
        *,
        http: httpx.Client,
        retry_attempts: int = 3,
        retry_max_wait: float = 2.0,
        timeout: float | None = None,
        pacer: Pacer | None = None,
    ) -> None:
        """``pacer``: the number's send pacer (:mod:`~app.integrations.whatsapp.pacing`);
        Meta counts these calls against the number's throughput like messages."""
        self._pacer = pacer
        self._url = f"{api_base_url.rstrip('/')}/{quote(phone_number_id, safe='')}/messages"
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        self._poster = _Poster(http, headers, access_token, retry_attempts, retry_max_wait, timeout)

    def __repr__(self) -> str:
        return f"CloudReceipts(url={self._url!r})"

    def mark_read(self, to: str, message_id: str, sender: str | None = None) -> None:
        self._post(_read_body(message_id))

    def typing(self, to: str, on: bool, message_id: str | None = None) -> None:
        """Typing on: read + ``typing_indicator`` on ``message_id``; off: nothing to send
        (Meta's indicator ends by itself after 25 s or with the next message)."""
        if not on or not message_id:
            return
        self._post({**_read_body(message_id), "typing_indicator": {"type": "text"}})

    def _post(self, body: dict[str, Any]) -> None:
        """Post after taking a pacing slot; no slot soon is a 429 that never left."""
        if self._pacer is not None:
            try:
                self._pacer.acquire()
            except PacingBusy as exc:
                raise RemoteRateLimited(
                    exc.reason, retry_after=exc.retry_after, unprocessed=True
                ) from None
        self._poster.post(self._url, body)


class GatewayReceipts:
    """Read receipts and presence for one RyzeAPI-compatible gateway instance."""

    typing_needs_message = False

    def __init__(
        self,
        base_url: str,
        instance: str,
        token: str,
        *,
        http: httpx.Client,
        retry_attempts: int = 3,
        retry_max_wait: float = 2.0,
        timeout: float | None = None,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._instance = quote(instance, safe="")
        headers = {"token": token, "Accept": "application/json"}
        self._poster = _Poster(http, headers, token, retry_attempts, retry_max_wait, timeout)

    def __repr__(self) -> str:
        return f"GatewayReceipts(base_url={self._base!r}, instance={self._instance!r})"

    def mark_read(self, to: str, message_id: str, sender: str | None = None) -> None:
        body: dict[str, Any] = {"messageId": message_id, "number": to}
        if sender and to.endswith("@g.us"):
            body["sender"] = sender if "@" in sender else f"{sender}@s.whatsapp.net"
        self._poster.post(f"{self._base}/api/chat/markRead/{self._instance}", body)

    def typing(self, to: str, on: bool, message_id: str | None = None) -> None:
        body = {"number": to, "state": "typing" if on else "pause"}
        self._poster.post(f"{self._base}/api/chat/presence/{self._instance}", body)


def _read_body(message_id: str) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}


def _json_or_none(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except (ValueError, UnicodeDecodeError):
        return None
