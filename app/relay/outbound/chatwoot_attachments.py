"""The files of an agent's reply, as Chatwoot's inbox webhook describes them.

``Attachment#push_event_data`` (chatwoot/chatwoot ``app/models/attachment.rb``): ``file_type``,
``data_url``, ``extension``, ``file_size``, sometimes ``content_type``. Reading is lenient: an
attachment that cannot be sent (no ``data_url``, not an object) is logged and left out, so the
rest of the reply still goes; a missing ``file_type`` is guessed from the content type.
"""

from __future__ import annotations

import logging
import mimetypes
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

logger = logging.getLogger(__name__)

MAX_ID = 2**31 - 1  # the store keeps Chatwoot ids in 32-bit integer columns

# Types WhatsApp takes that Python's built-in table lacks.
_EXTRA_MIME_TYPES = {
    "ogg": "audio/ogg",
    "oga": "audio/ogg",
    "opus": "audio/ogg",
    "m4a": "audio/mp4",
    "amr": "audio/amr",
    "3gp": "video/3gpp",
    "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xls": "application/vnd.ms-excel",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "ppt": "application/vnd.ms-powerpoint",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
_MIME = mimetypes.MimeTypes()  # the built-in table only: the same answer on every machine


@dataclass(frozen=True)
class OutboundAttachment:
    """A file of an agent's reply; ``data_url`` is Chatwoot's (ActiveStorage redirect) URL.

    ``file_type`` is Chatwoot's: image, audio, video, file, location, fallback, ...
    ``content_type`` is Chatwoot's, or guessed from the file name when it sent none.
    """

    data_url: str
    file_type: str
    content_type: str | None = None
    filename: str | None = None
    file_size: int | None = None


def read_attachments(value: Any, message_id: int) -> tuple[OutboundAttachment, ...]:
    """The readable attachments of message ``message_id``; each unreadable one is logged and
    left out."""
    items = value if isinstance(value, list) else ([] if value is None else [value])
    found: list[OutboundAttachment] = []
    for index, item in enumerate(items):
        attachment = _attachment(item)
        if isinstance(attachment, str):
            logger.warning(
                "Chatwoot message %s: attachments[%d] left out: %s", message_id, index, attachment
            )
        else:
            found.append(attachment)
    return tuple(found)


def _attachment(att: Any) -> OutboundAttachment | str:
    """One attachment, or why it cannot be sent (never its URL: it may be signed)."""
    if not isinstance(att, dict):
        return f"not an object ({type(att).__name__})"
    data_url = _opt_str(att.get("data_url"))
    if data_url is None:
        file_type = _opt_str(att.get("file_type")) or "file"
        return f"{file_type.strip()[:20]!r} without a data_url"
    filename = _filename(data_url, _opt_str(att.get("extension")))
    content_type = _opt_str(att.get("content_type")) or _guess_type(filename)
    return OutboundAttachment(
        data_url=data_url.strip(),
        file_type=(_opt_str(att.get("file_type")) or _file_type(content_type)).strip()[:40],
        content_type=content_type,
        filename=filename,
        file_size=_size(att.get("file_size")),
    )


def _file_type(content_type: str | None) -> str:
    """Chatwoot's ``file_type`` when it sent none: from the content type, else ``file``."""
    major = (content_type or "").split("/", 1)[0].lower()
    return major if major in ("image", "audio", "video") else "file"


def _filename(data_url: str, extension: str | None) -> str | None:
    """The last path segment of an ActiveStorage URL (``.../redirect/<id>/<name>``), with
    Chatwoot's ``extension`` added when the name has none."""
    try:
        path = urlsplit(data_url.strip()).path
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return None
    name = unquote(path.rsplit("/", 1)[-1]).strip()
    if not name:
        return None
    ext = (extension or "").strip().lstrip(".")
    if ext and "." not in name:
        name = f"{name}.{ext}"
    return name


def _guess_type(filename: str | None) -> str | None:
    if not filename or "." not in filename:
        return None
    ext = filename.rsplit(".", 1)[1].lower()
    return _EXTRA_MIME_TYPES.get(ext) or _MIME.guess_type(f"x.{ext}", strict=False)[0]


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _size(value: Any) -> int | None:
    """``file_size`` in bytes; None when absent, unreadable or absurd."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip()) if len(value.strip()) < 16 else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53:
        return value
    return None
