"""WhatsApp Cloud API (Meta) webhook body ▸ normalized events.

Meta batches: one body may hold several entries, each with several changes, each with several
messages and statuses. Every one of them becomes an event, in body order (Chatwoot's own
channel reads only the first and loses the rest). Changes meant for another phone number of the
same business account are skipped, not failed. Shapes Meta never sends raise
:class:`ParseError` (the webhook answers 400); message types we cannot show become
``unsupported`` events, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.relay.messages import (
    InboundMessage,
    Location,
    Media,
    ParsedBody,
    ParseError,
    SharedContact,
    StatusName,
    StatusUpdate,
)
from app.relay.phones import canonical_phone, phone_aliases

BUSINESS_ACCOUNT = "whatsapp_business_account"
_MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
_STATUSES: dict[str, StatusName] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
}


def parse_cloud_webhook(body: Any, phone_number_id: str) -> ParsedBody:
    """Every message and status in ``body`` addressed to ``phone_number_id``, in order."""
    obj = _obj(body, "body")
    parsed = ParsedBody()
    kind = obj.get("object", BUSINESS_ACCOUNT)
    if kind != BUSINESS_ACCOUNT:
        parsed.ignored.append(f"object {str(kind)[:40]!r} is not {BUSINESS_ACCOUNT}")
        return parsed
    for e, entry in enumerate(_list(obj.get("entry"), "entry")):
        where = f"entry[{e}]"
        changes = _list(_obj(entry, where).get("changes"), f"{where}.changes")
        for c, change in enumerate(changes):
            _parse_change(change, f"{where}.changes[{c}]", phone_number_id, parsed)
    return parsed


def _parse_change(change: Any, where: str, phone_number_id: str, parsed: ParsedBody) -> None:
    obj = _obj(change, where)
    field = _str(obj.get("field"), f"{where}.field")
    if field != "messages":
        parsed.ignored.append(f"{where}: field {field[:40]!r} ignored")
        return
    value = _obj(obj.get("value"), f"{where}.value")
    metadata = _obj(value.get("metadata"), f"{where}.value.metadata")
    target = _str(metadata.get("phone_number_id"), f"{where}.value.metadata.phone_number_id")
    if target != phone_number_id:
        parsed.ignored.append(f"{where}: for phone_number_id {target[:40]}, skipped")
        return
    where = f"{where}.value"
    contacts = [_obj(c, f"{where}.contacts[]") for c in _list_or_empty(value, "contacts", where)]
    for m, message in enumerate(_list_or_empty(value, "messages", where)):
        parsed.events.append(_parse_message(message, contacts, f"{where}.messages[{m}]"))
    for s, status in enumerate(_list_or_empty(value, "statuses", where)):
        event = _parse_status(status, f"{where}.statuses[{s}]")
        if isinstance(event, StatusUpdate):
            parsed.events.append(event)
        else:
            parsed.ignored.append(event)
    for r, error in enumerate(_list_or_empty(value, "errors", where)):
        reason = _error_text(_obj(error, f"{where}.errors[{r}]"))
        parsed.ignored.append(f"{where}.errors[{r}]: {reason}")


def _parse_message(message: Any, contacts: list[dict[str, Any]], where: str) -> InboundMessage:
    obj = _obj(message, where)
    message_id = _str(obj.get("id"), f"{where}.id")
    sender = _str(obj.get("from"), f"{where}.from")
    mtype = _str(obj.get("type"), f"{where}.type")
    try:
        chat_id = canonical_phone(sender)
        aliases = phone_aliases(sender)
    except ValueError:
        raise ParseError(f"{where}.from is not a phone number") from None
    name = _profile_name(contacts, sender)
    fields = _content(obj, mtype, where)
    fields.update(_context(obj, fields, where))
    return InboundMessage(
        message_id=message_id,
        chat_id=chat_id,
        sender_id=chat_id,
        chat_name=name,
        sender_name=name,
        timestamp=_timestamp(obj.get("timestamp"), f"{where}.timestamp"),
        chat_aliases=aliases,
        **fields,
    )


def _profile_name(contacts: list[dict[str, Any]], wa_id: str) -> str | None:
    """The WhatsApp profile name of ``wa_id`` (or of the only contact Meta listed)."""
    match = next((c for c in contacts if c.get("wa_id") == wa_id), None)
    if match is None and contacts:
        match = contacts[0]
    profile = match.get("profile") if match else None
    name = profile.get("name") if isinstance(profile, dict) else None
    return name if isinstance(name, str) and name.strip() else None


def _content(obj: dict[str, Any], mtype: str, where: str) -> dict[str, Any]:
    """The kind-specific fields of an :class:`InboundMessage`."""
    known = mtype in _PARSERS or mtype in _MEDIA_TYPES or mtype == "contacts"
    if not known or mtype == "unsupported":
        return {"kind": "unsupported", "unsupported_reason": _unsupported_reason(obj, mtype)}
    if mtype == "contacts":
        return _contacts(obj.get(mtype), f"{where}.contacts")
    payload = _obj(obj.get(mtype), f"{where}.{mtype}")
    if mtype in _MEDIA_TYPES:
        return _media(payload, mtype, f"{where}.{mtype}")
    return _PARSERS[mtype](payload, f"{where}.{mtype}")


def _text(payload: dict[str, Any], where: str) -> dict[str, Any]:
    body = _opt_str(payload, "body", where)
    if body is None:
        raise ParseError(f"{where}.body is missing")
    return {"kind": "text", "text": body}


def _media(payload: dict[str, Any], mtype: str, where: str) -> dict[str, Any]:
    media = Media(
        mime_type=_opt_str(payload, "mime_type", where),
        media_id=_opt_str(payload, "id", where),
        url=_opt_str(payload, "url", where),
        filename=_opt_str(payload, "filename", where) if mtype == "document" else None,
        voice=mtype == "audio" and payload.get("voice") is True,
        sha256=_opt_str(payload, "sha256", where),
    )
    if media.media_id is None and media.url is None:
        raise ParseError(f"{where} has neither id nor url")
    return {"kind": mtype, "media": media, "text": _opt_str(payload, "caption", where)}


def _location(payload: dict[str, Any], where: str) -> dict[str, Any]:
    location = Location(
        latitude=_number(payload.get("latitude"), f"{where}.latitude"),
        longitude=_number(payload.get("longitude"), f"{where}.longitude"),
        name=_opt_str(payload, "name", where),
        address=_opt_str(payload, "address", where),
    )
    return {"kind": "location", "location": location}


def _contacts(payload: Any, where: str) -> dict[str, Any]:
    cards = _list(payload, where)
    return {
        "kind": "contacts",
        "contacts": tuple(_contact(_obj(c, f"{where}[{i}]")) for i, c in enumerate(cards)),
    }


def _contact(card: dict[str, Any]) -> SharedContact:
    phones = tuple(
        str(p.get("phone") or ("+" + str(p.get("wa_id")) if p.get("wa_id") else ""))
        for p in _dicts(card.get("phones"))
    )
    emails = tuple(str(e["email"]) for e in _dicts(card.get("emails")) if e.get("email"))
    org = card.get("org")
    company = org.get("company") if isinstance(org, dict) else None
    return SharedContact(
        name=_contact_name(card.get("name"), phones),
        phones=tuple(p for p in phones if p),
        emails=emails,
        organization=company if isinstance(company, str) and company else None,
    )


def _contact_name(name: Any, phones: tuple[str, ...]) -> str:
    if isinstance(name, dict):
        formatted = name.get("formatted_name")
        if isinstance(formatted, str) and formatted.strip():
            return formatted.strip()
        parts = [name.get(k) for k in ("prefix", "first_name", "middle_name", "last_name")]
        joined = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
        if joined:
            return joined
    return next((p for p in phones if p), "Unnamed contact")


def _interactive(payload: dict[str, Any], where: str) -> dict[str, Any]:
    itype = _str(payload.get("type"), f"{where}.type")
    if itype not in ("button_reply", "list_reply", "nfm_reply"):
        return {"kind": "unsupported", "unsupported_reason": f"interactive {itype[:40]}"}
    reply = _obj(payload.get(itype), f"{where}.{itype}")
    if itype == "nfm_reply":
        parts = [_opt_str(reply, k, where) for k in ("body", "response_json")]
    else:
        parts = [_str(reply.get("title"), f"{where}.{itype}.title")]
        parts.append(_opt_str(reply, "description", where))
    return {"kind": "interactive", "text": "\n".join(p for p in parts if p)}


def _button(payload: dict[str, Any], where: str) -> dict[str, Any]:
    label = _opt_str(payload, "text", where) or _opt_str(payload, "payload", where)
    if label is None:
        raise ParseError(f"{where} has neither text nor payload")
    return {"kind": "button", "text": label}


def _reaction(payload: dict[str, Any], where: str) -> dict[str, Any]:
    """An empty (or absent) emoji means the customer removed their reaction."""
    return {
        "kind": "reaction",
        "reaction_to": _str(payload.get("message_id"), f"{where}.message_id"),
        "reaction_emoji": _opt_str(payload, "emoji", where) or "",
    }


def _system(payload: dict[str, Any], where: str) -> dict[str, Any]:
    text = _opt_str(payload, "body", where) or _opt_str(payload, "type", where) or "system"
    return {"kind": "system", "text": text}


def _order(payload: dict[str, Any], where: str) -> dict[str, Any]:
    items = [
        f"{i.get('quantity')} x {i.get('product_retailer_id')}"
        for i in _dicts(payload.get("product_items"))
    ]
    reason = "order" + (f": {', '.join(items)}" if items else "")
    return {"kind": "unsupported", "unsupported_reason": reason}


_PARSERS: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    "text": _text,
    "location": _location,
    "interactive": _interactive,
    "button": _button,
    "reaction": _reaction,
    "system": _system,
    "order": _order,
}


def _context(obj: dict[str, Any], fields: dict[str, Any], where: str) -> dict[str, Any]:
    """``quoted_id`` from a reply's context; a product inquiry notes the product instead."""
    context = obj.get("context")
    if context is None or fields["kind"] == "reaction":
        return {}
    context = _obj(context, f"{where}.context")
    product = context.get("referred_product")
    if isinstance(product, dict):
        ref = f"(product: {product.get('catalog_id')}/{product.get('product_retailer_id')})"
        text = fields.get("text")
        return {"text": f"{text} {ref}" if text else ref}
    quoted = context.get("id")
    return {"quoted_id": quoted} if isinstance(quoted, str) and quoted else {}


