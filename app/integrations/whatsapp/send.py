"""Sending to WhatsApp: the types both providers share and the plumbing of one send attempt.

:class:`~app.integrations.whatsapp.cloud_send.CloudSender` (Meta's Cloud API) and
:class:`~app.integrations.whatsapp.gateway_send.GatewaySender` (RyzeAPI-compatible gateways)
implement :class:`WhatsAppSender`. A send returns a :class:`SendResult` or raises exactly one of:

- :class:`SendFailure`: WhatsApp refused this message; sending it again gives the same answer.
- :class:`SendRetryLater`: surely not sent, and worth another try later (rate limits, a brief
  outage, a connection that was never made).
- :class:`SendOutcomeUnknown`: the request may have reached WhatsApp (a read timeout, a connection
  dropped mid-request, a 5xx that proves nothing): do not repeat blindly.
- :class:`SendAuthFailure`: the instance cannot be used as configured (credentials refused, the
  instance or phone number unknown to the provider, its address forbidden): every send will fail
  until someone fixes it.

Texts in these exceptions are the remote's own words, whitespace-collapsed, truncated and with our
token replaced by ``[redacted]`` should a remote echo it; the httpx exceptions (whose requests
hold our headers) are never chained.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx

from app.integrations.errors import (
    RemoteAddressNotAllowed,
    RemoteError,
    error_from_transport,
)
from app.integrations.http import read_timeout
from app.integrations.whatsapp.hints import failure_text

__all__ = [
    "MediaKind",
    "OutgoingMedia",
    "SendAuthFailure",
    "SendFailure",
    "SendOutcomeUnknown",
    "SendResult",
    "SendRetryLater",
    "WhatsAppSender",
    "base_type",
    "clean_text",
    "outcome_of_transport_error",
    "post_once",
    "read_timeout",
]

MediaKind = Literal["image", "video", "audio", "document", "sticker"]
_MAX_TEXT = 500
_REDACTED = "[redacted]"


@dataclass(frozen=True)
class OutgoingMedia:
    """An attachment to send: its bytes, MIME type and file name.

    ``link``: a URL where the same file can be fetched; a gateway may fetch it itself instead of
    receiving the bytes inline. The Cloud API always gets the bytes (uploaded first).
    """

    kind: MediaKind
    data: bytes
    content_type: str
    filename: str
    link: str | None = None

    def __repr__(self) -> str:
        return (
            f"OutgoingMedia(kind={self.kind!r}, filename={self.filename!r}, "
            f"content_type={self.content_type!r}, size={len(self.data)})"
        )


@dataclass(frozen=True)
class SendResult:
    """A message WhatsApp accepted.

    ``message_id``: the WhatsApp message id to store (status webhooks and quotes refer to it).
    ``wa_id``: the WhatsApp id the recipient resolved to, when the provider says (Cloud
    ``contacts[0].wa_id``; it can differ from ``to``, e.g. Brazilian numbers without the 9).
    """

    message_id: str
    wa_id: str | None = None


class SendFailure(Exception):
    """WhatsApp refused this message for good (outside the 24 h window, not on WhatsApp, invalid).

    ``code``: the provider's error code (Meta's numeric code; the HTTP status for a gateway, which
    has no codes). ``title``: its short title. ``details``: the longer explanation, if any.
    ``account_level``: the cause is the business account, not this message (policy block,
    payment, phone number not registered): the next messages will most likely fail alike.
    """

    def __init__(
        self,
        title: str,
        *,
        code: int | str | None = None,
        details: str | None = None,
        account_level: bool = False,
    ) -> None:
        super().__init__(title)
        self.code = code
        self.title = title
        self.details = details
        self.account_level = account_level

    @property
    def external_error(self) -> str:
        """What to show in Chatwoot: ``"<code>: <title>"`` (just the title without a code), or
        what to do instead where there is something (:func:`hints.failure_text`)."""
        return failure_text(self.code, self.title)

    def __str__(self) -> str:
        if self.details and self.details != self.title:
            return f"{self.external_error} ({self.details})"
        return self.external_error

    def __repr__(self) -> str:
        return f"SendFailure(code={self.code!r}, title={self.title!r})"


class SendRetryLater(Exception):
    """Surely not sent, and transient: try again later (after ``retry_after`` seconds if given).

    ``per_recipient``: the limit is on this one recipient (Meta's pair rate limit, 131056):
    other chats may go on, but do not hammer this customer.
    """

    def __init__(
        self,
        reason: str,
        *,
        retry_after: float | None = None,
        per_recipient: bool = False,
        code: int | str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.per_recipient = per_recipient
        self.code = code

    def __repr__(self) -> str:
        return (
            f"SendRetryLater(reason={self.reason!r}, retry_after={self.retry_after!r}, "
            f"per_recipient={self.per_recipient!r})"
        )


class SendOutcomeUnknown(Exception):
    """The request may have reached WhatsApp (timeout after sending, connection dropped
    mid-request, a 5xx without a verdict): do not blindly repeat it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __repr__(self) -> str:
        return f"SendOutcomeUnknown(reason={self.reason!r})"


class SendAuthFailure(Exception):
    """The instance cannot send as configured: credentials refused (Cloud 401 / code 190,
    gateway 401 ``Invalid token``), the phone number or instance unknown to that token, or the
    provider's address forbidden. Permanent for the instance until its configuration changes."""

    def __init__(self, reason: str, *, code: int | str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code

    def __repr__(self) -> str:
        return f"SendAuthFailure(code={self.code!r}, reason={self.reason!r})"


class WhatsAppSender(Protocol):
    """What the outbound relay needs from a WhatsApp provider."""

    def send_text(self, to: str, text: str, reply_to: str | None = None) -> SendResult:
        """Send ``text`` to ``to``, quoting the WhatsApp message ``reply_to`` if given."""
        ...

    def send_media(
        self,
        to: str,
        media: OutgoingMedia,
        caption: str | None = None,
        reply_to: str | None = None,
    ) -> SendResult:
        """Send an attachment. The caption is dropped where WhatsApp has none (audio,
        sticker): the caller sends such text separately."""
        ...


# --- plumbing shared by the senders --------------------------------------------------------------


def clean_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` on one line, at most ~500 characters, with ``secrets`` redacted."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def base_type(content_type: str) -> str:
    """The MIME type without parameters, lower case (``audio/ogg; codecs=opus`` -> ``audio/ogg``).

    An empty type becomes ``application/octet-stream``.
    """
    return content_type.split(";", 1)[0].strip().lower() or "application/octet-stream"


def post_once(
    http: httpx.Client,
    url: str,
    headers: Mapping[str, str],
    timeout: httpx.Timeout | None,
    **options: Any,
) -> httpx.Response:
    """One POST: the response (any status), or a :class:`RemoteError` when there was none.

    The transport error is raised outside the ``except`` block, so the httpx exception (whose
    request holds our headers) is neither ``__cause__`` nor ``__context__``.
    """
    if timeout is not None:
        options["timeout"] = timeout
    failure: RemoteError | None = None
    try:
        return http.post(url, headers=dict(headers), **options)
    except httpx.HTTPError as exc:
        failure = error_from_transport(exc)
    raise failure


def outcome_of_transport_error(exc: RemoteError, *, sent_nothing: bool = False) -> Exception:
    """The send outcome of a request that got no answer (after the in-call retries).

    A forbidden address is the instance's configuration; a request that surely never left
    (connect failure or timeout, or ``sent_nothing`` as for an upload) can be tried later; any
    other failure may have happened after WhatsApp got the request.
    """
    if isinstance(exc, RemoteAddressNotAllowed):
        return SendAuthFailure(f"the provider's address is not allowed: {exc.detail}")
    if exc.unprocessed or sent_nothing:
        return SendRetryLater(str(exc), retry_after=exc.retry_after)
    return SendOutcomeUnknown(str(exc))
