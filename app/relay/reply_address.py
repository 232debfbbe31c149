"""Where a reply to a chat goes: the identifier the customer last wrote from."""

from __future__ import annotations

from app.store.models import ChatLink, ChatwootIntegration
from app.store.prepared import values_where


def reply_address(integration: ChatwootIntegration, chat_key: str) -> str:
    """The chat's ``reply_address`` (a phone number, or a BSUID when the customer wrote
    without one), else the chat key itself (the contact inbox's source id). One column read:
    it runs before every reply."""
    addresses = values_where(ChatLink, "reply_address", integration=integration, chat_key=chat_key)
    return str(addresses[0]) if addresses and addresses[0] else chat_key
