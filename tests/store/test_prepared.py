"""The prepared statements of :mod:`app.store.prepared` do exactly what peewee's queries do, on
both databases, whatever the field types (foreign keys by row or id, text, integers, NULL-able
columns)."""

from __future__ import annotations

from app.config import Settings
from app.management.accounts import create_account
from app.store.db import database
from app.store.models import Account, ChatLink, ChatwootIntegration, Instance, MessageMap
from app.store.prepared import (
    exists_where,
    get_where,
    insert_ignore,
    oldest_where,
    update_where,
    values_where,
)


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


def test_oldest_where_reads_what_an_ordered_limited_select_reads(
    store_settings: Settings,
) -> None:
    with database.connection_context():
        account, _ = create_account("Acme")
        one, two = _integration(account, "a"), _integration(account, "b")
        for n in (5, 1, 4, 2, 3):
            ChatLink.create(integration=one, chat_key=f"55119{n}", contact_id=n % 2)
        ChatLink.create(integration=two, chat_key="551190", contact_id=1)
        found = oldest_where(ChatLink, 2, integration=one, contact_id=1)
        expected = list(
            ChatLink.select()
            .where((ChatLink.integration == one) & (ChatLink.contact_id == 1))
            .order_by(ChatLink._meta.primary_key)
            .limit(2)
        )
        assert [row.__data__ for row in found] == [row.__data__ for row in expected]
        assert [row.chat_key for row in found] == ["551195", "551191"]
        assert not any(row.dirty_fields for row in found)
        [other] = oldest_where(ChatLink, 10, integration=two, contact_phone=None)
        assert other.chat_key == "551190"
        assert oldest_where(ChatLink, 10, integration=two, contact_id=7) == []


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
            assert not found.dirty_fields  # a save() writes only what is changed afterwards
        assert get_where(ChatLink, integration=one, chat_key="other") is None
        by_contact = get_where(ChatLink, integration=one, contact_id=7)
        assert by_contact is not None and by_contact.chat_key == "5511999990000"
        assert get_where(ChatLink, integration=one, contact_id=8) is None
        second = get_where(ChatwootIntegration, id="int_b")
        assert second is not None and second.__data__["instance"] == "ins_b"


def test_writes_and_reads_match_what_peewee_does(store_settings: Settings) -> None:
    """``insert_ignore``, ``update_where``, ``values_where`` and ``exists_where`` against the
    same operations through peewee's query builder; ``None`` compares as SQL's IS NULL."""
    with database.connection_context():
        account, _ = create_account("Acme")
        one = _integration(account, "a")
        base = {"integration": one, "chatwoot_message_id": 7, "chatwoot_conversation_id": 3}
        insert_ignore(MessageMap, whatsapp_message_id="wamid.1", direction="outgoing", **base)
        insert_ignore(MessageMap, whatsapp_message_id="wamid.1", direction="other", **base)
        insert_ignore(MessageMap, whatsapp_message_id="wamid.2", direction="outgoing", **base)
        rows = list(MessageMap.select().order_by(MessageMap.whatsapp_message_id))
        assert [(r.whatsapp_message_id, r.direction) for r in rows] == [
            ("wamid.1", "outgoing"),  # the conflicting insert changed nothing
            ("wamid.2", "outgoing"),
        ]
        assert values_where(MessageMap, "status", integration=one, chatwoot_message_id=7) == [
            None,
            None,
        ]
        changed = update_where(
            MessageMap, {"status": "read"}, integration=one.id, whatsapp_message_id="wamid.2"
        )
        assert changed == 1
        assert MessageMap.get(MessageMap.whatsapp_message_id == "wamid.2").status == "read"
        assert update_where(MessageMap, {"status": "sent"}, integration=one, status=None) == 1
        assert MessageMap.get(MessageMap.whatsapp_message_id == "wamid.1").status == "sent"
        assert update_where(MessageMap, {"status": "x"}, integration=one, status=None) == 0
        assert sorted(values_where(MessageMap, "status", integration=one)) == ["read", "sent"]
        assert exists_where(MessageMap, integration=one, whatsapp_message_id="wamid.2")
        assert not exists_where(MessageMap, integration=one, whatsapp_message_id="wamid.3")
        assert not exists_where(MessageMap, integration=one, status=None)
        bounded = {"status": "late"}
        at_most_6, at_most_7 = ("chatwoot_message_id", 6), ("chatwoot_message_id", 7)
        assert update_where(MessageMap, bounded, not_above=at_most_6, integration=one) == 0
        assert update_where(MessageMap, bounded, not_above=at_most_7, integration=one) == 2