def _unsupported_reason(obj: dict[str, Any], mtype: str) -> str:
    errors = obj.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return _error_text(errors[0])
    return f"message type {mtype[:40]}"


def _error_text(error: dict[str, Any]) -> str:
    """``"<code>: <title> (<details>)"`` from one of Meta's error objects."""
    title = error.get("title") or error.get("message") or "unknown error"
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    text = f"{error.get('code', '?')}: {title}"
    return f"{text} ({details})" if details and details != title else text


def _parse_status(status: Any, where: str) -> StatusUpdate | str:
    """A :class:`StatusUpdate`, or why the status is ignored."""
    obj = _obj(status, where)
    message_id = _str(obj.get("id"), f"{where}.id")
    name = _str(obj.get("status"), f"{where}.status")
    if name not in _STATUSES:
        return f"{where}: status {name[:40]!r} of {message_id} ignored"
    try:
        recipient = canonical_phone(_str(obj.get("recipient_id"), f"{where}.recipient_id"))
    except ValueError:
        raise ParseError(f"{where}.recipient_id is not a phone number") from None
    code, title = None, None
    errors = obj.get("errors")
    if name == "failed" and isinstance(errors, list) and errors and isinstance(errors[0], dict):
        raw_code = errors[0].get("code")
        code = raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
        raw_title = errors[0].get("title") or errors[0].get("message")
        title = raw_title if isinstance(raw_title, str) else None
    return StatusUpdate(
        message_id=message_id,
        status=_STATUSES[name],
        recipient_id=recipient,
        timestamp=_timestamp(obj.get("timestamp"), f"{where}.timestamp"),
        error_code=code,
        error_title=title,
    )


# Shape checks: each raises ParseError naming the place, never echoing values.


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParseError(f"{where} is not an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ParseError(f"{where} is not a list")
    return value


def _list_or_empty(obj: dict[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key)
    return [] if value is None else _list(value, f"{where}.{key}")


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The objects of an optional list (anything else in it is not ours to judge)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ParseError(f"{where} is missing or not a string")
    return value


def _opt_str(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ParseError(f"{where}.{key} is not a string")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParseError(f"{where} is not a number")
    return float(value)


def _timestamp(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise ParseError(f"{where} is not a unix timestamp")
