"""Create, list and delete instances (WhatsApp numbers) of an account."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import peewee

from app.config import Settings
from app.management.integrations import pending_events, save_request
from app.management.lookup_cache import bump_config_version
from app.management.provisioning import IntegrationRequest
from app.store.db import database
from app.store.ids import hash_token, new_id, new_token
from app.store.models import (
    PROVIDER_CLOUD,
    Account,
    ChatwootIntegration,
    Instance,
    RelayEvent,
)

logger = logging.getLogger(__name__)


class InstanceNameTaken(Exception):
    """Another instance already uses this name (names appear in webhook URLs)."""


class InstanceTokenTaken(Exception):
    """The custom instance token chosen is already in use."""


@dataclass(frozen=True)
class CloudSettings:
    phone_number_id: str
    access_token: str
    app_secret: str
    verify_token: str | None = None
    api_base_url: str | None = None
    business_account_id: str | None = None  # the WABA id: templates are synced from it
    messages_per_second: int | None = None  # the number's send pace; None: the default (80)


@dataclass(frozen=True)
class GatewaySettings:
    base_url: str
    token: str
    instance: str | None = None


@dataclass(frozen=True)
class NewInstance:
    name: str
    provider: str
    token: str | None = None
    cloud: CloudSettings | None = None
    gateway: GatewaySettings | None = None


@dataclass(frozen=True)
class CreatedInstance:
    """The stored instance plus the values shown once (plaintext token and verify token), and
    the integration created with it (with its provisioning generation) when one was asked for."""

    instance: Instance
    token: str
    verify_token: str | None
    integration: ChatwootIntegration | None = None
    generation: int = 0


DEFAULT_CLOUD_API_BASE_URL = "https://graph.facebook.com/v23.0"


def create_instance(
    account: Account, spec: NewInstance, chatwoot: IntegrationRequest | None = None
) -> CreatedInstance:
    """Store the instance and, when ``chatwoot`` is given, its integration request, in one
    transaction: a failure at any step leaves nothing behind."""
    token = spec.token or new_token()
    digest = hash_token(token)
    with database.atomic():
        if Instance.select().where(Instance.name == spec.name).exists():
            raise InstanceNameTaken(spec.name)
        token_in_use = (
            Instance.select().where(Instance.token_hash == digest).exists()
            or Account.select().where(Account.token_hash == digest).exists()
        )
        if token_in_use:
            raise InstanceTokenTaken()
        instance = Instance(
            id=new_id("ins"),
            account=account,
            name=spec.name,
            token_hash=digest,
            provider=spec.provider,
        )
        verify_token = _apply_provider_settings(instance, spec)
        try:
            instance.save(force_insert=True)
        except peewee.IntegrityError as exc:
            raise InstanceNameTaken(spec.name) from exc
        integration, generation = (
            save_request(instance, chatwoot) if chatwoot is not None else (None, 0)
        )
    bump_config_version()
    logger.info("instance %s created (%s) for account %s", spec.name, spec.provider, account.id)
    return CreatedInstance(instance, token, verify_token, integration, generation)


def _apply_provider_settings(instance: Instance, spec: NewInstance) -> str | None:
    if spec.provider == PROVIDER_CLOUD:
        cloud = spec.cloud
        assert cloud is not None
        verify_token = cloud.verify_token or new_token()
        instance.cloud_phone_number_id = cloud.phone_number_id
        instance.cloud_api_base_url = cloud.api_base_url or DEFAULT_CLOUD_API_BASE_URL
        instance.cloud_business_account_id = cloud.business_account_id
        instance.cloud_messages_per_second = cloud.messages_per_second
        instance.set_secret("cloud_access_token", cloud.access_token)
        instance.set_secret("cloud_app_secret", cloud.app_secret)
        instance.set_secret("cloud_verify_token", verify_token)
        return verify_token
    gateway = spec.gateway
    assert gateway is not None
    instance.gateway_base_url = gateway.base_url
    instance.gateway_instance = gateway.instance or spec.name
    instance.set_secret("gateway_token", gateway.token)
    return None


def whatsapp_webhook_url(settings: Settings, instance: Instance) -> str:
    return f"{settings.public_url}/webhooks/whatsapp/{instance.provider}/{instance.name}"


def list_instances(
    account: Account, names: list[str] | None
) -> list[tuple[Instance, ChatwootIntegration | None]]:
    query = (
        Instance.select(Instance, ChatwootIntegration)
        .join(ChatwootIntegration, peewee.JOIN.LEFT_OUTER)
        .where(Instance.account == account)
        .order_by(Instance.created_at, Instance.name)
    )
    if names is not None:
        query = query.where(Instance.name.in_(names))
    return [(row, _joined_integration(row)) for row in query]


def integration_of(instance: Instance) -> ChatwootIntegration | None:
    found: ChatwootIntegration | None = ChatwootIntegration.get_or_none(
        ChatwootIntegration.instance == instance
    )
    return found


def _joined_integration(instance: Instance) -> ChatwootIntegration | None:
    joined = getattr(instance, "chatwootintegration", None)
    return joined if isinstance(joined, ChatwootIntegration) and joined.id else None


def delete_instance(instance: Instance) -> int:
    """Delete the instance with its integration and queued events; returns events dropped."""
    with database.atomic():
        dropped = pending_events(ChatwootIntegration.instance == instance)
        RelayEvent.delete().where(
            RelayEvent.integration.in_(
                ChatwootIntegration.select(ChatwootIntegration.id).where(
                    ChatwootIntegration.instance == instance
                )
            )
        ).execute()
        ChatwootIntegration.delete().where(ChatwootIntegration.instance == instance).execute()
        instance.delete_instance()
    bump_config_version()
    logger.info("instance %s deleted; %d pending relay events dropped", instance.name, dropped)
    return dropped
