"""Models on SQLite and PostgreSQL: secrets encrypted and row-bound, constraints, cascades,
relay counters. Runs through ``app.management`` where a function exists for the operation."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Any

import peewee
import pytest

from app.config import Settings
from app.management.accounts import create_account
from app.management.instances import (
    CloudSettings,
    CreatedInstance,
    GatewaySettings,
    InstanceNameTaken,
    InstanceTokenTaken,
    NewInstance,
    create_instance,
    delete_instance,
)
from app.management.integrations import relay_counters, save_request
from app.management.provisioning import IntegrationRequest
from app.store.counters import backfill_counters
from app.store.crypto import DecryptionError
from app.store.db import database
from app.store.ids import hash_token, new_id
from app.store.models import (
    EVENT_DELIVERED,
    EVENT_FAILED,
    EVENT_PENDING,
    Account,
    ChatwootIntegration,
    Instance,
    RelayEvent,
)

CLOUD = CloudSettings(
    phone_number_id="106540352242922",
    access_token="EAAG-access-token-s3cr3t",
    app_secret="app-secret-s3cr3t",
    verify_token="verify-token-s3cr3t",
)
GATEWAY = GatewaySettings(
    base_url="https://gateway.example.com", token="gw-token-s3cr3t", instance="upstream"
)
CHATWOOT = IntegrationRequest(
    base_url="https://chatwoot.example.com",
    account_id=5,
    api_token="sk_live_chatwoot-s3cr3t",
    inbox_name="WhatsApp - Orion",
    sign_messages=True,
    reopen_resolved=True,
)
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


@pytest.fixture
def db(store_settings: Settings) -> Iterator[Settings]:
    with database.connection_context():
        yield store_settings


@pytest.fixture
def account(db: Settings) -> Account:
    created, _ = create_account("Acme")
    return created


def _cloud(account: Account, name: str = "suporte", token: str | None = None) -> Instance:
    spec = NewInstance(name=name, provider="cloud", token=token, cloud=CLOUD)
    return create_instance(account, spec).instance


def _gateway(account: Account, name: str = "vendas") -> CreatedInstance:
    return create_instance(account, NewInstance(name=name, provider="gateway", gateway=GATEWAY))


def _integration(instance: Instance) -> ChatwootIntegration:
    integration, _ = save_request(instance, CHATWOOT)
    return integration


def _column(model: Any, field: str, row_id: Any) -> Any:
    """The value exactly as stored in the column (no decryption anywhere)."""
    column = getattr(model, field)
    return model.select(column).where(model.id == row_id).tuples().get()[0]


def _event(integration: ChatwootIntegration, natural_key: str, **fields: Any) -> RelayEvent:
    values: dict[str, Any] = {
        "integration": integration,
        "direction": "inbound",
        "natural_key": natural_key,
        "chat_key": "5511999990000",
        "kind": "message",
        "payload": json.dumps({"text": natural_key}),
    }
    values.update(fields)
    return RelayEvent.create(**values)


# --- round trips -------------------------------------------------------------------------------


def test_account_stores_only_the_token_hash(db: Settings) -> None:
    account, token = create_account("  Acme  ")

    stored = Account.get_by_id(account.id)
    assert stored.name == "Acme"
    assert stored.token_hash == hash_token(token)
    assert token not in stored.token_hash


def test_cloud_instance_round_trip_with_secrets(account: Account) -> None:
    created = create_instance(
        account, NewInstance(name="suporte", provider="cloud", token="custom-token-1", cloud=CLOUD)
    )
    assert created.token == "custom-token-1"
    assert created.verify_token == CLOUD.verify_token

    stored = Instance.get(Instance.name == "suporte")
    assert stored.account.id == account.id
    assert stored.provider == "cloud"
    assert stored.token_hash == hash_token("custom-token-1")
    assert stored.cloud_phone_number_id == CLOUD.phone_number_id
    assert stored.cloud_api_base_url == "https://graph.facebook.com/v23.0"
    assert stored.get_secret("cloud_access_token") == CLOUD.access_token
    assert stored.get_secret("cloud_app_secret") == CLOUD.app_secret
    assert stored.get_secret("cloud_verify_token") == CLOUD.verify_token
    assert stored.get_secret("gateway_token") is None


def test_generated_verify_token_round_trips(account: Account) -> None:
    spec = NewInstance(
        name="suporte",
        provider="cloud",
        cloud=CloudSettings(phone_number_id="1", access_token="a-s3cr3t", app_secret="b-s3cr3t"),
    )
    created = create_instance(account, spec)

    assert created.verify_token
    stored = Instance.get_by_id(created.instance.id)
    assert stored.get_secret("cloud_verify_token") == created.verify_token
    assert created.verify_token not in _column(Instance, "cloud_verify_token", stored.id)


def test_gateway_instance_round_trip_with_secret(account: Account) -> None:
    created = _gateway(account)

    stored = Instance.get_by_id(created.instance.id)
    assert stored.provider == "gateway"
    assert stored.gateway_base_url == GATEWAY.base_url
    assert stored.gateway_instance == "upstream"
    assert stored.get_secret("gateway_token") == GATEWAY.token
    assert stored.get_secret("cloud_access_token") is None
    assert stored.token_hash == hash_token(created.token)


def test_integration_round_trip_with_secrets(account: Account) -> None:
    instance = _cloud(account)
    integration, generation = save_request(instance, CHATWOOT)
    assert generation == 1

    stored = ChatwootIntegration.get_by_id(integration.id)
    assert stored.id.startswith("int_")
    assert stored.instance.id == instance.id
    assert stored.chatwoot_base_url == CHATWOOT.base_url
    assert stored.chatwoot_account_id == 5
    assert stored.chatwoot_inbox_name == "WhatsApp - Orion"
    assert (stored.sign_messages, stored.ignore_groups) == (True, False)
    assert (stored.start_as_pending, stored.reopen_resolved) == (False, True)
    assert stored.status == "provisioning"
    assert stored.get_secret("chatwoot_api_token") == CHATWOOT.api_token
    webhook_secret = stored.get_secret("webhook_secret")
    assert webhook_secret and len(webhook_secret) >= 32
    assert stored.get_secret("inbox_secret") is None

    stored.set_secret("inbox_secret", "inbox-hmac-s3cr3t")
    stored.save()
    assert ChatwootIntegration.get_by_id(integration.id).get_secret("inbox_secret") == (
        "inbox-hmac-s3cr3t"
    )


def test_repeat_save_request_keeps_id_and_webhook_secret(account: Account) -> None:
    instance = _cloud(account)
    first, _ = save_request(instance, CHATWOOT)
    secret = first.get_secret("webhook_secret")

    again, generation = save_request(
        instance,
        IntegrationRequest(
            base_url="https://other.example.com",
            account_id=6,
            api_token="new-token-s3cr3t",
            inbox_name="Renamed",
        ),
    )

    assert again.id == first.id
    assert generation == 2
    stored = ChatwootIntegration.get_by_id(first.id)
    assert stored.get_secret("webhook_secret") == secret
    assert stored.get_secret("chatwoot_api_token") == "new-token-s3cr3t"
    assert ChatwootIntegration.select().count() == 1


# --- ciphertext in the columns ---------------------------------------------------------------


def test_secret_columns_hold_ciphertext_only(account: Account, db: Settings) -> None:
    cloud = _cloud(account)
    gateway = _gateway(account).instance
    integration = _integration(cloud)
    integration.set_secret("inbox_secret", "inbox-hmac-s3cr3t")
    integration.save()
    webhook_secret = integration.get_secret("webhook_secret")
    assert webhook_secret is not None

    expectations = [
        (Instance, cloud.id, "cloud_access_token", CLOUD.access_token),
        (Instance, cloud.id, "cloud_app_secret", CLOUD.app_secret),
        (Instance, cloud.id, "cloud_verify_token", CLOUD.verify_token),
        (Instance, gateway.id, "gateway_token", GATEWAY.token),
        (ChatwootIntegration, integration.id, "chatwoot_api_token", CHATWOOT.api_token),
        (ChatwootIntegration, integration.id, "webhook_secret", webhook_secret),
        (ChatwootIntegration, integration.id, "inbox_secret", "inbox-hmac-s3cr3t"),
    ]
    cipher_kid = re.escape(_column(Instance, "cloud_access_token", cloud.id).split(".")[1])
    for model, row_id, field, plaintext in expectations:
        stored = _column(model, field, row_id)
        assert plaintext not in stored, (model.__name__, field)
        assert re.fullmatch(rf"v1\.{cipher_kid}\.[A-Za-z0-9_-]+", stored), (field, stored)


def test_ciphertext_copied_to_another_instance_row_does_not_decrypt(account: Account) -> None:
    first = _cloud(account, "first")
    second = _cloud(account, "second")
    stolen = _column(Instance, "cloud_access_token", first.id)

    Instance.update(cloud_access_token=stolen).where(Instance.id == second.id).execute()

    moved = Instance.get_by_id(second.id)
    with pytest.raises(DecryptionError) as caught:
        moved.get_secret("cloud_access_token")
    assert CLOUD.access_token not in str(caught.value)
    assert Instance.get_by_id(first.id).get_secret("cloud_access_token") == CLOUD.access_token


def test_ciphertext_copied_to_another_field_does_not_decrypt(account: Account) -> None:
    instance = _cloud(account)
    stolen = _column(Instance, "cloud_access_token", instance.id)

    Instance.update(cloud_app_secret=stolen).where(Instance.id == instance.id).execute()

    with pytest.raises(DecryptionError):
        Instance.get_by_id(instance.id).get_secret("cloud_app_secret")


def test_ciphertext_copied_to_another_integration_does_not_decrypt(account: Account) -> None:
    first = _integration(_cloud(account, "first"))
    second = _integration(_cloud(account, "second"))
    stolen = _column(ChatwootIntegration, "chatwoot_api_token", first.id)

    ChatwootIntegration.update(chatwoot_api_token=stolen).where(
        ChatwootIntegration.id == second.id
    ).execute()

    with pytest.raises(DecryptionError):
        ChatwootIntegration.get_by_id(second.id).get_secret("chatwoot_api_token")


# --- constraints -----------------------------------------------------------------------------


def _raw_instance(account: Account, name: str, token_hash: str) -> Instance:
    return Instance.create(
        id=new_id("ins"), account=account, name=name, token_hash=token_hash, provider="cloud"
    )


def test_instance_name_is_unique(account: Account) -> None:
    _cloud(account, "suporte")
    other_account, _ = create_account("Globex")

    with pytest.raises(InstanceNameTaken):
        _cloud(other_account, "suporte")
    with pytest.raises(peewee.IntegrityError), database.atomic():
        _raw_instance(other_account, "suporte", hash_token("another-token"))
    assert Instance.select().where(Instance.name == "suporte").count() == 1


def test_instance_token_hash_is_unique(account: Account) -> None:
    _cloud(account, "first", token="the-same-custom-token")

    with pytest.raises(InstanceTokenTaken):
        _cloud(account, "second", token="the-same-custom-token")
    with pytest.raises(peewee.IntegrityError), database.atomic():
        _raw_instance(account, "third", hash_token("the-same-custom-token"))
    assert Instance.select().count() == 1


def test_account_token_cannot_be_reused_as_instance_token(db: Settings) -> None:
    account, account_token = create_account("Acme")

    with pytest.raises(InstanceTokenTaken):
        _cloud(account, "suporte", token=account_token)
    assert Instance.select().count() == 0


def test_account_token_hash_is_unique(db: Settings) -> None:
    Account.create(id=new_id("acc"), name="A", token_hash=hash_token("tok"))

    with pytest.raises(peewee.IntegrityError), database.atomic():
        Account.create(id=new_id("acc"), name="B", token_hash=hash_token("tok"))


def test_one_integration_per_instance(account: Account) -> None:
    instance = _cloud(account)
    _integration(instance)

    with pytest.raises(peewee.IntegrityError), database.atomic():
        duplicate = ChatwootIntegration(
            id=new_id("int"),
            instance=instance,
            chatwoot_base_url="https://chatwoot.example.com",
            chatwoot_account_id=1,
            chatwoot_inbox_name="dup",
        )
        duplicate.set_secret("chatwoot_api_token", "x")
        duplicate.set_secret("webhook_secret", "y")
        duplicate.save(force_insert=True)
    assert ChatwootIntegration.select().count() == 1


def test_relay_event_natural_key_is_unique_per_integration_and_direction(
    account: Account,
) -> None:
    first = _integration(_cloud(account, "first"))
    second = _integration(_cloud(account, "second"))
    _event(first, "wamid.1:message")

    with pytest.raises(peewee.IntegrityError), database.atomic():
        _event(first, "wamid.1:message")

    _event(first, "wamid.1:message", direction="outbound")
    _event(second, "wamid.1:message")
    assert RelayEvent.select().count() == 3


# --- cascades --------------------------------------------------------------------------------


def _instance_with_events(account: Account) -> tuple[Instance, ChatwootIntegration]:
    instance = _cloud(account, "suporte")
    integration = _integration(instance)
    _event(integration, "a")
    _event(integration, "b", status=EVENT_DELIVERED, delivered_at=dt.datetime(2026, 4, 20))
    _event(integration, "c", status=EVENT_PENDING)
    return instance, integration


def test_delete_instance_removes_integration_and_events(account: Account) -> None:
    instance, integration = _instance_with_events(account)
    keeper = _integration(_cloud(account, "keeper"))
    _event(keeper, "a")

    dropped = delete_instance(instance)

    assert dropped == 2
    assert Instance.get_or_none(Instance.id == instance.id) is None
    assert ChatwootIntegration.get_or_none(ChatwootIntegration.id == integration.id) is None
    assert RelayEvent.select().where(RelayEvent.integration == integration.id).count() == 0
    assert RelayEvent.select().where(RelayEvent.integration == keeper.id).count() == 1


def test_database_cascades_instance_deletion(account: Account) -> None:
    """The schema itself cascades (ON DELETE CASCADE), not only the management function."""
    instance, integration = _instance_with_events(account)

    Instance.delete().where(Instance.id == instance.id).execute()

    assert ChatwootIntegration.select().where(ChatwootIntegration.id == integration.id).count() == 0
    assert RelayEvent.select().count() == 0


def test_database_cascades_account_deletion(account: Account) -> None:
    _instance_with_events(account)

    Account.delete().where(Account.id == account.id).execute()

    assert Instance.select().count() == 0
    assert ChatwootIntegration.select().count() == 0
    assert RelayEvent.select().count() == 0


# --- relay counters --------------------------------------------------------------------------


def test_relay_counters_count_by_status(account: Account) -> None:
    integration = _integration(_cloud(account, "suporte"))
    other = _integration(_cloud(account, "other"))
    for key in ("p1", "p2"):
        _event(integration, key)
    delivered = [
        dt.datetime(2026, 4, 20, 10, 15, 30),
        dt.datetime(2026, 4, 21, 8, 0, 1),
        dt.datetime(2026, 4, 19, 23, 59, 59),
    ]
    for i, when in enumerate(delivered):
        _event(integration, f"d{i}", status=EVENT_DELIVERED, delivered_at=when)
    _event(integration, "f1", status=EVENT_FAILED, last_error="422 invalid")
    _event(other, "x", status=EVENT_DELIVERED, delivered_at=dt.datetime(2030, 1, 1))
    _event(other, "y", status=EVENT_FAILED)
    # events written straight to the store, as by a release before the counters: the
    # one-time backfill of `wootbridge migrate` gives them their counters
    backfill_counters()

    counters = relay_counters(integration)

    assert counters.pending == 2
    assert counters.delivered == 3
    assert counters.failed == 1
    assert counters.last_delivered_at == "2026-04-21T08:00:01Z"
    assert RFC3339.fullmatch(counters.last_delivered_at)


def test_relay_counters_of_an_idle_integration(account: Account) -> None:
    integration = _integration(_cloud(account))
    _event(integration, "p1")

    counters = relay_counters(integration)

    assert (counters.pending, counters.delivered, counters.failed) == (1, 0, 0)
    assert counters.last_delivered_at is None
