"""Parse a RyzeAPI-compatible gateway webhook into normalized events.

The envelope is ``{"event", "data", "instanceData": {"baseUrl", "instance", "token"}}``.
``message.exchange`` becomes one :class:`InboundMessage` per message record
(:mod:`app.relay.inbound.gateway_messages`), ``message.status`` one :class:`StatusUpdate` per
message id it acknowledges (:mod:`app.relay.inbound.gateway_status`). Every other event is
reported in ``ParsedBody.ignored``. The field names are RyzeAPI's (see
``tests/fakes/RYZEAPI_NOTES.md``).

Lenient at the door (DESIGN.md invariant 9): :class:`ParseError` (the webhook's 400) only when
the body is not a JSON object, has no usable ``event`` string, or its ``event`` disagrees with
the URL's ``/:event``. Inside a valid envelope every record gives exactly one event (a status
record: one per message id) or exactly one note in ``ignored``; a message the parser cannot
classify is relayed as ``unsupported``, never dropped.
"""

from __future__ import annotations

from typing import Any

from app.relay.inbound.gateway_messages import exchange_records, parse_exchange_record
from app.relay.inbound.gateway_status import parse_status_record, status_records
from app.relay.messages import ParsedBody, ParseError

EXCHANGE = "message.exchange"
STATUS = "message.status"

__all__ = ["EXCHANGE", "STATUS", "envelope_token", "parse_gateway_webhook"]


def envelope_token(body: Any) -> str | None:
    """``instanceData.token``: the gateway instance's own token, for the webhook to verify."""
    instance_data = body.get("instanceData") if isinstance(body, dict) else None
    token = instance_data.get("token") if isinstance(instance_data, dict) else None
    return token if isinstance(token, str) and token else None


def parse_gateway_webhook(body: Any, path_event: str | None) -> ParsedBody:
    """Normalize one gateway webhook body.

    ``path_event`` is the ``/:event`` suffix the gateway appends when ``byEvents`` is on.
    Raises :class:`ParseError` only for a body that is not a gateway webhook at all.
    """
    if not isinstance(body, dict):
        raise ParseError("body is not a JSON object")
    event = body.get("event")
    if not isinstance(event, str) or not event.strip():
        raise ParseError("event is missing")
    if path_event is not None and path_event != event:
        raise ParseError(f"URL event {path_event[:60]!r} does not match body event {event[:60]!r}")
    parsed = ParsedBody()
    if event == EXCHANGE:
        for record in exchange_records(body.get("data")):
            message = parse_exchange_record(record)
            if isinstance(message, str):
                parsed.ignored.append(message)
            else:
                parsed.events.append(message)
    elif event == STATUS:
        for record in status_records(body.get("data")):
            updates = parse_status_record(record)
            if isinstance(updates, str):
                parsed.ignored.append(updates)
            else:
                parsed.events.extend(updates)
    else:
        parsed.ignored.append(f"{event[:60]}: not relayed")
    return parsed
