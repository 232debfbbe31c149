"""Downloading an agent's attachment from Chatwoot, to relay it to WhatsApp.

A webhook's attachment carries ``data_url``: an ActiveStorage redirect URL
(``/rails/active_storage/blobs/redirect/<signed id>/<file name>``) that answers 302 to where the
blob is stored (Chatwoot's disk service, or a presigned S3/GCS/Azure URL on another host).
:func:`fetch_attachment` follows the redirects one hop at a time, at most ``max_redirects``; each
hop is a new request through the given client, so its connect-time URL guard vets every host the
chain leads to. No credentials are sent: the URL is signed, and storage hosts get nothing of ours.

The body is streamed and refused past ``max_bytes`` (:class:`MediaTooLarge`, also when
``Content-Length`` announces it). The file name comes from ``Content-Disposition`` (RFC 6266,
``filename*`` preferred), else from the path of ``data_url`` (Chatwoot ends it with the name),
else from the last hop's path; it is reduced to a safe last path component. 404 and 410 raise
:class:`~app.integrations.errors.RemoteNotFound`; transient failures (connect errors, timeouts,
429, 5xx) are retried with the shared policy from the first URL (every request is a GET).
"""

from __future__ import annotations

import mimetypes
import os
from email.message import Message
from email.utils import collapse_rfc2231_value
from urllib.parse import unquote, urlsplit

import httpx

from app.integrations.download import Download, stream_download
from app.integrations.errors import RemoteError, RemoteNotFound, error_from_response
from app.integrations.files import OCTET_STREAM, File, media_extension, safe_name
from app.integrations.http import read_timeout, transient_retry

__all__ = ["DEFAULT_MAX_BYTES", "fetch_attachment", "filename_from_disposition"]

DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def fetch_attachment(
    url: str,
    *,
    http: httpx.Client,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_redirects: int = 5,
    timeout: float | None = None,
    retry_attempts: int = 3,
    retry_max_wait: float = 2.0,
) -> File:
    """GET ``url`` (following redirects), bounded in size; see the module docstring.

    ``timeout`` (seconds) bounds reading each answer; ``None`` keeps the client's own.
    """
    retrying = transient_retry(retry_attempts, retry_max_wait)
    download = retrying(
        stream_download,
        http,
        url,
        max_bytes=max_bytes,
        max_redirects=max_redirects,
        timeout=read_timeout(http, timeout),
        error_for=_error_for,
        subject="attachment",
        announced="the attachment has",
    )
    return _fetched_file(download, url)


def _error_for(response: httpx.Response, secrets: tuple[str, ...]) -> RemoteError:
    """``error_from_response``, with 404 and 410 as :class:`RemoteNotFound`."""
    error = error_from_response(response, secrets)
    if response.status_code in (404, 410):
        return RemoteNotFound(error.detail, status=response.status_code)
    return error


def _fetched_file(download: Download, first_url: str) -> File:
    """The file's type (served, else guessed from its name) and a name with an extension."""
    served = download.headers.get("content-type", "").strip()
    name = _pick_filename(download, first_url)
    content_type = served or mimetypes.guess_type(name or "")[0] or OCTET_STREAM
    if not name:
        name = "attachment" + media_extension(content_type)
    elif not os.path.splitext(name)[1] and content_type != OCTET_STREAM:
        name += media_extension(content_type)
    return File(download.data, content_type, name)


# --- file names ---------------------------------------------------------------------------------


def filename_from_disposition(value: str | None) -> str | None:
    """The file name in a ``Content-Disposition`` value (``filename*`` preferred), or None."""
    if not value:
        return None
    message = Message()
    message["content-disposition"] = value
    params = message.get_params(header="content-disposition") or []
    names = [v for key, v in params[1:] if key.lower() == "filename" and v]
    extended = [v for v in names if isinstance(v, tuple)]
    chosen = extended[0] if extended else (names[0] if names else None)
    return collapse_rfc2231_value(chosen) if chosen else None


def _url_name(url: str) -> str:
    return safe_name(unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]))


def _pick_filename(download: Download, first_url: str) -> str:
    """Content-Disposition, else the first URL's last path segment, else the last hop's."""
    declared = filename_from_disposition(download.headers.get("content-disposition"))
    for candidate in (
        safe_name(declared or ""),
        _url_name(first_url),
        _url_name(download.url),
    ):
        if candidate:
            return candidate
    return ""
