"""``get_where`` finds exactly what ``get_or_none`` finds, on both databases, whatever the
field types (foreign keys by row or id, text, integers, NULL-able columns)."""

from __future__ import annotations

from app.config import Settings
from app.management.accounts import create_account
from app.store.db import database
from app.store.models import Account, ChatLink, ChatwootIntegration, Instance
from app.store.prepared import get_where


def _integration(account: Account, suffix: str) -> ChatwootIntegration:
    instance = Instance.create(
        id=f"ins_{suffix}",
        account=account,
        name=f"n{suffix}",
        token_hash=suffix * 64,
        provider="cloud",
    )
    integration: ChatwootIntegration = ChatwootIntegration.create(
        id=f"int_{suffix}",
        instance=instance,
        chatwoot_base_url="https://cw.example.com",
        chatwoot_account_id=1,
        chatwoot_api_token="t",
        chatwoot_inbox_name="Inbox",
        webhook_secret="s",
    )
    return integration


def test_finds_what_get_or_none_finds(store_settings: Settings) -> None:
    with database.connection_context():
        account, _ = create_account("Acme")
        one, two = _integration(account, "a"), _integration(account, "b")
        ChatLink.create(integration=one, chat_key="5511999990000", contact_id=7)
        ChatLink.create(integration=two, chat_key="5511999990000", contact_id=8)
        for integration in (one, two, one.id):
            found = get_where(ChatLink, integration=integration, chat_key="5511999990000")
            expected = ChatLink.get_or_none(
                (ChatLink.integration == integration) & (ChatLink.chat_key == "5511999990000")
            )
            assert found is not None and expected is not None
            assert found.__data__ == expected.__data__
        assert get_where(ChatLink, integration=one, chat_key="other") is None
        by_contact = get_where(ChatLink, integration=one, contact_id=7)
        assert by_contact is not None and by_contact.chat_key == "5511999990000"
        assert get_where(ChatLink, integration=one, contact_id=8) is None
        second = get_where(ChatwootIntegration, id="int_b")
        assert second is not None and second.__data__["instance"] == "ins_b"
