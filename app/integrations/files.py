"""Files that cross the bridge: where an attachment's bytes can be fetched (:class:`Media`), the
bytes once fetched (:class:`File`), and one table of safe names and MIME types for both
directions (WhatsApp media into Chatwoot, Chatwoot attachments out to WhatsApp)."""

from __future__ import annotations

import mimetypes
import os
import re
from dataclasses import dataclass

__all__ = [
    "OCTET_STREAM",
    "File",
    "Media",
    "base_type",
    "media_extension",
    "safe_name",
]

OCTET_STREAM = "application/octet-stream"
_MAX_FILENAME = 180
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Where mimetypes answers nothing or an unusual spelling (audio/ogg -> .oga).
_EXTENSIONS = {
    "audio/ogg": ".ogg",
    "audio/opus": ".opus",
    "audio/amr": ".amr",
    "audio/mpeg": ".mp3",
    "audio/aac": ".aac",
    "audio/mp4": ".m4a",
    "video/3gpp": ".3gp",
    "video/mp4": ".mp4",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "text/plain": ".txt",
}


@dataclass(frozen=True)
class File:
    """A file in hand: its bytes, MIME type and file name (the bytes never appear in ``repr``)."""

    data: bytes
    content_type: str
    filename: str

    def __repr__(self) -> str:
        return (
            f"File(filename={self.filename!r}, content_type={self.content_type!r}, "
            f"size={len(self.data)})"
        )


@dataclass(frozen=True)
class Media:
    """Where the bytes of a WhatsApp attachment can be fetched from.

    Cloud API: ``media_id`` (``GET /{media-id}`` gives a short-lived URL); ``url`` when the
    webhook already carries one. Gateway: ``url`` or inline ``base64``.
    """

    mime_type: str | None = None
    media_id: str | None = None
    url: str | None = None
    base64: str | None = None
    filename: str | None = None
    voice: bool = False
    sha256: str | None = None


def base_type(content_type: str | None) -> str:
    """The MIME type without parameters, lower case (``audio/ogg; codecs=opus``: ``audio/ogg``)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def media_extension(content_type: str | None) -> str:
    """The file extension for a MIME type (parameters ignored), ``.bin`` when unknown."""
    base = base_type(content_type)
    return _EXTENSIONS.get(base) or (mimetypes.guess_extension(base) if base else None) or ".bin"


def safe_name(name: str) -> str:
    """The last path component without control characters, at most ~180 characters."""
    name = _CONTROL.sub("", re.split(r"[/\\]", name)[-1]).strip().lstrip(".")
    if len(name) > _MAX_FILENAME:
        stem, suffix = os.path.splitext(name)
        suffix = suffix[:16]
        name = stem[: _MAX_FILENAME - len(suffix)] + suffix
    return name
