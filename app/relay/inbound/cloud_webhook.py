"""WhatsApp Cloud API (Meta) webhook body ▸ normalized events.

Meta batches: one body may hold several entries, each with several changes, each with several
messages and statuses. Every one of them becomes an event, in body order (Chatwoot's own
channel reads only the first and loses the rest). Changes meant for another phone number of the
same business account are skipped, not failed.

Lenient at the door (design invariant 9): :class:`ParseError` (answered 400) only when the body
is not a JSON object or has no ``entry`` list, i.e. is no WhatsApp body at all. Anything else
that cannot be read costs only itself: a malformed entry, change or status becomes a note in
``ignored`` naming its place (never a value: it may be content or a secret); a malformed message
becomes an ``unsupported`` placeholder naming what arrived. Every element of a ``messages``,
``message_echoes`` or ``statuses`` list addressed to us ends as exactly one event or one note.
"""

from __future__ import annotations

import re
from typing import Any

from app.relay.inbound.cloud_content import content, quote
from app.relay.inbound.cloud_identity import RECIPIENT, SENDER, Identity, person, system_identity
from app.relay.inbound.cloud_shapes import (
    Unreadable,
    dicts,
    error_code,
    error_text,
    first_error,
    list_or_empty,
    message_id_at,
    obj,
    opt_str,
    req_list,
    req_str,
    stable_id,
    text_of,
    timestamp,
)
from app.relay.messages import (
    Direction,
    InboundMessage,
    ParsedBody,
    ParseError,
    StatusName,
    StatusUpdate,
)
from app.relay.phones import canonical_phone, is_bsuid

BUSINESS_ACCOUNT = "whatsapp_business_account"
MESSAGES = "messages"
ECHOES = "smb_message_echoes"
TEMPLATE_STATUS_UPDATE = "message_template_status_update"
_BUSINESS_ACCOUNT_ID = re.compile(r"[0-9]{1,32}")
_NOTED_FIELDS = {
    "history": "history is not imported",
    "smb_app_state_sync": "contact book changes of the Business app are not relayed",
    TEMPLATE_STATUS_UPDATE: "the business account's templates are synced again",
}
_STATUSES: dict[str, StatusName] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
}


def parse_cloud_webhook(body: Any, phone_number_id: str) -> ParsedBody:
    """Every message and status in ``body`` addressed to ``phone_number_id``, in order."""
    if not isinstance(body, dict):
        raise ParseError("body is not an object")
    parsed = ParsedBody()
    kind = body.get("object", BUSINESS_ACCOUNT)
    if kind != BUSINESS_ACCOUNT:
        shown = repr(kind[:40]) if isinstance(kind, str) else "of another shape"
        parsed.ignored.append(f"object {shown} is not {BUSINESS_ACCOUNT}")
        return parsed
    entries = body.get("entry")
    if not isinstance(entries, list):
        raise ParseError("entry is not a list")
    for e, entry in enumerate(entries):
        try:
            changes = req_list(obj(entry, f"entry[{e}]").get("changes"), f"entry[{e}].changes")
        except Unreadable as gap:
            parsed.ignored.append(f"{gap}, ignored")
            continue
        for c, change in enumerate(changes):
            where = f"entry[{e}].changes[{c}]"
            _note_template_update(entry, change, parsed)
            try:
                _parse_change(change, where, phone_number_id, parsed)
            except Unreadable as gap:
                parsed.ignored.append(f"{gap}, ignored")
    return parsed


def _note_template_update(entry: Any, change: Any, parsed: ParsedBody) -> None:
    """A ``message_template_status_update`` names the business account (``entry[].id``, the
    WABA id) whose templates changed: noted once per body, so they are synced again."""
    if not isinstance(change, dict) or change.get("field") != TEMPLATE_STATUS_UPDATE:
        return
    account = entry.get("id") if isinstance(entry, dict) else None
    if isinstance(account, int) and not isinstance(account, bool):
        account = str(account)
    if not isinstance(account, str) or not _BUSINESS_ACCOUNT_ID.fullmatch(account.strip()):
        parsed.ignored.append("template status update without a usable business account id")
        return
    if account.strip() not in parsed.template_accounts:
        parsed.template_accounts.append(account.strip())


def _parse_change(change: Any, where: str, phone_number_id: str, parsed: ParsedBody) -> None:
    """One change; an :class:`Unreadable` from here skips only the parts not yet walked."""
    field = req_str(obj(change, where).get("field"), f"{where}.field")
    if field not in (MESSAGES, ECHOES):
        reason = _NOTED_FIELDS.get(field)
        parsed.ignored.append(
            f"{where}: field {field[:40]!r} ignored" + (f" ({reason})" if reason else "")
        )
        return
    value = obj(change.get("value"), f"{where}.value")
    metadata = obj(value.get("metadata"), f"{where}.value.metadata")
    target = req_str(metadata.get("phone_number_id"), f"{where}.value.metadata.phone_number_id")
    if target != phone_number_id:
        parsed.ignored.append(f"{where}: for phone_number_id {target[:40]}, skipped")
        return
    _walk_value(field, value, f"{where}.value", parsed)


