"""Typed errors of remote systems (Chatwoot, WhatsApp Cloud, gateways), built from httpx objects.

The hierarchy is flat: every error is a :class:`RemoteError`; callers branch on the class (or on
:func:`is_transient` / :func:`is_safe_to_resend`). Messages carry the remote's own text
(``detail``), truncated, and never anything we sent: no headers, no tokens, no request body.
Errors built here are raised ``from None`` by the clients, so the httpx request (and its headers)
is not reachable through ``__cause__`` either.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from app.integrations.urlguard import UrlNotAllowed

__all__ = [
    "RemoteAddressNotAllowed",
    "RemoteBadResponse",
    "RemoteError",
    "RemoteForbidden",
    "RemoteNotFound",
    "RemoteRateLimited",
    "RemoteServerError",
    "RemoteTimeout",
    "RemoteUnauthorized",
    "RemoteUnprocessable",
    "RemoteUnreachable",
    "error_from_response",
    "error_from_transport",
    "is_safe_to_resend",
    "is_transient",
    "parse_retry_after",
]

MAX_DETAIL_CHARS = 500
_REDACTED = "[redacted]"


class RemoteError(Exception):
    """Base class of every failure talking to a remote system.

    Attributes:
        status: the HTTP status the remote answered, or None when there was no answer.
        detail: the remote's own text (or the transport failure), at most ~500 characters.
        retry_after: seconds the remote asked us to wait (``Retry-After``), if it said.
        unprocessed: True when the remote surely did not act on the request (it was never
            sent, or the remote refused it up front with 429/503), so even a creating POST may
            be sent again.
    """

    description = "remote request failed"

    def __init__(
        self,
        detail: str = "",
        *,
        status: int | None = None,
        retry_after: float | None = None,
        unprocessed: bool = False,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.retry_after = retry_after
        self.unprocessed = unprocessed

    def __str__(self) -> str:
        head = self.description
        if self.status is not None:
            head = f"{head} (HTTP {self.status})"
        return f"{head}: {self.detail}" if self.detail else head

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, detail={self.detail!r})"


class RemoteUnauthorized(RemoteError):
    """401: the remote rejected our credentials (wrong, revoked or expired token)."""

    description = "remote rejected the credentials"


class RemoteForbidden(RemoteError):
    """403: the credentials are valid but may not do this (e.g. not an administrator)."""

    description = "remote denied the request"


class RemoteNotFound(RemoteError):
    """404: the resource, account or endpoint does not exist (or the URL is not that service)."""

    description = "remote resource not found"


class RemoteUnprocessable(RemoteError):
    """422 and other 4xx (400, 409...): the remote refused this request as invalid.

    Permanent for the request: sending it again gives the same answer. ``status`` keeps the code.
    """

    description = "remote rejected the request as invalid"


class RemoteRateLimited(RemoteError):
    """429: too many requests; ``retry_after`` holds the remote's hint when it gave one."""

    description = "remote rate limit hit"


class RemoteServerError(RemoteError):
    """5xx: the remote failed; transient, though a creating request may have been processed."""

    description = "remote server error"


class RemoteUnreachable(RemoteError):
    """No HTTP answer: DNS, connect or TLS failure, or the connection broke mid-request."""

    description = "remote host unreachable"


class RemoteAddressNotAllowed(RemoteUnreachable):
    """The host resolved to an address the URL rule forbids (checked at connect time).

    Not transient: the guard rejects before anything is sent, and retrying will not help until the
    URL or its DNS changes.
    """

    description = "remote address not allowed"


class RemoteTimeout(RemoteError):
    """The remote did not answer in time (connect, write, read or pool timeout)."""

    description = "remote did not answer in time"


class RemoteBadResponse(RemoteError):
    """The remote answered success (or a redirect) with a body we cannot use."""

    description = "remote sent an unusable response"


_TRANSIENT = (RemoteUnreachable, RemoteTimeout, RemoteRateLimited, RemoteServerError)


def is_transient(exc: BaseException) -> bool:
    """True for failures that may pass by themselves: unreachable, timeout, 429, 5xx."""
    return isinstance(exc, _TRANSIENT) and not isinstance(exc, RemoteAddressNotAllowed)


def is_safe_to_resend(exc: BaseException) -> bool:
    """True when a non-idempotent (creating) request may be sent again: transient and surely
    not processed (connect failure, connect/pool timeout, 429, 503)."""
    return is_transient(exc) and isinstance(exc, RemoteError) and exc.unprocessed


