"""Chatwoot reply ▸ WhatsApp: plan the parts of a reply and send them, resumably.

A reply becomes one or more WhatsApp messages: its text, and each attachment as the matching
media kind (the text is the caption of the first one that can carry a caption). Each part
sent is recorded at once (``progress`` and the message map) so that a retry never sends a
part twice. The outcome of a send may be unknown (a timeout after the request went out): such
a reply is *unconfirmed* and waits; a status or an echo for it confirms it
(:mod:`app.relay.confirmations`), and only when none comes within the window is it sent again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.integrations.chatwoot import ChatwootClient
from app.integrations.whatsapp.send import OutgoingMedia, SendResult, WhatsAppSender
from app.relay.clients import FileFetcher
from app.relay.lanes import claims
from app.relay.message_map import remember_message
from app.relay.outbound.chatwoot_webhook import AgentReply, OutboundAttachment
from app.relay.outbound.format import markdown_to_whatsapp, signed
from app.relay.outbound.template_params import TemplateParams
from app.relay.outbound.templates import send_template
from app.relay.reply_address import reply_address
from app.store.group_commit import run_committed
from app.store.models import ChatwootIntegration, MessageMap, RelayEvent

logger = logging.getLogger(__name__)

CAPTIONED_KINDS = frozenset({"image", "video", "document"})
MEDIA_KINDS = {"image": "image", "video": "video", "audio": "audio", "file": "document"}


@dataclass(frozen=True)
class Part:
    """One WhatsApp message of a reply: text, or an attachment with an optional caption, or
    the agent's WhatsApp template (:mod:`app.relay.outbound.templates`)."""

    text: str | None = None
    attachment: OutboundAttachment | None = None
    template: TemplateParams | None = None


@dataclass
class OutboundContext:
    integration: ChatwootIntegration
    sender: WhatsAppSender
    chatwoot: ChatwootClient
    fetch_file: FileFetcher
    passes_links: bool  # the gateway fetches media URLs itself; Cloud needs an upload


def send_remaining(context: OutboundContext, row: RelayEvent, reply: AgentReply) -> int:
    """Send the parts of ``reply`` not sent yet, each recorded as soon as it is sent; returns how
    many waiting statuses they woke. Raises the sender's ``Send*`` exceptions, ``RemoteError``
    for an attachment, or :class:`~app.relay.lanes.claims.ClaimLost`."""
    integration = context.integration
    sign_with = (reply.sender_name or "") if integration.sign_messages else None
    parts = plan(reply, sign_with or None)
    reply_to = _quoted_whatsapp_id(integration, reply)
    woken = 0
    while row.progress < len(parts):
        quote = reply_to if row.progress == 0 else None
        _mark_sending(row)
        result = _send_part(context, reply, parts[row.progress], quote)
        woken += _record_sent_part(integration, row, reply, result.message_id)
    return woken


def plan(reply: AgentReply, sign_with: str | None) -> list[Part]:
    """The WhatsApp messages a reply becomes, in order (a template: just the template; the
    reply's content is Chatwoot's rendering of it)."""
    if reply.template is not None:
        return [Part(template=reply.template)]
    text = markdown_to_whatsapp(reply.content).strip() if reply.content else ""
    if text and sign_with is not None:
        text = signed(text, sign_with)
    if not reply.attachments:
        return [Part(text=text)] if text else []
    parts: list[Part] = []
    first_kind = media_kind(reply.attachments[0])
    if text and first_kind not in CAPTIONED_KINDS:
        parts.append(Part(text=text))
        text = ""
    for attachment in reply.attachments:
        parts.append(Part(text=text or None, attachment=attachment))
        text = ""
    return parts


def media_kind(attachment: OutboundAttachment) -> str:
    kind = MEDIA_KINDS.get(attachment.file_type, "document")
    if kind == "image" and (attachment.content_type or "") == "image/webp":
        return "sticker"
    return kind


def _quoted_whatsapp_id(integration: ChatwootIntegration, reply: AgentReply) -> str | None:
    """The WhatsApp id of the message the agent quoted, if we know it."""
    if reply.in_reply_to is not None:
        mapped = MessageMap.get_or_none(
            (MessageMap.integration == integration)
            & (MessageMap.chatwoot_message_id == reply.in_reply_to)
        )
        if mapped is not None:
            return str(mapped.whatsapp_message_id)
    return reply.in_reply_to_external_id


def _send_part(
    context: OutboundContext, reply: AgentReply, part: Part, reply_to: str | None
) -> SendResult:
    """Send one part (raises the sender's Send* exceptions, or RemoteError for the file).

    It goes to the identifier the customer last wrote from (the chat's ``reply_address``: a
    phone number, or a BSUID when they wrote without one), else to the contact inbox's
    source id."""
    to = reply_address(context.integration, reply.recipient)
    if part.template is not None:
        return send_template(context.integration, context.sender, to, part.template, reply_to)
    if part.attachment is None:
        return context.sender.send_text(to, part.text or "", reply_to=reply_to)
    media = _media(context, part.attachment)
    caption = part.text if media.kind in CAPTIONED_KINDS else None
    return context.sender.send_media(to, media, caption=caption, reply_to=reply_to)


def _media(context: OutboundContext, attachment: OutboundAttachment) -> OutgoingMedia:
    kind = media_kind(attachment)
    filename = attachment.filename or f"attachment-{attachment.data_url.rsplit('/', 1)[-1][:40]}"
    if context.passes_links:
        return OutgoingMedia(
            kind=kind,  # type: ignore[arg-type]
            data=b"",
            content_type=attachment.content_type or "application/octet-stream",
            filename=filename,
            link=attachment.data_url,
        )
    fetched = context.fetch_file(attachment.data_url)
    return OutgoingMedia(
        kind=kind,  # type: ignore[arg-type]
        data=fetched.data,
        content_type=attachment.content_type or fetched.content_type,
        filename=attachment.filename or fetched.filename or filename,
    )


def _mark_sending(row: RelayEvent) -> None:
    """Committed right before a send call: if the worker dies before the call's outcome is
    recorded, the next run knows this part may have gone out (and waits for evidence). It
    re-asserts the drain's claim on the event too: :class:`~app.relay.lanes.claims.ClaimLost` (and
    no send) when another drain owns it now. Committed with other threads' writes
    (:mod:`app.store.group_commit`): one fsync for the parts several lanes are about to send."""
    run_committed(lambda: claims.reassert(row, sending=True))


def _record_sent_part(
    integration: ChatwootIntegration, row: RelayEvent, reply: AgentReply, whatsapp_id: str
) -> int:
    """Commit one sent part before anything else happens (group-committed, see
    :func:`_mark_sending`); returns statuses woken by it."""

    def record() -> int:
        woken = remember_message(
            integration,
            whatsapp_id,
            reply.chatwoot_message_id,
            reply.conversation_id,
            "outgoing",
        )
        # the part's outcome is known now: a crash before the next send waits for nothing
        # row.progress is the stored one: only the claim's owner writes it
        claims.update_owned(row, progress=row.progress + 1, unconfirmed=False, sending=False)
        return woken

    woken = run_committed(record)
    row.progress += 1
    return woken