def _walk_value(field: str, value: dict[str, Any], where: str, parsed: ParsedBody) -> None:
    """Messages (or echoes), statuses and value-level errors of a change addressed to us."""
    contacts = _contacts(value, where, parsed)
    if field == ECHOES:
        for m, echo in enumerate(_elements(value, "message_echoes", where, parsed)):
            _add(parsed, _parse_message(echo, contacts, f"{where}.message_echoes[{m}]", "outgoing"))
    else:
        for m, message in enumerate(_elements(value, "messages", where, parsed)):
            _add(parsed, _parse_message(message, contacts, f"{where}.messages[{m}]", "incoming"))
        for s, status in enumerate(_elements(value, "statuses", where, parsed)):
            _add(parsed, _parse_status(status, f"{where}.statuses[{s}]"))
    for r, error in enumerate(_elements(value, "errors", where, parsed)):
        reason = error_text(error) if isinstance(error, dict) else "not an object, ignored"
        parsed.ignored.append(f"{where}.errors[{r}]: {reason}")


def _add(parsed: ParsedBody, outcome: InboundMessage | StatusUpdate | str) -> None:
    if isinstance(outcome, str):
        parsed.ignored.append(outcome)
    else:
        parsed.events.append(outcome)


def _elements(value: dict[str, Any], key: str, where: str, parsed: ParsedBody) -> list[Any]:
    """``value[key]`` as a list; anything else is noted once and contributes nothing."""
    try:
        return list_or_empty(value, key, where)
    except Unreadable as gap:
        parsed.ignored.append(f"{gap}, ignored")
        return []


def _contacts(value: dict[str, Any], where: str, parsed: ParsedBody) -> list[dict[str, Any]]:
    return dicts(_elements(value, "contacts", where, parsed))


def _parse_message(
    message: Any, contacts: list[dict[str, Any]], where: str, direction: Direction
) -> InboundMessage | str:
    """An event, or (for a message that names no customer) the note saying so."""
    if not isinstance(message, dict):
        return f"{where}: not an object, ignored"
    identity = _identity(message, contacts, direction)
    if identity is None:
        who = "sender" if direction == "incoming" else "recipient"
        return f"{where}: message without {who}, ignored"
    fields = content(message)
    fields.update(quote(message, fields))
    own_number = _own_number(message) if direction == "outgoing" else None
    return InboundMessage(
        message_id=message_id_at(message, "id") or stable_id(message, where),
        chat_id=identity.chat_id,
        sender_id=own_number or identity.chat_id,
        direction=direction,
        chat_name=identity.name,
        sender_name=identity.name if direction == "incoming" else None,
        timestamp=timestamp(message.get("timestamp")),
        chat_aliases=identity.aliases,
        reply_address=identity.reply_address,
        username=identity.username,
        **fields,
    )


def _identity(
    message: dict[str, Any], contacts: list[dict[str, Any]], direction: Direction
) -> Identity | None:
    if direction == "outgoing":
        return person(message, contacts, RECIPIENT)
    system = message.get("system")
    if message.get("type") == "system" and isinstance(system, dict):
        return system_identity(message, system, contacts)
    return person(message, contacts, SENDER)


def _own_number(echo: dict[str, Any]) -> str | None:
    """The business's own number, the sender of an echo."""
    raw = opt_str(echo, "from")
    try:
        return canonical_phone(raw) if raw is not None else None
    except ValueError:
        return None


def _parse_status(status: Any, where: str) -> StatusUpdate | str:
    """A :class:`StatusUpdate`, or why the status is ignored."""
    if not isinstance(status, dict):
        return f"{where}: not an object, ignored"
    message_id = message_id_at(status, "id")
    if message_id is None:
        return f"{where}: status without a usable id, ignored"
    name = status.get("status")
    if not isinstance(name, str) or name not in _STATUSES:
        shown = repr(name[:40]) if isinstance(name, str) else "of another shape"
        return f"{where}: status {shown} of {message_id} ignored"
    code, title = None, None
    error = first_error(status)
    if name == "failed" and error is not None:
        code = error_code(error)
        title = text_of(error, "title") or text_of(error, "message") or text_of(error, "details")
    return StatusUpdate(
        message_id=message_id,
        status=_STATUSES[name],
        recipient_id=_recipient(status),
        timestamp=timestamp(status.get("timestamp")),
        error_code=code,
        error_title=title,
    )


def _recipient(status: dict[str, Any]) -> str:
    """The customer's canonical phone, else their BSUID, else ``""`` (matching is by id)."""
    for key in ("recipient_id", "recipient_user_id"):
        raw = opt_str(status, key)
        if raw is None:
            continue
        try:
            return canonical_phone(raw)
        except ValueError:
            if is_bsuid(raw):
                return raw.strip()
    return ""
