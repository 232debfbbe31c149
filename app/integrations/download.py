"""One bounded, streamed GET that follows redirects hop by hop (WhatsApp media, Chatwoot files).

Each redirect is a new request sent through the given client, so its connect-time URL guard vets
every host the chain leads to; at most ``max_redirects`` are followed. The body is streamed and
refused past ``max_bytes`` (:class:`MediaTooLarge`, also when ``Content-Length`` announces it).
An error answer is buffered (at most 64 KiB) and mapped by ``error_for`` with the ``secrets`` to
redact. Transport errors become typed :class:`~app.integrations.errors.RemoteError` raised
outside the ``except`` block, so the httpx exception (whose request holds our headers) is neither
``__cause__`` nor ``__context__`` of what the caller sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from app.integrations.errors import (
    RemoteBadResponse,
    RemoteError,
    RemoteUnprocessable,
    error_from_response,
    error_from_transport,
)

__all__ = ["Download", "MediaTooLarge", "stream_download"]

_ERROR_BODY_LIMIT = 64 * 1024

ErrorMapper = Callable[[httpx.Response, tuple[str, ...]], RemoteError]


class MediaTooLarge(RemoteUnprocessable):
    """The attachment is larger than the configured bound; permanent for the message."""

    description = "media too large"


@dataclass(frozen=True)
class Download:
    """The last hop's answer: its body, headers and URL."""

    data: bytes
    headers: httpx.Headers
    url: str

    def __repr__(self) -> str:
        return f"Download(url={self.url!r}, size={len(self.data)})"


def stream_download(
    http: httpx.Client,
    url: str,
    *,
    max_bytes: int,
    max_redirects: int,
    timeout: httpx.Timeout | None = None,
    headers: Mapping[str, str] | None = None,
    secrets: Iterable[str] = (),
    error_for: ErrorMapper = error_from_response,
    subject: str = "media",
    announced: str = "the remote announced",
) -> Download:
    """One attempt through the whole redirect chain (see the module docstring).

    ``subject`` and ``announced`` word the :class:`MediaTooLarge` messages ("the <subject>
    exceeds N bytes", "<announced> N bytes, over M").
    """
    options: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
    if headers is not None:
        options["headers"] = headers
    limits = _Limits(max_bytes, subject, announced)
    failure: RemoteError | None = None
    try:
        request = http.build_request("GET", url, **options)
        for _ in range(max_redirects + 1):
            response = http.send(request, stream=True)
            try:
                if response.next_request is None:
                    return _read(response, limits, tuple(secrets), error_for)
                request = response.next_request
            finally:
                response.close()
    except httpx.HTTPError as exc:
        failure = error_from_transport(exc)
    if failure is not None:
        raise failure
    raise RemoteBadResponse(f"more than {max_redirects} redirects")


@dataclass(frozen=True)
class _Limits:
    max_bytes: int
    subject: str
    announced: str


def _read(
    response: httpx.Response,
    limits: _Limits,
    secrets: tuple[str, ...],
    error_for: ErrorMapper,
) -> Download:
    if not response.is_success:
        raise error_for(_buffered_error(response), secrets)
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise MediaTooLarge(f"{limits.announced} {declared} bytes, over {limits.max_bytes}")
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limits.max_bytes:
            raise MediaTooLarge(f"the {limits.subject} exceeds {limits.max_bytes} bytes")
    return Download(bytes(body), response.headers, str(response.url))


def _buffered_error(response: httpx.Response) -> httpx.Response:
    """A copy of a streamed error answer holding at most 64 KiB of its (decoded) body."""
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) >= _ERROR_BODY_LIMIT:
            break
    skip = ("content-encoding", "content-length", "transfer-encoding")
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in skip]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=bytes(body[:_ERROR_BODY_LIMIT]),
        request=response.request,
    )
