"""One person, many identifiers: the intake unites phone, BSUID, parent BSUID and the ids named by
identity system messages into one lane (SQLite and PostgreSQL), without merging existing lanes."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from app.config import Settings
from app.management.accounts import create_account
from app.management.instances import CloudSettings, NewInstance, create_instance
from app.management.integrations import save_request
from app.management.provisioning import IntegrationRequest
from app.relay.inbound.intake import store_inbound
from app.relay.messages import Event, InboundMessage, StatusUpdate
from app.store.db import database
from app.store.models import ChatAlias, ChatwootIntegration, RelayEvent

PHONE = "16505551234"
BSUID = "US.13491208655302741918"
PARENT = "US.ENT.11815799212886844830"
NEW_BSUID = "US.40815592273318649021"
NEW_PHONE = "12195555358"

CLOUD = CloudSettings(
    phone_number_id="106540352242922",
    access_token="EAAG-access-token",
    app_secret="app-secret",
    verify_token="verify-token",
)
CHATWOOT = IntegrationRequest(
    base_url="https://chatwoot.example.com",
    account_id=5,
    api_token="chatwoot-token",
    inbox_name="WhatsApp",
)


@pytest.fixture
def integration(store_settings: Settings) -> Iterator[ChatwootIntegration]:
    with database.connection_context():
        account, _ = create_account("Acme")
        instance = create_instance(
            account, NewInstance(name="suporte", provider="cloud", cloud=CLOUD)
        ).instance
        created, _ = save_request(instance, CHATWOOT)
        yield created


def text(message_id: str, chat_id: str, *aliases: str, reply: str | None = None) -> InboundMessage:
    return InboundMessage(
        message_id=message_id,
        chat_id=chat_id,
        sender_id=chat_id,
        kind="text",
        text=message_id,
        chat_aliases=aliases,
        reply_address=reply or chat_id,
    )


def lane_of(integration: ChatwootIntegration, event: Event) -> str:
    [stored] = store_inbound(integration, [event])
    return stored.chat_key


def aliases(integration: ChatwootIntegration) -> dict[str, str]:
    rows = ChatAlias.select().where(ChatAlias.integration == integration)
    return {str(row.identifier): str(row.chat_key) for row in rows}


def test_bsuid_first_then_phone_and_bsuid_then_bsuid_share_the_bsuid_lane(
    integration: ChatwootIntegration,
) -> None:
    first = lane_of(integration, text("wamid.1", BSUID))
    second = lane_of(integration, text("wamid.2", PHONE, BSUID, PARENT))
    third = lane_of(integration, text("wamid.3", BSUID))

    assert first == second == third == BSUID
    assert aliases(integration) == {BSUID: BSUID, PHONE: BSUID, PARENT: BSUID}
    # a later message naming only the phone finds the lane through the recorded alias
    assert lane_of(integration, text("wamid.4", PHONE)) == BSUID


def test_phone_first_then_bsuid_only_share_the_phone_lane(
    integration: ChatwootIntegration,
) -> None:
    assert lane_of(integration, text("wamid.1", PHONE, BSUID)) == PHONE
    assert lane_of(integration, text("wamid.2", BSUID)) == PHONE


def test_user_changed_user_id_links_the_new_id_to_the_lane(
    integration: ChatwootIntegration,
) -> None:
    lane_of(integration, text("wamid.1", BSUID))
    system = InboundMessage(
        message_id="wamid.sys",
        chat_id=NEW_BSUID,
        sender_id=NEW_BSUID,
        kind="system",
        text="User changed their business-scoped user ID",
        chat_aliases=("US.ENT.26004418739051127735", BSUID, PARENT),
    )

    assert lane_of(integration, system) == BSUID
    assert lane_of(integration, text("wamid.2", NEW_BSUID)) == BSUID
    assert aliases(integration)[NEW_BSUID] == BSUID


def test_user_changed_number_links_the_new_number_to_the_lane(
    integration: ChatwootIntegration,
) -> None:
    lane_of(integration, text("wamid.1", PHONE, BSUID))
    system = InboundMessage(
        message_id="wamid.sys",
        chat_id=PHONE,
        sender_id=PHONE,
        kind="system",
        text=f"User changed from {PHONE} to {NEW_PHONE}",
        chat_aliases=(NEW_BSUID, NEW_PHONE, BSUID),
        reply_address=NEW_PHONE,
    )

    assert lane_of(integration, system) == PHONE
    assert lane_of(integration, text("wamid.2", NEW_PHONE, NEW_BSUID)) == PHONE


def test_status_naming_only_the_bsuid_finds_the_phone_lane(
    integration: ChatwootIntegration,
) -> None:
    lane_of(integration, text("wamid.1", PHONE, BSUID))
    status = StatusUpdate(message_id="wamid.reply", status="delivered", recipient_id=BSUID)

    assert lane_of(integration, status) == PHONE


def test_identifiers_of_two_lanes_in_one_message_go_to_the_oldest_lane(
    integration: ChatwootIntegration, caplog: pytest.LogCaptureFixture
) -> None:
    # the phone and the BSUID were first seen apart (e.g. before BSUIDs were sent)
    lane_of(integration, text("wamid.1", PHONE))
    lane_of(integration, text("wamid.2", BSUID))

    with caplog.at_level(logging.WARNING, logger="app.relay.inbound.intake"):
        united = lane_of(integration, text("wamid.3", BSUID, PHONE, PARENT))
        again = lane_of(integration, text("wamid.4", PHONE, BSUID))

    assert united == again == PHONE  # the phone's lane was recorded first
    # the lanes are not merged: what each identifier was recorded under stays; the new one joins
    assert aliases(integration) == {PHONE: PHONE, BSUID: BSUID, PARENT: PHONE}
    assert lane_of(integration, text("wamid.5", BSUID)) == BSUID
    assert "names identifiers of 2 chats" in caplog.text
    keys = [row.chat_key for row in RelayEvent.select().order_by(RelayEvent.id)]
    assert keys == [PHONE, BSUID, PHONE, PHONE, BSUID]


def test_oldest_lane_wins_whatever_order_the_message_names_them(
    integration: ChatwootIntegration,
) -> None:
    lane_of(integration, text("wamid.1", BSUID))
    lane_of(integration, text("wamid.2", PHONE))

    assert lane_of(integration, text("wamid.3", PHONE, BSUID)) == BSUID
    assert lane_of(integration, text("wamid.4", BSUID, PHONE)) == BSUID
