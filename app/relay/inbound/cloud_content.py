"""The type-specific part of a Cloud API message: text, media, location, reactions, edits, …

:func:`content` returns the kind-specific fields of an
:class:`~app.relay.messages.InboundMessage`. It never fails: a payload that cannot be read
becomes an ``unsupported`` placeholder naming the type and what was missing, and a type we do
not know becomes ``"message type <type>"``, so the agent always sees that something arrived.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.relay.inbound.cloud_shapes import (
    Unreadable,
    dicts,
    error_code,
    error_text,
    first_error,
    message_id_at,
    number,
    obj,
    opt_str,
    req_str,
    text_of,
)
from app.relay.messages import Location, Media, SharedContact

MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
NOT_VIEWABLE = 131060  # coexistence: the content is only visible in the WhatsApp Business app
NO_MEDIA_ID = "no media id in the webhook"
_TYPE_CHARS = 40

Fields = dict[str, Any]


def content(msg: dict[str, Any]) -> Fields:
    """The kind-specific fields of ``msg`` (``kind`` always among them)."""
    mtype = msg.get("type")
    if not isinstance(mtype, str) or not mtype:
        return _placeholder("message without a type")
    shown = mtype[:_TYPE_CHARS]
    try:
        if mtype in MEDIA_TYPES:
            return _media(msg, mtype)
        if mtype == "contacts":
            return _contacts(msg.get("contacts"))
        if mtype == "unsupported":
            return _placeholder(_unsupported_reason(msg))
        parser = _PARSERS.get(mtype)
        if parser is None:
            return _placeholder(_error_or(msg, f"message type {shown}"))
        return parser(obj(msg.get(mtype), mtype))
    except Unreadable as gap:
        return _placeholder(f"unreadable {shown} message: {gap}")


def quote(msg: dict[str, Any], fields: Fields) -> Fields:
    """``quoted_id`` from a reply's context; a product inquiry notes the product instead.

    Reactions, edits and revokes name their target themselves; a context that is not an
    object is no quote at all.
    """
    context = msg.get("context")
    if not isinstance(context, dict) or fields["kind"] in ("reaction", "edit", "revoke"):
        return {}
    product = context.get("referred_product")
    if isinstance(product, dict):
        ref = f"(product: {opt_str(product, 'catalog_id')}/"
        ref += f"{opt_str(product, 'product_retailer_id')})"
        text = fields.get("text")
        return {"text": f"{text} {ref}" if text else ref}
    quoted = message_id_at(context, "id")
    return {"quoted_id": quoted} if quoted else {}


def _placeholder(reason: str) -> Fields:
    return {"kind": "unsupported", "unsupported_reason": reason}


def _error_or(msg: dict[str, Any], fallback: str) -> str:
    error = first_error(msg)
    return error_text(error) if error is not None else fallback


def _unsupported_reason(msg: dict[str, Any]) -> str:
    """Why WhatsApp could not give the message: 131060 names only its title (its details
    speak to the API user); an edit Meta delivered as ``unsupported`` says so."""
    payload = msg.get("unsupported")
    inner = opt_str(payload, "type") if isinstance(payload, dict) else None
    if inner == "edit":
        return "edited a message"
    error = first_error(msg)
    if error is not None and error_code(error) == NOT_VIEWABLE:
        title = text_of(error, "title") or text_of(error, "message") or "message not viewable"
        return f"{NOT_VIEWABLE}: {title}"
    fallback = f"message type {inner[:_TYPE_CHARS]}" if inner else "message type unsupported"
    return _error_or(msg, fallback)


def _media(msg: dict[str, Any], mtype: str) -> Fields:
    """Media keep their kind and caption even when Meta could not provide the file."""
    raw = msg.get(mtype)
    payload = raw if isinstance(raw, dict) else {}
    media = Media(
        mime_type=opt_str(payload, "mime_type"),
        media_id=text_of(payload, "id"),
        url=text_of(payload, "url"),
        filename=opt_str(payload, "filename") if mtype == "document" else None,
        voice=mtype == "audio" and payload.get("voice") is True,
        sha256=opt_str(payload, "sha256"),
    )
    error = first_error(msg)
    if error is not None:
        media_error: str | None = error_text(error)
    elif media.media_id is None and media.url is None:
        media_error = NO_MEDIA_ID
    else:
        media_error = None
    return {
        "kind": mtype,
        "media": media,
        "text": opt_str(payload, "caption"),
        "media_error": media_error,
    }


def _text(payload: dict[str, Any]) -> Fields:
    body = payload.get("body")
    if not isinstance(body, str):
        raise Unreadable("text.body missing" if body is None else "text.body is not a string")
    return {"kind": "text", "text": body}


def _location(payload: dict[str, Any]) -> Fields:
    location = Location(
        latitude=number(payload.get("latitude"), "location.latitude"),
        longitude=number(payload.get("longitude"), "location.longitude"),
        name=opt_str(payload, "name"),
        address=opt_str(payload, "address"),
    )
    return {"kind": "location", "location": location}


def _contacts(payload: Any) -> Fields:
    if not isinstance(payload, list):
        raise Unreadable("contacts missing" if payload is None else "contacts is not a list")
    cards = tuple(_contact(card) for card in dicts(payload))
    if not cards:
        raise Unreadable("contacts has no card")
    return {"kind": "contacts", "contacts": cards}


def _contact(card: dict[str, Any]) -> SharedContact:
    phones = tuple(
        opt_str(p, "phone") or (f"+{p['wa_id']}" if text_of(p, "wa_id") else "")
        for p in dicts(card.get("phones"))
    )
    emails = tuple(e for e in (text_of(e, "email") for e in dicts(card.get("emails"))) if e)
    org = card.get("org")
    company = text_of(org, "company") if isinstance(org, dict) else None
    return SharedContact(
        name=_contact_name(card.get("name"), phones),
        phones=tuple(p for p in phones if p),
        emails=emails,
        organization=company,
    )


def _contact_name(name: Any, phones: tuple[str, ...]) -> str:
    if isinstance(name, dict):
        formatted = text_of(name, "formatted_name")
        if formatted:
            return formatted.strip()
        parts = [text_of(name, k) for k in ("prefix", "first_name", "middle_name", "last_name")]
        joined = " ".join(p.strip() for p in parts if p)
        if joined:
            return joined
    return next((p for p in phones if p), "Unnamed contact")


def _interactive(payload: dict[str, Any]) -> Fields:
    itype = req_str(payload.get("type"), "interactive.type")
    if itype not in ("button_reply", "list_reply", "nfm_reply"):
        return _placeholder(f"interactive {itype[:_TYPE_CHARS]}")
    reply = obj(payload.get(itype), f"interactive.{itype}")
    if itype == "nfm_reply":
        parts = [opt_str(reply, k) for k in ("body", "response_json")]
    else:
        parts = [req_str(reply.get("title"), f"interactive.{itype}.title")]
        parts.append(opt_str(reply, "description"))
    return {"kind": "interactive", "text": "\n".join(p for p in parts if p)}


def _button(payload: dict[str, Any]) -> Fields:
    label = text_of(payload, "text") or text_of(payload, "payload")
    if label is None:
        raise Unreadable("button has neither text nor payload")
    return {"kind": "button", "text": label}


def _reaction(payload: dict[str, Any]) -> Fields:
    """An empty or absent emoji is a removed reaction; the reacted message may be unknown."""
    emoji = payload.get("emoji")
    if emoji is not None and not isinstance(emoji, str):
        raise Unreadable("reaction.emoji is not a string")
    return {
        "kind": "reaction",
        "reaction_to": message_id_at(payload, "message_id"),
        "reaction_emoji": emoji or "",
    }


def _system(payload: dict[str, Any]) -> Fields:
    """Shown as a line of text; who changed what is read by ``cloud_identity``."""
    stype = opt_str(payload, "type") or ""
    fallback = _SYSTEM_LINES.get(stype) or stype[:_TYPE_CHARS] or "system message"
    return {"kind": "system", "text": text_of(payload, "body") or fallback}


_SYSTEM_LINES = {
    "user_changed_user_id": "changed their WhatsApp user id",
    "user_changed_number": "changed their phone number",
}


def _edit(payload: dict[str, Any]) -> Fields:
    """The new text (or the new caption of a media message) quoting the edited message."""
    original = _original(payload, "edit")
    inner = payload.get("message")
    text = None
    if isinstance(inner, dict):
        itype = opt_str(inner, "type") or "text"
        body = inner.get(itype)
        if isinstance(body, dict):
            text = opt_str(body, "body") if itype == "text" else opt_str(body, "caption")
    return {"kind": "edit", "quoted_id": original, "text": text}


def _revoke(payload: dict[str, Any]) -> Fields:
    original = _original(payload, "revoke")
    return {"kind": "revoke", "quoted_id": original}


def _original(payload: dict[str, Any], mtype: str) -> str:
    original = message_id_at(payload, "original_message_id")
    if original is None:
        req_str(payload.get("original_message_id"), f"{mtype}.original_message_id")
        raise Unreadable(f"{mtype}.original_message_id is not a message id")
    return original


def _order(payload: dict[str, Any]) -> Fields:
    items = [
        f"{i.get('quantity')} x {i.get('product_retailer_id')}"
        for i in dicts(payload.get("product_items"))
        if _scalar(i.get("quantity")) and _scalar(i.get("product_retailer_id"))
    ]
    return _placeholder("order" + (f": {', '.join(items)}" if items else ""))


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


_PARSERS: dict[str, Callable[[dict[str, Any]], Fields]] = {
    "text": _text,
    "location": _location,
    "interactive": _interactive,
    "button": _button,
    "reaction": _reaction,
    "system": _system,
    "order": _order,
    "edit": _edit,
    "revoke": _revoke,
}
