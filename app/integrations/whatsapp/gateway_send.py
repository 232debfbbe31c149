"""Sending through a RyzeAPI-compatible gateway (``tests/fakes/RYZEAPI_NOTES.md``, "Sending").

- Text: ``POST {base}/api/message/text/{instance}`` ``{"number", "message", "replyTo"?}``.
- Media: ``POST {base}/api/message/media/{instance}`` ``{"number", "mediaType", "mediaUrl" |
  "mediaBase64", "mimeType", "fileName", "message"? (caption), "isVoice": false (audio),
  "replyTo"?}``. The gateway fetches ``mediaUrl`` itself; when a link is given but the gateway
  refuses the request (400, e.g. "Failed to download media from URL"), the bytes are sent inline
  once instead. The gateway has no sticker type: a sticker goes as an image (its WebP shows as
  a picture). Audio goes as a plain audio file (``isVoice: false``): the gateway defaults to a
  voice note, which needs OGG/Opus.
- Revoke (delete for everyone): ``DELETE {base}/api/chat/delete/{instance}`` ``{"messageId",
  "deleteForEveryone": true}`` (docs.ryzeapi.cloud/en/api/chat/delete-message; 404 ``message
  not found`` when the gateway does not know the id).
- Header ``token: <instance token>``; the new message id is ``data.messageId`` (fallbacks:
  top-level ``messageId`` / ``id``, ``data.id``).

RyzeAPI answers ``{"success": false, "error": {"message"}}`` without numeric codes, so errors are
classified by HTTP status (the notes' list) plus the text where the status is ambiguous:

======================================  ==============================================
answer                                  outcome
======================================  ==============================================
401 (missing/invalid token), 403 (token  :class:`SendAuthFailure`
of another instance), 404 (instance not
found); the base URL's address forbidden
429 (rate limit), 503 (instance not      :class:`SendRetryLater` (retried briefly first)
connected), 400 saying "not connected"
or "disconnected"; connect failures
other 4xx (400 invalid number/body...)   :class:`SendFailure`, code = HTTP status
500 and other 5xx, read timeouts, a      :class:`SendOutcomeUnknown`
connection lost after sending, success
without a message id
======================================  ==============================================
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import httpx

from app.integrations.errors import (
    RemoteError,
    error_from_transport,
    is_safe_to_resend,
    parse_retry_after,
    response_detail,
)
from app.integrations.http import transient_retry
from app.integrations.whatsapp.send import (
    OutgoingMedia,
    SendAuthFailure,
    SendFailure,
    SendOutcomeUnknown,
    SendResult,
    SendRetryLater,
    base_type,
    outcome_of_transport_error,
    post_once,
    read_timeout,
)

__all__ = ["GatewaySender", "classify_gateway_error"]

_MEDIA_TYPES = {
    "image": "image",
    "video": "video",
    "audio": "audio",
    "document": "document",
    "sticker": "image",
}
_DISCONNECTED = ("not connected", "disconnected")


def classify_gateway_error(resp: httpx.Response, secrets: tuple[str, ...] = ()) -> Exception:
    """The send outcome of a gateway's non-2xx answer (see the module docstring)."""
    status = resp.status_code
    detail = response_detail(resp, secrets)
    if status in (401, 403, 404):
        return SendAuthFailure(f"HTTP {status}: {detail}", code=status)
    disconnected = status == 400 and any(word in detail.lower() for word in _DISCONNECTED)
    if status in (429, 503) or disconnected:
        retry_after = parse_retry_after(resp.headers.get("retry-after"))
        return SendRetryLater(f"HTTP {status}: {detail}", retry_after=retry_after, code=status)
    if status >= 500:
        return SendOutcomeUnknown(f"HTTP {status}: {detail}")
    return SendFailure(detail or f"HTTP {status}", code=status)


def _message_id(body: Any) -> str | None:
    """``data.messageId``, else a top-level ``messageId``/``id``, else ``data.id``."""
    if not isinstance(body, dict):
        return None
    data = body.get("data")
    data = data if isinstance(data, dict) else {}
    for value in (data.get("messageId"), body.get("messageId"), body.get("id"), data.get("id")):
        if isinstance(value, str) and value:
            return value
    return None


def _retry_send(exc: BaseException) -> bool:
    """In-call retry: connect failures, 429 and 503 (the gateway surely did not send)."""
    return isinstance(exc, SendRetryLater) or is_safe_to_resend(exc)


