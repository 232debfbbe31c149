"""Chatwoot inbox webhook body ▸ what must go to WhatsApp.

The inbox webhook carries every event of the inbox: the agents' replies, but also the messages
we posted ourselves (incoming, with our ``source_id``), private notes, activity lines, our own
status updates (``message_updated``), typing indicators. Only an agent's public reply or template
(:class:`AgentReply`) is sent to WhatsApp; a conversation status change
(:class:`ConversationStatusChanged`) is reported so the relay can keep its local state; an
agent's typing (:class:`AgentTyping`) so the customer can see it; a ``message_updated`` of
an agent's reply is Chatwoot's Retry (:class:`RetryRequested`) or an agent's delete
(:class:`MessageDeleted`); anything else is :class:`Ignored` with a short reason.

Lenient at the door (DESIGN.md invariant 9): only a body that is not a JSON object or has no
``event`` string raises :class:`~app.relay.messages.ParseError` (the webhook's 400). Any other
body gives a result and never another exception: an agent reply that cannot be relayed (no
readable id, conversation or ``contact_inbox.source_id``, an unknown ``message_type``, an
unreadable ``private`` flag) is :class:`Ignored` with ``malformed=True`` and a reason for the
log; a malformed attachment is left out (logged) and the rest of the reply is still relayed;
an unreadable quote (``content_attributes``) only loses the quote.

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
from dataclasses import asdict, dataclass
from typing import Any

from app.relay.messages import ParseError
from app.relay.outbound.chatwoot_attachments import MAX_ID, OutboundAttachment, read_attachments
from app.relay.outbound.template_params import TemplateParams, read_template_params

__all__ = [
    "AgentReply",
    "AgentTyping",
    "ChatwootEvent",
    "ConversationStatusChanged",
    "Ignored",
    "MessageDeleted",
    "OutboundAttachment",
    "RetryRequested",
    "parse_chatwoot_webhook",
]

MESSAGE_TYPES = {0: "incoming", 1: "outgoing", 2: "activity", 3: "template"}
SENDABLE_TYPES = frozenset({"outgoing", "template"})

_IGNORED_EVENTS = {
    "conversation_created": "conversation_created is not relayed",
    "webwidget_triggered": "web widget event",
    "contact_created": "contact event",
    "contact_updated": "contact event",
}


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
    # the WhatsApp template the agent picked (``additional_attributes.template_params``): it is
    # sent instead of ``content``, which holds Chatwoot's rendering of it
    template: TemplateParams | None = None

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
        template = data.pop("template", None)
        if template is not None:
            data["template"] = TemplateParams.from_dict(template)
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
    """Nothing to do for this body; ``reason`` is for the log.

    ``malformed`` is True when the body asked for something (an agent reply, a status change)
    that could not be read: the webhook should log ``reason`` at WARNING, as such a reply never
    reaches the customer.
    """

    reason: str
    malformed: bool = False


@dataclass(frozen=True)
class AgentTyping:
    """An agent (a user or an agent bot) started (``on``) or stopped typing a public reply in
    the conversation (display id) whose contact inbox is ``recipient``. Ephemeral: never
    stored, handed to a typing job (:mod:`app.relay.read_receipts`)."""

    conversation_id: int
    recipient: str
    on: bool


# Chatwoot's typing webhook names who typed by ``user.webhook_data`` (``type``): ``user`` (an
# agent), ``agent_bot``, or ``contact`` (the customer; also our own toggle_typing through the
# public API, which runs as the conversation's contact: ignoring it breaks the echo loop).
_TYPISTS = frozenset({"user", "agent_bot"})
# ``is_private`` is the API caller's param, as Rails would cast it to false; anything else
# (true, or unreadable) is taken for a private note's typing, which the customer must not see
_FALSE = (None, False, "false", "0", "f", "off", "")


# ---- message_updated: Chatwoot's Retry button and an agent's delete (app/relay/outbound/retry.py,
# deletion.py). Chatwoot (messages_controller.rb) answers Retry on a failed message with
# Messages::StatusUpdateService(message, "sent") (status sent, external_error written to nil)
# and then a second update that drops external_error from content_attributes (older releases:
# content_attributes = {}); each update posts message_updated. Delete (#destroy) sets content
# "This message was deleted", content_attributes {deleted: true} and drops the attachments.
# Message#webhook_data has no status: it shows only in conversation.messages when this message
# is the conversation's last public one.
@dataclass(frozen=True)
class RetryRequested:
    """A ``message_updated`` of an agent's reply that shows no failure: Chatwoot's Retry button
    (or one of our own ``sent`` ticks, which looks the same). Only a reply whose send failed is
    sent again (the database decides, :mod:`app.relay.outbound.retry`).

    ``explicit``: the body shows a failure being cleared (``content_attributes.external_error``
    present and null: Rails' store writes nil over an error only when there was one), which is
    Retry's first update and never one of our ticks of a message that did not fail."""

    chatwoot_message_id: int
    conversation_id: int
    recipient: str
    explicit: bool = False


@dataclass(frozen=True)
class MessageDeleted:
    """An agent deleted the outgoing message ``chatwoot_message_id`` in Chatwoot. Stored as an
    event in the chat's outbound lane (``natural_key``), behind the reply it deletes."""

    chatwoot_message_id: int
    conversation_id: int
    recipient: str

    @property
    def natural_key(self) -> str:
        return f"cw:{self.chatwoot_message_id}:deleted"

    def to_json(self) -> str:
        return json.dumps({"type": "message_deleted", **asdict(self)}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> MessageDeleted:
        data: dict[str, Any] = json.loads(text)
        if data.pop("type", "message_deleted") != "message_deleted":
            raise ValueError("not a message_deleted")
        return cls(**data)


_SETTLED = frozenset({"failed", "delivered", "read"})  # a pushed status that is no Retry


def _message_updated(obj: dict[str, Any]) -> RetryRequested | MessageDeleted | Ignored:
    """An agent's reply deleted, or shown without its failure (a possible Retry); anything
    else (customers' messages, notes, our own failure ticks, settled ticks) is ignored."""
    message_id = _id(obj.get("id"), "id")
    message_type = _message_type(obj.get("message_type"))
    if message_type not in SENDABLE_TYPES:
        return Ignored(f"message_updated of {message_type} message {message_id}")
    if _private(obj.get("private"), message_id):
        return Ignored(f"message_updated of private note {message_id}")
    conversation = obj.get("conversation")
    if not isinstance(conversation, dict):
        raise _Unusable(f"message {message_id}: conversation is not an object")
    conversation_id = _id(conversation.get("id"), f"message {message_id}: conversation.id")
    attributes = _content_attributes(obj.get("content_attributes"))
    if _flag(attributes.get("deleted")):
        recipient = _recipient(conversation) or _missing(message_id)
        return MessageDeleted(message_id, conversation_id, recipient)
    if obj.get("source_id") not in (None, ""):
        return Ignored(f"message_updated of message {message_id}, which has a source_id")
    if attributes.get("external_error") not in (None, ""):
        return Ignored(f"message_updated: message {message_id} failed (our own status update)")
    pushed = _pushed_message(conversation, message_id)
    status = pushed.get("status") if pushed is not None else None
    if isinstance(status, str) and status in _SETTLED:
        return Ignored(f"message_updated: message {message_id} is {status}")
    return RetryRequested(
        chatwoot_message_id=message_id,
        conversation_id=conversation_id,
        recipient=_recipient(conversation) or _missing(message_id),
        explicit="external_error" in attributes,
    )


def _flag(value: Any) -> bool:
    """A Rails boolean as JSON carries it (``true``; ``"true"``/``1`` from odd clients)."""
    if isinstance(value, bool):
        return value
    return value in (1, "1", "true", "t")


ChatwootEvent = (
    AgentReply | ConversationStatusChanged | AgentTyping | RetryRequested | MessageDeleted | Ignored
)


class _Unusable(Exception):
    """A field this body needs cannot be read (becomes a malformed :class:`Ignored`)."""


def parse_chatwoot_webhook(body: Any) -> ChatwootEvent:
    """What the inbox webhook ``body`` asks of us (see the module docstring)."""
    if not isinstance(body, dict):
        raise ParseError("body is not an object")
    event = body.get("event")
    if not isinstance(event, str) or not event.strip():
        raise ParseError("event is missing or not a string")
    try:
        return _dispatch(body, event.strip())
    except _Unusable as exc:
        return Ignored(f"{event.strip()[:40]}: {exc}", malformed=True)


def _dispatch(obj: dict[str, Any], event: str) -> ChatwootEvent:
    if event == "message_created":
        return _message_created(obj)
    if event == "conversation_status_changed":
        return _status_change(obj)
    if event == "conversation_updated":
        if _changes_status(obj.get("changed_attributes")):
            return _status_change(obj)
        return Ignored("conversation_updated without a status change")
    if event in ("conversation_typing_on", "conversation_typing_off"):
        return _typing(obj, on=event == "conversation_typing_on")
    if event == "message_updated":
        return _message_updated(obj)
    return Ignored(_IGNORED_EVENTS.get(event, f"event {event[:40]!r} is not relayed"))


def _message_created(obj: dict[str, Any]) -> AgentReply | Ignored:
    message_id = _id(obj.get("id"), "id")
    message_type = _message_type(obj.get("message_type"))
    if message_type not in SENDABLE_TYPES:
        return Ignored(f"{message_type} message {message_id}")
    if _private(obj.get("private"), message_id):
        return Ignored(f"private note {message_id}")
    if obj.get("source_id") not in (None, ""):
        return Ignored(f"message {message_id} has a source_id (posted by us or by a channel)")
    conversation = obj.get("conversation")
    if not isinstance(conversation, dict):
        raise _Unusable(f"message {message_id}: conversation is not an object")
    raw_content = obj.get("content")
    content = raw_content if isinstance(raw_content, str) else ""
    attachments = read_attachments(obj.get("attachments"), message_id)
    template = read_template_params(obj.get("additional_attributes"))
    if not content.strip() and not attachments and template is None:
        return Ignored(f"message {message_id} has neither content nor attachments")
    attributes = _content_attributes(obj.get("content_attributes"))
    return AgentReply(
        chatwoot_message_id=message_id,
        conversation_id=_id(conversation.get("id"), f"message {message_id}: conversation.id"),
        recipient=_recipient(conversation) or _missing(message_id),
        content=content,
        attachments=attachments,
        in_reply_to=_opt_id(attributes.get("in_reply_to")),
        in_reply_to_external_id=_opt_str(attributes.get("in_reply_to_external_id")),
        sender_name=_sender_name(obj.get("sender"), _pushed_message(conversation, message_id)),
        message_type=message_type,
        content_type=_opt_str(obj.get("content_type")),
        template=template,
    )


def _missing(message_id: int) -> str:
    raise _Unusable(f"message {message_id}: conversation.contact_inbox.source_id is missing")


def _status_change(obj: dict[str, Any]) -> ConversationStatusChanged:
    """``obj`` is ``conversation.webhook_data``: ``id`` is the display id."""
    status = _opt_str(obj.get("status"))
    if status is None:
        raise _Unusable("status is missing or not a string")
    return ConversationStatusChanged(
        conversation_id=_id(obj.get("id"), "id"),
        status=status.strip()[:40],
        recipient=_recipient(obj),
    )


def _typing(obj: dict[str, Any], on: bool) -> AgentTyping | Ignored:
    """``{event, user, conversation, is_private}`` (``WebhookListener#handle_typing_status``):
    an agent's or agent bot's typing of a public reply; a contact's typing (ours included) and
    private-note typing are ignored. An unreadable flag or sender counts as not an agent's."""
    user = obj.get("user")
    typist = user.get("type") if isinstance(user, dict) else None
    if not isinstance(typist, str) or typist not in _TYPISTS:
        return Ignored(f"typing by {_show(typist)}, not an agent")
    if obj.get("is_private") not in _FALSE:
        return Ignored("typing of a private note")
    conversation = obj.get("conversation")
    if not isinstance(conversation, dict):
        return Ignored("typing without a conversation")
    recipient = _recipient(conversation)
    conversation_id = _opt_id(conversation.get("id"))
    if recipient is None or conversation_id is None:
        return Ignored("typing in a conversation without a contact inbox")
    return AgentTyping(conversation_id=conversation_id, recipient=recipient, on=on)


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
    if isinstance(value, str) and value in ("0", "1", "2", "3"):
        return MESSAGE_TYPES[int(value)]
    raise _Unusable(f"message_type {_show(value)} is not one of Chatwoot's")


def _private(value: Any, message_id: int) -> bool:
    """The ``private`` flag; an unreadable one is refused rather than risk sending a note."""
    if value is None or isinstance(value, bool):
        return bool(value)
    raise _Unusable(f"message {message_id}: private flag {_show(value)} is not a boolean")


def _pushed_message(conversation: dict[str, Any], message_id: int) -> dict[str, Any] | None:
    """This message in ``conversation.messages`` (Chatwoot lists the last public one only)."""
    return next(
        (m for m in _dicts(conversation.get("messages")) if m.get("id") == message_id), None
    )


def _recipient(conversation: dict[str, Any]) -> str | None:
    """``contact_inbox.source_id``, else the one repeated in ``messages[].conversation``."""
    holders = [conversation] + [
        m["conversation"]
        for m in _dicts(conversation.get("messages"))
        if isinstance(m.get("conversation"), dict)
    ]
    for holder in holders:
        contact_inbox = holder.get("contact_inbox")
        if isinstance(contact_inbox, dict):
            source_id = _opt_str(contact_inbox.get("source_id"))
            if source_id:
                return source_id.strip()
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
    """A JSON object; older rows hold it double-encoded as a string. Unreadable: ``{}``."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except (ValueError, RecursionError):
            return {}
    return value if isinstance(value, dict) else {}


# ---- readers: total, never raising except _Unusable for what a body cannot do without ----
def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _opt_str(value: Any) -> str | None:
    """``value`` when it is a non-blank string, else None."""
    return value if isinstance(value, str) and value.strip() else None


def _opt_id(value: Any) -> int | None:
    """A Chatwoot id: an integer, or a string of digits (as some clients send them); None
    when absent, unreadable or out of range (:data:`MAX_ID`)."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip()) if len(value.strip()) < 12 else None
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 1 <= value <= MAX_ID else None
    return None


def _id(value: Any, where: str) -> int:
    number = _opt_id(value)
    if number is None:
        raise _Unusable(f"{where} {_show(value)} is not a Chatwoot id")
    return number


def _show(value: Any, limit: int = 20) -> str:
    """A short, safe rendering of an unreadable value for a log line."""
    if isinstance(value, str):
        return repr(value[:limit])
    if value is None or isinstance(value, bool | int | float):
        return repr(value)[:limit]
    return type(value).__name__