# --- building errors from httpx objects ---------------------------------------------------------


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    return text


def _truncate(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= MAX_DETAIL_CHARS:
        return text
    return text[: MAX_DETAIL_CHARS - 1] + "…"


def _message_of(item: Any) -> str:
    """Text of one entry of an ``errors`` list: a string or ``{"field", "message"}``."""
    if isinstance(item, dict):
        message = item.get("message") or item.get("error") or json.dumps(item)
        field = item.get("field")
        return f"{field}: {message}" if field else str(message)
    return str(item)


def _message_from_json(body: Any) -> str | None:
    """The human message in a JSON error body, in the shapes Chatwoot and Meta use."""
    if isinstance(body, str):
        return body
    if isinstance(body, list):
        return "; ".join(_message_of(item) for item in body) or None
    if not isinstance(body, dict):
        return None
    for key in ("error", "message", "description", "error_description"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict):
            nested = _message_from_json(value)
            if nested:
                return nested
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        return "; ".join(_message_of(item) for item in errors)
    if isinstance(errors, dict) and errors:
        return "; ".join(f"{key}: {value}" for key, value in errors.items())
    return None


_TAG = re.compile(r"<[^>]*>")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def _text_of(resp: httpx.Response) -> str:
    """The body as readable text: the page title (or tag-stripped text) for HTML."""
    try:
        text = resp.text
    except (UnicodeDecodeError, LookupError, httpx.HTTPError):
        return ""
    if "html" in resp.headers.get("content-type", "").lower() or text.lstrip().startswith("<"):
        title = _TITLE.search(text)
        text = title.group(1) if title else _TAG.sub(" ", text)
    return text


def response_detail(resp: httpx.Response, secrets: Iterable[str] = ()) -> str:
    """The remote's message in ``resp``: parsed from a JSON body, else the text, else the reason."""
    message: str | None = None
    try:
        message = _message_from_json(resp.json())
    except (ValueError, UnicodeDecodeError, httpx.HTTPError):
        message = None
    if not message:
        message = _text_of(resp).strip() or resp.reason_phrase
    return _truncate(_redact(message, secrets))


def error_from_response(resp: httpx.Response, secrets: Iterable[str] = ()) -> RemoteError:
    """The :class:`RemoteError` for a non-2xx response.

    ``secrets`` (e.g. our API token) are replaced by ``[redacted]`` should the remote echo them.
    """
    status = resp.status_code
    detail = response_detail(resp, secrets)
    retry_after = parse_retry_after(resp.headers.get("retry-after"))
    kinds: dict[int, type[RemoteError]] = {
        401: RemoteUnauthorized,
        403: RemoteForbidden,
        404: RemoteNotFound,
        429: RemoteRateLimited,
    }
    if status in kinds:
        cls = kinds[status]
    elif status >= 500:
        cls = RemoteServerError
    elif status >= 400:
        cls = RemoteUnprocessable
    else:
        cls = RemoteBadResponse
        location = _redact(resp.headers.get("location", ""), secrets)
        detail = _truncate(f"unexpected redirect to {location}") if location else detail
    unprocessed = status in (429, 503)
    return cls(detail, status=status, retry_after=retry_after, unprocessed=unprocessed)


def _guard_rejection(exc: BaseException) -> UrlNotAllowed | None:
    """The connect-time URL guard's rejection somewhere in ``exc``'s cause chain, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, UrlNotAllowed):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _transport_detail(exc: httpx.HTTPError) -> str:
    message = str(exc).strip()
    return _truncate(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


def error_from_transport(exc: httpx.HTTPError) -> RemoteError:
    """The :class:`RemoteError` for an httpx failure that produced no response.

    Only the exception's class and message are kept (httpx messages name the failure, never the
    request headers); the httpx exception itself is not attached.
    """
    rejection = _guard_rejection(exc)
    if rejection is not None:
        return RemoteAddressNotAllowed(str(rejection))
    if isinstance(exc, httpx.UnsupportedProtocol):
        return RemoteAddressNotAllowed("scheme must be http or https")
    detail = _transport_detail(exc)
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return RemoteTimeout(detail, unprocessed=True)
    if isinstance(exc, httpx.TimeoutException):
        return RemoteTimeout(detail)
    if isinstance(exc, httpx.ConnectError):
        return RemoteUnreachable(detail, unprocessed=True)
    if isinstance(exc, httpx.DecodingError):
        return RemoteBadResponse(detail)
    return RemoteUnreachable(detail)
