"""Fetching the bytes of an inbound WhatsApp attachment, for the relay to upload to Chatwoot.

Cloud API (:class:`CloudMediaClient`)
    ``GET {graph}/{media-id}`` (bearer) answers a URL valid for five minutes, which is then
    fetched with the same bearer. A URL the webhook already carried is tried first; when it has
    expired and the media id is known, a fresh one is asked for.

Gateway (:class:`GatewayMediaClient`)
    Inline ``base64`` is decoded; otherwise the ``url`` is fetched without any credentials (the
    host is whatever the gateway says, so nothing of ours is sent to it).

Both stream the body and stop at ``max_bytes`` (:class:`MediaTooLarge`), follow at most
:data:`MAX_REDIRECTS` redirects (httpx drops the ``Authorization`` header when a redirect leaves
the origin, bar an http -> https upgrade of the same host), and retry transient failures
(connect errors, timeouts, 429, 5xx) with the shared policy; every request is a GET, so retrying
is always safe.
Media that is gone (404, 410, or Graph's "object does not exist" 400) raises
:class:`~app.integrations.errors.RemoteNotFound`: permanent for that message.

The access token is kept out of ``repr`` and exceptions (redacted should a remote echo it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from app.integrations.download import MediaTooLarge, stream_download
from app.integrations.errors import (
    RemoteBadResponse,
    RemoteError,
    RemoteNotFound,
    error_from_response,
    error_from_transport,
)
from app.integrations.files import OCTET_STREAM, File, Media, base_type, media_extension, safe_name
from app.integrations.http import read_timeout, transient_retry

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_REDIRECTS",
    "CloudMediaClient",
    "GatewayMediaClient",
    "MediaInfo",
    "MediaTooLarge",
    "decode_base64_media",
    "media_filename",
]

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
MAX_REDIRECTS = 5
_DATA_URI = re.compile(r"^data:(?P<type>[^;,]*)(?:;[^,]*)?,", re.IGNORECASE)

T = TypeVar("T")


@dataclass(frozen=True)
class MediaInfo:
    """What ``GET /{media-id}`` says about a Cloud API media object."""

    media_id: str
    url: str
    mime_type: str | None = None
    file_size: int | None = None
    sha256: str | None = None


# --- names and types ----------------------------------------------------------------------------


def media_filename(media: Media, content_type: str, data: bytes = b"") -> str:
    """The sender's file name (documents) or ``<kind>-<media id or content hash>.<ext>``."""
    extension = media_extension(content_type)
    if media.filename:
        name = safe_name(media.filename)
        if name:
            return name if os.path.splitext(name)[1] else name + extension
    major = base_type(content_type).split("/", 1)[0]
    prefix = "voice" if media.voice else major if major in ("image", "video", "audio") else "file"
    ident = safe_name(media.media_id or "") or hashlib.sha256(data).hexdigest()[:16]
    return f"{prefix}-{ident}{extension}"


def _pick_type(*candidates: str | None) -> str:
    """The first specific MIME type among the candidates, else ``application/octet-stream``."""
    for candidate in candidates:
        if candidate and base_type(candidate) not in ("", OCTET_STREAM):
            return candidate.strip()
    return OCTET_STREAM


