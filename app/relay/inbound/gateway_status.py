"""Gateway ``message.status`` ▸ one :class:`StatusUpdate` per acknowledged message id, or a note.

``data`` is one status record, a list of records, or an object holding a list of records under
``statuses``/``receipts``/``records``/``items``/``data``/``messages``. A record is spelled as
(see ``tests/fakes/RYZEAPI_NOTES.md``):

- a whatsmeow receipt: ``{"messageIds": [...], "type": "read", "chat": {...}, "sender": {...},
  "timestamp": ...}`` (a single ``messageId``/``id``/``message.id`` too);
- a RyzeAPI chat-status record: ``{"message_id", "status": "READ", "status_code": 4,
  "chat_jid": "5511...@s.whatsapp.net"}`` (names in any case, codes as in the status endpoint).

Nothing here raises: a record without a message id or with a receipt we do not relay (own
device, retry, pending...) becomes one note in ``ParsedBody.ignored``.
"""

from __future__ import annotations

from typing import Any

from app.relay.inbound.gateway_fields import (
    as_id,
    describe,
    first,
    group_form,
    ident,
    integer,
    obj,
    person_id,
    text,
    timestamp,
)
from app.relay.messages import StatusName, StatusUpdate
from app.relay.phones import is_group_jid

_RECEIPTS: dict[str, StatusName] = {
    "delivered": "delivered",
    "delivery": "delivered",
    "delivery_ack": "delivered",
    "read": "read",
    "played": "read",
    "sent": "sent",
    "server": "sent",
    "server_ack": "sent",
    "server_error": "failed",
    "error": "failed",
    "failed": "failed",
}
# the status endpoint's numeric codes: pending 0, sent 1, delivered 2, received 3, read 4,
# played 5, error -1 (pending and received are not ticks we show)
_RECEIPT_CODES: dict[int, StatusName] = {
    1: "sent",
    2: "delivered",
    4: "read",
    5: "read",
    -1: "failed",
}
_RECORD_LISTS = ("statuses", "receipts", "records", "items", "data", "messages")
_ID_LISTS = ("messageIds", "message_ids", "ids", "messageIDs")
_ID_KEYS = ("messageId", "message_id", "id", "messageID", "msgId")
_NAME_KEYS = ("type", "status", "receiptType", "receipt_type", "state")
_CODE_KEYS = ("status_code", "statusCode")
_CHAT_KEYS = ("chat_jid", "chatJid", "remoteJid", "jid", "from")
_MAX_NOTE_IDS = 5
# a chat-status record's ``direction``: ``received`` marks the customer's message (not a tick)
_RECEIVED = frozenset({"received", "incoming", "inbound"})


def status_records(data: Any) -> list[Any]:
    """The status records of one ``message.status`` ``data`` (at least one, maybe unusable)."""
    if isinstance(data, list) and data:
        return data
    if isinstance(data, dict):
        for key in _RECORD_LISTS:
            held = data.get(key)
            if isinstance(held, list) and any(isinstance(r, dict) for r in held):
                return held
    return [data]


def parse_status_record(record: Any) -> list[StatusUpdate] | str:
    """One record ▸ a tick per message id it covers, or the note saying why none."""
    if not isinstance(record, dict):
        return f"message.status: the record is not an object ({describe(record)})"
    ids = _status_ids(record)
    if not ids:
        return f"message.status without a message id: {describe(record)}"
    shown = ",".join(ids[:_MAX_NOTE_IDS]) + ("..." if len(ids) > _MAX_NOTE_IDS else "")
    if text(record.get("direction")).lower() in _RECEIVED:
        return f"{shown}: status of a received message not relayed"
    status, name = _receipt(record)
    if status is None:
        return f"{shown}: receipt {name!r} not relayed"
    recipient = _status_recipient(record)
    code, title = _status_error(record, name) if status == "failed" else (None, None)
    when = timestamp(record.get("timestamp"))
    return [
        StatusUpdate(
            message_id=mid,
            status=status,
            recipient_id=recipient,
            timestamp=when,
            error_code=code,
            error_title=title,
        )
        for mid in ids
    ]


def _status_ids(record: dict[str, Any]) -> list[str]:
    message = obj(record, "message")
    for source in (record, message):
        for key in _ID_LISTS:
            values = source.get(key)
            if isinstance(values, list):
                ids = list(dict.fromkeys(s for s in (as_id(v) for v in values) if s))
                if ids:
                    return ids
    single = (
        ident(record, *_ID_KEYS) or ident(message, *_ID_KEYS) or ident(obj(record, "key"), "id")
    )
    return [single] if single else []


def _receipt_of(raw: Any) -> StatusName | None:
    code = integer(raw)
    if code is not None:
        return _RECEIPT_CODES.get(code)
    return _RECEIPTS.get(text(raw).lower()) if isinstance(raw, str) else None


def _receipt(record: dict[str, Any]) -> tuple[StatusName | None, Any]:
    """The tick and the name it was read from; ``(None, name)`` for a receipt not relayed.

    The first name or code that maps to a tick wins. A receipt with no name at all (absent or
    ``""``) is whatsmeow's plain delivery receipt.
    """
    unmapped: list[Any] = []
    for source in (record, obj(record, "message")):
        named = [source.get(k) for k in _NAME_KEYS]
        coded = [source.get(k) for k in _CODE_KEYS]
        for raw in [*named, *coded]:
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                continue
            status = _receipt_of(raw)
            if status is not None:
                return status, raw
            unmapped.append(raw)
    if not unmapped:
        return "delivered", ""
    first_raw = unmapped[0]
    return None, first_raw[:40] if isinstance(first_raw, str) else describe(first_raw)


def _status_recipient(record: dict[str, Any]) -> str:
    """The chat of the acknowledged message: group JID, else the customer's phone (or LID)."""
    chat = record.get("chat")
    chat = dict(chat) if isinstance(chat, dict) else {"jid": text(chat)}
    if not text(chat.get("jid")):
        chat["jid"] = first(record, *_CHAT_KEYS)
    jid = text(chat.get("jid"))
    if is_group_jid(jid) or text(chat.get("type")).lower() == "group":
        return group_form(jid) or ""
    return person_id(chat) or person_id(obj(record, "sender"))


def _status_error(record: dict[str, Any], name: Any) -> tuple[int | None, str | None]:
    error = record.get("error")
    detail = error if isinstance(error, dict) else {"message": error}
    code = integer(detail.get("code", record.get("errorCode")))
    title = first(detail, "message", "title") or first(record, "reason", "errorMessage")
    return code, title[:300] or text(name)[:40] or None
