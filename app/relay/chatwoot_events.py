"""Chatwoot inbox webhook body ▸ what must go to WhatsApp.

The inbox webhook carries every event of the inbox: the agents' replies, but also the messages
we posted ourselves (incoming, with our ``source_id``), private notes, activity lines, our own
status updates (``message_updated``), typing indicators. Only an agent's public reply or template
(:class:`AgentReply`) is sent to WhatsApp; a conversation status change
(:class:`ConversationStatusChanged`) is reported so the relay can keep its local state; anything
else is :class:`Ignored` with a short reason. Bodies Chatwoot never sends raise
:class:`~app.relay.messages.ParseError` (the webhook answers 400, which Chatwoot records on the
agent's message as a failed delivery).

What this relies on, from Chatwoot's source (chatwoot/chatwoot):

- ``app/listeners/webhook_listener.rb``: ``message_created`` / ``message_updated`` post
  ``message.webhook_data.merge(event:)``, only when ``webhook_sendable?``
  (``app/models/concerns/message_filter_helpers.rb``: incoming, outgoing or template; private
  notes are *not* filtered there, so they arrive too). ``conversation_status_changed`` and
  ``conversation_updated`` post ``conversation.webhook_data.merge(event:, changed_attributes:)``;
  ``changed_attributes`` is ``[{attr => {previous_value:, current_value:}}]``
  (``app/listeners/base_listener.rb#extract_changed_attributes``). A status change dispatches both
  events (``app/models/conversation.rb#notify_status_change``, ``#list_of_keys``). Typing events
  post ``{event, user, conversation, is_private}``; ``webwidget_triggered`` a contact inbox.
- ``app/models/message.rb#webhook_data``: ``message_type`` as the enum *name*
  (``incoming: 0, outgoing: 1, activity: 2, template: 3``), ``private``, ``source_id``,
  ``content_attributes``, ``sender`` = ``User#webhook_data`` (``id, name, email, type``: no
  ``available_name``), ``conversation`` = ``Conversations::EventDataPresenter#push_data``
  (``app/presenters/conversations/event_data_presenter.rb``: ``id`` is the display id,
  ``contact_inbox`` is the full record, ``messages`` is ``[messages.chat.last.push_event_data]``,
  i.e. the last *public* message, which is not always this one; there ``message_type`` is the
  integer and ``conversation.contact_inbox.source_id`` is repeated), ``attachments`` =
  ``Attachment#push_event_data`` (``app/models/attachment.rb``: ``file_type``, ``data_url``,
  ``extension``, ``file_size``; location/fallback carry ``external_url`` as ``data_url``; a
  contact card has no ``data_url``).
- ``Messages::InReplyToMessageBuilder`` (run in ``Message#ensure_in_reply_to``): a quote is
  ``content_attributes.in_reply_to`` (Chatwoot message id) plus ``in_reply_to_external_id``, the
  quoted message's ``source_id`` (the WhatsApp id for messages we relayed in).
"""

from __future__ import annotations

import json
import mimetypes
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from app.relay.messages import ParseError

MESSAGE_TYPES = {0: "incoming", 1: "outgoing", 2: "activity", 3: "template"}
SENDABLE_TYPES = frozenset({"outgoing", "template"})

_IGNORED_EVENTS = {
    "message_updated": "message_updated is not relayed (edits and our own status updates)",
    "conversation_typing_on": "typing indicator",
    "conversation_typing_off": "typing indicator",
    "conversation_created": "conversation_created is not relayed",
    "webwidget_triggered": "web widget event",
    "contact_created": "contact event",
    "contact_updated": "contact event",
}
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


