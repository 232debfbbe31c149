"""The normalized events both WhatsApp providers are parsed into.

The inbound parsers (``inbound.cloud_webhook``, ``inbound.gateway_webhook``) turn a webhook body
into these; the intake stores them as JSON (:meth:`to_json`) under their natural key, and the
relay rebuilds them (:func:`event_from_json`). Nothing here knows HTTP, Dramatiq or Chatwoot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

# Media is part of an InboundMessage; it is defined beside the code that fetches it.
from app.integrations.files import Media as Media
from app.integrations.whatsapp.hints import failure_text

MessageKind = Literal[
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contacts",
    "interactive",
    "button",
    "reaction",
    "unsupported",
    "system",
    "edit",
    "revoke",
]
Direction = Literal["incoming", "outgoing"]
StatusName = Literal["sent", "delivered", "read", "failed"]

MEDIA_KINDS = frozenset({"image", "video", "audio", "document", "sticker"})


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


@dataclass(frozen=True)
class SharedContact:
    name: str
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    organization: str | None = None


@dataclass(frozen=True)
class InboundMessage:
    """One WhatsApp message seen by the instance.

    ``chat_id`` identifies the conversation: the customer's canonical number (digits only,
    E.164 without ``+``) for a private chat, the customer's business-scoped user id (BSUID,
    e.g. ``US.13491208655302741918``) when WhatsApp gave no number, or the group JID.
    ``chat_aliases`` are the other identifiers of the same person seen in this message (BSUID,
    parent BSUID, LID, other spellings of the number, a previous id named by a system message):
    the intake unites them into one lane, one contact and one conversation.
    ``reply_address`` is where a reply must go now (the identifier the customer last wrote
    from, or the new number after a number change); ``None`` means ``chat_id``.
    ``username`` is the customer's WhatsApp username, when they have one.
    ``sender_*`` is who wrote it (differs from the chat in groups). ``direction`` is
    ``outgoing`` for messages the business sent from its own phone (gateway) or typed in the
    WhatsApp Business app on a coexistence number (Cloud ``smb_message_echoes``): they go into
    Chatwoot as outgoing and must never be sent back to WhatsApp.

    ``kind`` ``edit``: ``text`` is the new text and ``quoted_id`` the edited message;
    ``revoke``: ``quoted_id`` is the deleted message. A ``reaction`` with an empty
    ``reaction_emoji`` is a removed reaction; ``reaction_to`` may be unknown. ``media_error``
    says why WhatsApp could not provide the attachment (the caption is still relayed).
    """

    message_id: str
    chat_id: str
    sender_id: str
    kind: MessageKind
    direction: Direction = "incoming"
    is_group: bool = False
    chat_name: str | None = None
    sender_name: str | None = None
    timestamp: int | None = None
    text: str | None = None
    media: Media | None = None
    location: Location | None = None
    contacts: tuple[SharedContact, ...] = ()
    reaction_emoji: str | None = None
    reaction_to: str | None = None
    quoted_id: str | None = None
    chat_aliases: tuple[str, ...] = ()
    unsupported_reason: str | None = None
    reply_address: str | None = None
    username: str | None = None
    media_error: str | None = None

    @property
    def natural_key(self) -> str:
        return f"msg:{self.message_id}"

    def to_json(self) -> str:
        # Hand-written ``asdict``: it deep-copies every value and costs more than the rest of a
        # webhook's intake; json.dumps writes tuples as arrays, so only the nested dataclasses
        # need turning into dicts. tests/relay/test_messages.py checks both agree.
        plain = {"type": "message", **vars(self)}
        if self.media is not None:
            plain["media"] = vars(self.media)
        if self.location is not None:
            plain["location"] = vars(self.location)
        if self.contacts:
            plain["contacts"] = [vars(contact) for contact in self.contacts]
        return json.dumps(plain, separators=(",", ":"))


@dataclass(frozen=True)
class StatusUpdate:
    """A delivery tick for a message the business sent (an agent's reply).

    ``recipient_id`` is the customer's canonical number, or their BSUID when the status names
    only ``recipient_user_id``; ticks are matched to messages by ``message_id`` alone.
    """

    message_id: str
    status: StatusName
    recipient_id: str
    timestamp: int | None = None
    error_code: int | None = None
    error_title: str | None = None

    @property
    def natural_key(self) -> str:
        return f"status:{self.message_id}:{self.status}"

    @property
    def chat_id(self) -> str:
        return self.recipient_id

    @property
    def external_error(self) -> str | None:
        """Chatwoot's ``external_error`` text: ``"<code>: <title>"``, or the hint of
        :func:`~app.integrations.whatsapp.hints.failure_text` (131047: the window closed)."""
        if self.status != "failed":
            return None
        return failure_text(self.error_code, self.error_title or "unknown error")

    def to_json(self) -> str:
        return json.dumps({"type": "status", **vars(self)}, separators=(",", ":"))


Event = InboundMessage | StatusUpdate


class ParseError(ValueError):
    """The webhook body is not what the provider sends (answered 400, stored nowhere)."""


def event_from_json(text: str) -> Event:
    data: dict[str, Any] = json.loads(text)
    kind = data.pop("type")
    if kind == "status":
        return StatusUpdate(**data)
    media = data.pop("media")
    location = data.pop("location")
    contacts = data.pop("contacts")
    aliases = tuple(data.pop("chat_aliases"))
    return InboundMessage(
        **data,
        chat_aliases=aliases,
        media=Media(**media) if media else None,
        location=Location(**location) if location else None,
        contacts=tuple(
            SharedContact(
                name=c["name"],
                phones=tuple(c["phones"]),
                emails=tuple(c["emails"]),
                organization=c["organization"],
            )
            for c in contacts
        ),
    )


@dataclass
class ParsedBody:
    """What one webhook body holds, for one instance."""

    events: list[Event] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    # WhatsApp Business Account ids whose message templates changed (Cloud
    # ``message_template_status_update``): their templates are synced again, not relayed
    template_accounts: list[str] = field(default_factory=list)