def decode_base64_media(text: str, max_bytes: int) -> tuple[bytes, str | None]:
    """Inline media (plain base64 or a ``data:`` URI): the bytes and the URI's MIME type.

    The size is checked before decoding, so a huge string is refused without a huge allocation.
    """
    inline_type: str | None = None
    match = _DATA_URI.match(text)
    if match:
        inline_type, text = match.group("type") or None, text[match.end() :]
    compact = "".join(text.split())
    if len(compact) // 4 * 3 > max_bytes + 2:
        raise MediaTooLarge(f"inline media exceeds {max_bytes} bytes")
    altchars = b"-_" if ("-" in compact or "_" in compact) else None
    try:
        padded = compact + "=" * (-len(compact) % 4)
        data = base64.b64decode(padded, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        raise RemoteBadResponse("inline media is not valid base64") from None
    if len(data) > max_bytes:
        raise MediaTooLarge(f"inline media exceeds {max_bytes} bytes")
    return data, inline_type


# --- errors -------------------------------------------------------------------------------------


def _graph_says_missing(resp: httpx.Response) -> bool:
    """Graph's answer for an id that does not exist (or expired): 400, code 100, subcode 33."""
    try:
        error = resp.json().get("error")
    except (ValueError, AttributeError, httpx.HTTPError):
        return False
    return isinstance(error, dict) and error.get("code") == 100 and error.get("error_subcode") == 33


def _error_for(resp: httpx.Response, secrets: Iterable[str]) -> RemoteError:
    """``error_from_response``, with "gone" answers (410, Graph's missing object) as NotFound."""
    error = error_from_response(resp, secrets)
    if resp.status_code == 410 or (resp.status_code == 400 and _graph_says_missing(resp)):
        return RemoteNotFound(error.detail, status=resp.status_code)
    return error


# --- the shared download loop -------------------------------------------------------------------


class _Downloader:
    """Bounded, streamed GETs (:func:`stream_download`) with in-call retries."""

    def __init__(
        self,
        http: httpx.Client,
        retry_attempts: int,
        retry_max_wait: float,
        timeout: float | None,
        max_bytes: int,
    ) -> None:
        self._http = http
        self._retry_attempts = retry_attempts
        self._retry_max_wait = retry_max_wait
        self._max_bytes = max_bytes
        self._timeout = read_timeout(http, timeout)

    def _retrying(self, fn: Callable[..., T], *args: Any) -> T:
        retrying = transient_retry(self._retry_attempts, self._retry_max_wait)
        return retrying(fn, *args)

    def _request_options(self) -> dict[str, Any]:
        return {} if self._timeout is None else {"timeout": self._timeout}

    def _download_once(
        self, url: str, headers: dict[str, str], secrets: Iterable[str]
    ) -> tuple[bytes, str | None]:
        """One attempt: the body and its ``Content-Type``, or a typed :class:`RemoteError`."""
        download = stream_download(
            self._http,
            url,
            max_bytes=self._max_bytes,
            max_redirects=MAX_REDIRECTS,
            timeout=self._timeout,
            headers=headers,
            secrets=secrets,
            error_for=_error_for,
        )
        return download.data, download.headers.get("content-type")


# --- Cloud API ----------------------------------------------------------------------------------


class CloudMediaClient(_Downloader):
    """Media of one Cloud API phone number, fetched with its access token."""

    def __init__(
        self,
        api_base_url: str,
        access_token: str,
        *,
        http: httpx.Client,
        retry_attempts: int = 3,
        retry_max_wait: float = 2.0,
        timeout: float | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        """``api_base_url`` is Graph with its version (``https://graph.facebook.com/v23.0``);
        ``timeout`` (seconds) bounds reading one answer, ``None`` keeps the client's own."""
        super().__init__(http, retry_attempts, retry_max_wait, timeout, max_bytes)
        self.api_base_url = api_base_url.rstrip("/")
        self.__token = access_token

    def __repr__(self) -> str:
        return f"CloudMediaClient(api_base_url={self.api_base_url!r})"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.__token}"}

    def fetch(self, media: Media) -> File:
        """The attachment's bytes (see the module docstring for the steps and the errors)."""
        info: MediaInfo | None = None
        fetched: tuple[bytes, str | None] | None = None
        if media.url:
            try:
                fetched = self.download(media.url)
            except RemoteNotFound:
                if not media.media_id:
                    raise
        if fetched is None:
            if not media.media_id:
                raise RemoteNotFound("the media has neither an id nor a URL")
            info = self.media_info(media.media_id)
            fetched = self.download(info.url)
        data, header_type = fetched
        content_type = _pick_type(media.mime_type, info.mime_type if info else None, header_type)
        return File(data, content_type, media_filename(media, content_type, data))

    def media_info(self, media_id: str) -> MediaInfo:
        """``GET /{media-id}``: the short-lived URL and what Meta knows of the file.

        Raises :class:`MediaTooLarge` at once when Meta's ``file_size`` is over the bound.
        """
        if not media_id or "/" in media_id or media_id in (".", ".."):
            raise RemoteNotFound("invalid media id")
        body = self._retrying(self._get_json_once, f"{self.api_base_url}/{media_id}")
        url = body.get("url") if isinstance(body, dict) else None
        if not isinstance(url, str) or not url:
            raise RemoteBadResponse("the media object has no url")
        size = body.get("file_size")
        file_size = int(size) if isinstance(size, int | str) and str(size).isdigit() else None
        if file_size is not None and file_size > self._max_bytes:
            raise MediaTooLarge(f"the media has {file_size} bytes, over {self._max_bytes}")
        mime_type = body.get("mime_type")
        sha256 = body.get("sha256")
        return MediaInfo(
            media_id=str(body.get("id") or media_id),
            url=url,
            mime_type=mime_type if isinstance(mime_type, str) else None,
            file_size=file_size,
            sha256=sha256 if isinstance(sha256, str) else None,
        )

    def download(self, url: str) -> tuple[bytes, str | None]:
        """GET a media URL with the bearer: the bytes and the answer's ``Content-Type``."""
        return self._retrying(self._download_once, url, self._headers(), (self.__token,))

    def _get_json_once(self, url: str) -> Any:
        failure: RemoteError | None = None
        headers = {**self._headers(), "Accept": "application/json"}
        try:
            resp = self._http.get(url, headers=headers, **self._request_options())
        except httpx.HTTPError as exc:
            failure = error_from_transport(exc)
        if failure is not None:
            raise failure
        if not resp.is_success:
            raise _error_for(resp, (self.__token,))
        try:
            return resp.json()
        except ValueError:
            raise RemoteBadResponse(f"GET media answered {resp.status_code}, not JSON") from None


# --- gateway ------------------------------------------------------------------------------------


class GatewayMediaClient(_Downloader):
    """Media a gateway hands over inline (base64) or by URL; no credentials are sent."""

    def __init__(
        self,
        *,
        http: httpx.Client,
        retry_attempts: int = 3,
        retry_max_wait: float = 2.0,
        timeout: float | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        super().__init__(http, retry_attempts, retry_max_wait, timeout, max_bytes)

    def __repr__(self) -> str:
        return f"GatewayMediaClient(max_bytes={self._max_bytes!r})"

    def fetch(self, media: Media) -> File:
        """Inline ``base64`` when present, else the ``url`` (see the module docstring)."""
        if media.base64:
            data, found_type = decode_base64_media(media.base64, self._max_bytes)
        elif media.url:
            data, found_type = self._retrying(self._download_once, media.url, {}, ())
        else:
            raise RemoteNotFound("the media has neither inline data nor a URL")
        content_type = _pick_type(media.mime_type, found_type)
        return File(data, content_type, media_filename(media, content_type, data))
