"""A gateway's presence webhook read as "is the customer typing?" (shapes in the module's doc)."""

from __future__ import annotations

from typing import Any

import pytest

from app.relay.inbound.gateway_presence import CustomerPresence, parse_gateway_presence
from tests.fakes import gateway_samples as samples

CUSTOMER, LID, GROUP = samples.CUSTOMER, samples.CUSTOMER_LID, samples.GROUP


def body(event: str, data: Any) -> dict[str, Any]:
    return samples.webhook_body(event, data)


@pytest.mark.parametrize(
    ("state", "typing"),
    [("composing", True), ("recording", True), ("TYPING", True), ("paused", False)],
)
def test_whatsmeow_chat_presence(state: str, typing: bool) -> None:
    data = {
        "chat": {"jid": f"{CUSTOMER}@s.whatsapp.net", "lid": LID},
        "sender": {"jid": f"{CUSTOMER}@s.whatsapp.net"},
        "state": state,
        "isFromMe": False,
    }

    found = parse_gateway_presence(body("chat.presence", data))

    assert found is not None
    assert found.typing is typing
    assert found.identifiers[0] == CUSTOMER
    assert LID in found.identifiers
    assert samples.CUSTOMER_12 in found.identifiers  # the number without the 9th digit


def test_evolution_presence_update_by_lid() -> None:
    data = {"id": LID, "presences": {LID: {"lastKnownPresence": "composing"}}}

    assert parse_gateway_presence(body("presence.update", data)) == CustomerPresence((LID,), True)


def test_a_group_is_named_by_its_jid() -> None:
    data = {"chat": GROUP, "sender": f"{CUSTOMER}@s.whatsapp.net", "presence": "composing"}

    assert parse_gateway_presence(body("presence", data)) == CustomerPresence((GROUP,), True)


@pytest.mark.parametrize(
    "data",
    [
        {"chat": {"jid": f"{CUSTOMER}@s.whatsapp.net"}, "state": "composing", "isFromMe": True},
        {"chat": {"jid": f"{CUSTOMER}@s.whatsapp.net"}, "state": "composing", "fromMe": True},
        {"chat": {"jid": f"{CUSTOMER}@s.whatsapp.net"}, "state": "online-ish"},
        {"chat": {"jid": f"{CUSTOMER}@s.whatsapp.net"}},
        {"state": "composing"},
        {"chat": {"jid": "not a jid"}, "state": "composing"},
        {"id": LID, "presences": {LID: "composing"}},
        "composing",
        None,
    ],
)
def test_unreadable_or_own_presence_is_none(data: Any) -> None:
    assert parse_gateway_presence(body("chat.presence", data)) is None


@pytest.mark.parametrize("candidate", [body("message.exchange", samples.text_data()), [], "x", {}])
def test_other_bodies_are_not_presence(candidate: Any) -> None:
    assert parse_gateway_presence(candidate) is None