@dataclass(frozen=True)
class AgentReply:
    """A message an agent wrote in the inbox, to be sent to the WhatsApp ``recipient``.

    ``conversation_id`` is the display id (the one in Chatwoot's URLs); ``recipient`` is the
    contact inbox's ``source_id`` (our chat key). ``in_reply_to`` is the quoted Chatwoot message,
    ``in_reply_to_external_id`` its ``source_id`` (a WhatsApp message id) when Chatwoot knew it.
    """

    chatwoot_message_id: int
    conversation_id: int
    recipient: str
    content: str = ""
    attachments: tuple[OutboundAttachment, ...] = ()
    in_reply_to: int | None = None
    in_reply_to_external_id: str | None = None
    sender_name: str | None = None
    message_type: str = "outgoing"
    content_type: str | None = None

    @property
    def natural_key(self) -> str:
        return f"cw:{self.chatwoot_message_id}"

    def to_json(self) -> str:
        return json.dumps({"type": "agent_reply", **asdict(self)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> AgentReply:
        data: dict[str, Any] = json.loads(text)
        if data.pop("type", "agent_reply") != "agent_reply":
            raise ValueError("not an agent_reply")
        attachments = tuple(OutboundAttachment(**a) for a in data.pop("attachments"))
        return cls(**data, attachments=attachments)


@dataclass(frozen=True)
class ConversationStatusChanged:
    """The conversation (display id) is now ``status`` (open, resolved, pending, snoozed).

    ``recipient`` is the contact inbox's ``source_id`` when the body carried it. Chatwoot sends
    one status change twice (``conversation_status_changed`` and ``conversation_updated``).
    """

    conversation_id: int
    status: str
    recipient: str | None = None

    def to_json(self) -> str:
        return json.dumps({"type": "conversation_status", **asdict(self)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ConversationStatusChanged:
        data: dict[str, Any] = json.loads(text)
        if data.pop("type", "conversation_status") != "conversation_status":
            raise ValueError("not a conversation_status")
        return cls(**data)


@dataclass(frozen=True)
class Ignored:
    """Nothing to do for this body; ``reason`` is for the log."""

    reason: str


ChatwootEvent = AgentReply | ConversationStatusChanged | Ignored


def parse_chatwoot_webhook(body: Any) -> ChatwootEvent:
    """What the inbox webhook ``body`` asks of us (see the module docstring)."""
    obj = _obj(body, "body")
    event = _str(obj.get("event"), "event")
    if event == "message_created":
        return _message_created(obj)
    if event == "conversation_status_changed":
        return _status_change(obj)
    if event == "conversation_updated":
        if _changes_status(obj.get("changed_attributes")):
            return _status_change(obj)
        return Ignored("conversation_updated without a status change")
    return Ignored(_IGNORED_EVENTS.get(event, f"event {event[:40]!r} is not relayed"))


def _message_created(obj: dict[str, Any]) -> AgentReply | Ignored:
    message_id = _int(obj.get("id"), "id")
    message_type = _message_type(obj.get("message_type"))
    if message_type not in SENDABLE_TYPES:
        return Ignored(f"{message_type} message {message_id}")
    if _flag(obj.get("private"), "private"):
        return Ignored(f"private note {message_id}")
    if obj.get("source_id") not in (None, ""):
        return Ignored(f"message {message_id} has a source_id (posted by us or by a channel)")
    conversation = _obj(obj.get("conversation"), "conversation")
    pushed = _pushed_message(conversation, message_id)
    attributes = _content_attributes(obj.get("content_attributes"))
    content = _opt_str(obj, "content", "") or ""
    attachments = tuple(
        _attachment(item, f"attachments[{i}]")
        for i, item in enumerate(_list_or_empty(obj.get("attachments"), "attachments"))
    )
    if not content.strip() and not attachments:
        return Ignored(f"message {message_id} has neither content nor attachments")
    return AgentReply(
        chatwoot_message_id=message_id,
        conversation_id=_int(conversation.get("id"), "conversation.id"),
        recipient=_recipient(conversation, required=True) or "",
        content=content,
        attachments=attachments,
        in_reply_to=_opt_int(attributes.get("in_reply_to"), "content_attributes.in_reply_to"),
        in_reply_to_external_id=_opt_str(
            attributes, "in_reply_to_external_id", "content_attributes."
        ),
        sender_name=_sender_name(obj.get("sender"), pushed),
        message_type=message_type,
        content_type=_opt_str(obj, "content_type", ""),
    )


def _status_change(obj: dict[str, Any]) -> ConversationStatusChanged:
    """``obj`` is ``conversation.webhook_data``: ``id`` is the display id."""
    return ConversationStatusChanged(
        conversation_id=_int(obj.get("id"), "id"),
        status=_str(obj.get("status"), "status"),
        recipient=_recipient(obj, required=False),
    )


def _changes_status(changed: Any) -> bool:
    """Whether ``changed_attributes`` (``[{attr: {previous_value, current_value}}]``) names
    ``status``."""
    return isinstance(changed, list) and any(
        isinstance(change, dict) and "status" in change for change in changed
    )


def _message_type(value: Any) -> str:
    """The enum name, from the name (``webhook_data``) or its integer (``push_event_data``)."""
    if isinstance(value, int) and not isinstance(value, bool) and value in MESSAGE_TYPES:
        return MESSAGE_TYPES[value]
    if isinstance(value, str) and value in MESSAGE_TYPES.values():
        return value
    if isinstance(value, str) and value.isdigit() and int(value) in MESSAGE_TYPES:
        return MESSAGE_TYPES[int(value)]
    raise ParseError(f"message_type {str(value)[:20]!r} is not one of Chatwoot's")


def _pushed_message(conversation: dict[str, Any], message_id: int) -> dict[str, Any] | None:
    """This message in ``conversation.messages`` (Chatwoot lists the last public one only)."""
    return next(
        (m for m in _dicts(conversation.get("messages")) if m.get("id") == message_id), None
    )


def _recipient(conversation: dict[str, Any], *, required: bool) -> str | None:
    """``contact_inbox.source_id``, else the one repeated in ``messages[].conversation``."""
    holders = [conversation] + [
        m["conversation"]
        for m in _dicts(conversation.get("messages"))
        if isinstance(m.get("conversation"), dict)
    ]
    for holder in holders:
        contact_inbox = holder.get("contact_inbox")
        if isinstance(contact_inbox, dict):
            source_id = contact_inbox.get("source_id")
            if isinstance(source_id, str) and source_id.strip():
                return source_id.strip()
    if required:
        raise ParseError("conversation.contact_inbox.source_id is missing")
    return None


def _sender_name(sender: Any, pushed: dict[str, Any] | None) -> str | None:
    """The agent's display name: ``available_name`` (only in the pushed copy), else ``name``."""
    senders = [s for s in (sender, pushed.get("sender") if pushed else None) if isinstance(s, dict)]
    for key in ("available_name", "name"):
        for candidate in senders:
            value = candidate.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def _content_attributes(value: Any) -> dict[str, Any]:
    """A JSON object; older rows hold it double-encoded as a string."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError:
            raise ParseError("content_attributes is not JSON") from None
    return _obj(value, "content_attributes")


def _attachment(value: Any, where: str) -> OutboundAttachment:
    att = _obj(value, where)
    file_type = _str(att.get("file_type"), f"{where}.file_type")
    data_url = att.get("data_url")
    if not isinstance(data_url, str) or not data_url.strip():
        raise ParseError(f"{where} ({file_type[:20]}) has no data_url")
    extension = att.get("extension") if isinstance(att.get("extension"), str) else None
    filename = _filename(data_url, extension)
    content_type = _opt_str(att, "content_type", f"{where}.") or _guess_type(filename)
    size = _opt_int(att.get("file_size"), f"{where}.file_size")
    return OutboundAttachment(
        data_url=data_url.strip(),
        file_type=file_type,
        content_type=content_type,
        filename=filename,
        file_size=size if size is None or size >= 0 else None,
    )


def _filename(data_url: str, extension: str | None) -> str | None:
    """The last path segment of an ActiveStorage URL (``.../redirect/<id>/<name>``), with
    Chatwoot's ``extension`` added when the name has none."""
    name = unquote(urlsplit(data_url.strip()).path.rsplit("/", 1)[-1]).strip()
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


# ---- shape checks ----
def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParseError(f"{where} is not an object")
    return value


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _list_or_empty(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ParseError(f"{where} is not a list")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ParseError(f"{where} is missing or not a string")
    return value.strip()


def _opt_str(obj: dict[str, Any], key: str, prefix: str) -> str | None:
    """``obj[key]`` as a non-empty string, None when absent, null or empty."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ParseError(f"{prefix}{key} is not a string")
    return value if value.strip() else None


def _int(value: Any, where: str) -> int:
    number = _opt_int(value, where)
    if number is None:
        raise ParseError(f"{where} is missing")
    return number


def _opt_int(value: Any, where: str) -> int | None:
    """An id: an integer, or a string of digits (as some clients send them)."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise ParseError(f"{where} is not an integer")


def _flag(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ParseError(f"{where} is not a boolean")
    return value