class GatewaySender:
    """Sends as one gateway instance, with the instance's token."""

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
        """``timeout`` (seconds) bounds reading one answer; ``None`` keeps the client's own."""
        self.base_url = base_url.rstrip("/")
        self.instance = instance
        self.__token = token
        self._http = http
        self._retry_attempts = retry_attempts
        self._retry_max_wait = retry_max_wait
        self._timeout = read_timeout(http, timeout)

    def __repr__(self) -> str:
        return f"GatewaySender(base_url={self.base_url!r}, instance={self.instance!r})"

    def send_text(self, to: str, text: str, reply_to: str | None = None) -> SendResult:
        body: dict[str, Any] = {"number": to, "message": text}
        if reply_to:
            body["replyTo"] = reply_to
        return self._send("text", body)

    def send_media(
        self,
        to: str,
        media: OutgoingMedia,
        caption: str | None = None,
        reply_to: str | None = None,
    ) -> SendResult:
        """Send by ``media.link`` when there is one (inline bytes if the gateway refuses it),
        else inline (see the module docstring)."""
        body: dict[str, Any] = {
            "number": to,
            "mediaType": _MEDIA_TYPES[media.kind],
            "mimeType": base_type(media.content_type),
            "fileName": media.filename,
        }
        if caption and media.kind not in ("audio", "sticker"):
            body["message"] = caption
        if media.kind == "audio":
            body["isVoice"] = False
        if reply_to:
            body["replyTo"] = reply_to
        inline = {"mediaBase64": base64.b64encode(media.data).decode("ascii")}
        if not media.link:
            return self._send("media", {**body, **inline})
        try:
            return self._send("media", {**body, "mediaUrl": media.link})
        except SendFailure as exc:
            if exc.code != 400 or not media.data:
                raise
        return self._send("media", {**body, **inline})

    def revoke_message(self, message_id: str) -> None:
        """Delete a message the instance sent for everyone (``DELETE {base}/api/chat/delete/
        {instance}`` ``{"messageId", "deleteForEveryone": true}``; WhatsApp replaces it with
        "This message was deleted"). Raises like a send; a 404 naming the message (the gateway
        does not know it) is a :class:`SendFailure`. Repeating a revoke is harmless."""
        retrying = transient_retry(self._retry_attempts, self._retry_max_wait, retry_if=_retry_send)
        outcome: Exception | None = None
        try:
            retrying(self._revoke_once, message_id)
            return
        except RemoteError as exc:
            outcome = outcome_of_transport_error(exc)
        raise outcome

    def _revoke_once(self, message_id: str) -> None:
        url = f"{self.base_url}/api/chat/delete/{quote(self.instance, safe='')}"
        headers = {"token": self.__token, "Accept": "application/json"}
        body = {"messageId": message_id, "deleteForEveryone": True}
        options: dict[str, Any] = {"json": body}
        if self._timeout is not None:
            options["timeout"] = self._timeout
        failure: RemoteError | None = None
        try:
            resp = self._http.request("DELETE", url, headers=headers, **options)
        except httpx.HTTPError as exc:
            failure = error_from_transport(exc)
        if failure is not None:
            raise failure
        detail = response_detail(resp, (self.__token,))
        if resp.status_code == 404 and "message" in detail.lower():
            raise SendFailure(detail, code=404)
        if not resp.is_success:
            raise classify_gateway_error(resp, (self.__token,))
        try:
            answer = resp.json()
        except (ValueError, UnicodeDecodeError):
            answer = None
        if isinstance(answer, dict) and answer.get("success") is False:
            raise SendFailure(detail, code=resp.status_code)

    # --- plumbing -------------------------------------------------------------------------------

    def _send(self, kind: str, body: dict[str, Any]) -> SendResult:
        retrying = transient_retry(self._retry_attempts, self._retry_max_wait, retry_if=_retry_send)
        outcome: Exception | None = None
        try:
            return retrying(self._send_once, kind, body)
        except RemoteError as exc:
            outcome = outcome_of_transport_error(exc)
        raise outcome

    def _send_once(self, kind: str, body: dict[str, Any]) -> SendResult:
        url = f"{self.base_url}/api/message/{kind}/{quote(self.instance, safe='')}"
        headers = {"token": self.__token, "Accept": "application/json"}
        resp = post_once(self._http, url, headers, self._timeout, json=body)
        if not resp.is_success:
            raise classify_gateway_error(resp, (self.__token,))
        try:
            answer = resp.json()
        except (ValueError, UnicodeDecodeError):
            answer = None
        if isinstance(answer, dict) and answer.get("success") is False:
            raise SendFailure(response_detail(resp, (self.__token,)), code=resp.status_code)
        message_id = _message_id(answer)
        if message_id is None:
            raise SendOutcomeUnknown(f"the gateway answered {resp.status_code} without an id")
        return SendResult(message_id)
