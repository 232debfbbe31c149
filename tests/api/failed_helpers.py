"""Stored relay events for the failed-events tests: an integration row and events in any
state, written straight to the store (no Chatwoot, no worker)."""

from __future__ import annotations

from typing import Any

from app.store.db import database
from app.store.ids import new_id
from app.store.models import (
    EVENT_FAILED,
    EVENT_PENDING,
    STATE_ERROR,
    ChatwootIntegration,
    Instance,
    RelayEvent,
)

PHONE = "5511987654321"


def seed_integration(instance_name: str) -> str:
    """An integration row for the instance (state ``error``: ``list`` then skips its live
    check, and nothing here needs Chatwoot)."""
    with database.connection_context():
        instance = Instance.get(Instance.name == instance_name)
        integration = ChatwootIntegration(
            id=new_id("int"),
            instance=instance,
            chatwoot_base_url="https://chatwoot.example.com",
            chatwoot_account_id=1,
            chatwoot_inbox_id=7,
            chatwoot_inbox_name="WhatsApp",
            state=STATE_ERROR,
        )
        integration.set_secret("chatwoot_api_token", "cw-token")
        integration.set_secret("webhook_secret", "hook-secret")
        integration.save(force_insert=True)
        return str(integration.id)


def add_event(
    integration_id: str,
    n: int,
    status: str = EVENT_FAILED,
    direction: str = "inbound",
    chat_key: str = PHONE,
    **fields: Any,
) -> int:
    values: dict[str, Any] = {
        "kind": "text",
        "payload": '{"secret content": "never listed"}',
        "last_error": f"reason {n}" if status == EVENT_FAILED else "",
        "attempts": 1 if status != EVENT_PENDING else 0,
        **fields,
    }
    with database.connection_context():
        event = RelayEvent.create(
            integration=integration_id,
            direction=direction,
            natural_key=f"msg:{n}",
            chat_key=chat_key,
            status=status,
            **values,
        )
        return int(event.id)
