"""Provisioning: check the Chatwoot token, create or update the API inbox, record the outcome.

The web process records a request (:func:`request_provisioning`) and a worker runs
:func:`provision`. Each request bumps ``provision_requested``; the worker writes the same
number to ``provision_completed`` with the outcome, which is what a waiting ``set`` watches.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from app.config import Settings, get_settings
from app.integrations.chatwoot import ChatwootClient, account_role
from app.integrations.errors import (
    RemoteAddressNotAllowed,
    RemoteBadResponse,
    RemoteError,
    RemoteForbidden,
    RemoteNotFound,
    RemoteTimeout,
    RemoteUnauthorized,
    RemoteUnprocessable,
)
from app.integrations.urlguard import UrlNotAllowed, check_url_allowed
from app.management.lookup_cache import bump_config_version
from app.relay.clients import client_for
from app.store.db import database
from app.store.models import (
    STATE_ACTIVE,
    STATE_ERROR,
    ChatwootIntegration,
    utcnow,
)
from app.store.redis_client import get_redis, redis_key

logger = logging.getLogger(__name__)

LOCK_SECONDS = 150


@dataclass(frozen=True)
class ProvisioningFailure:
    """What ``set`` answers when provisioning fails: an HTTP status and API.md's message."""

    http_status: int
    message: str


@dataclass(frozen=True)
class IntegrationRequest:
    """The validated body of ``set`` (or the chatwoot fields of ``instance/new``)."""

    base_url: str
    account_id: int
    api_token: str
    inbox_name: str
    sign_messages: bool = False
    ignore_groups: bool = False
    start_as_pending: bool = False
    reopen_resolved: bool = False
    mark_read: bool = True


class NotAdministrator(Exception):
    """The token works but is not an administrator of the configured account."""


class NotAMember(Exception):
    """The token's user does not belong to the configured account (or it does not exist)."""


def webhook_url(settings: Settings, integration: ChatwootIntegration) -> str:
    secret = integration.get_secret("webhook_secret")
    return f"{settings.public_url}/webhooks/chatwoot/{integration.id}/{secret}"


def classify(exc: Exception, base_url: str, account_id: int) -> ProvisioningFailure:
    """Map a failure to the row of API.md's ``set`` error table it belongs to."""
    if isinstance(exc, UrlNotAllowed | RemoteAddressNotAllowed):
        return ProvisioningFailure(400, f"chatwootBaseUrl is not allowed: {exc}")
    detail = exc.detail if isinstance(exc, RemoteError) else str(exc)
    if isinstance(exc, RemoteNotFound | RemoteBadResponse | NotAMember):
        return ProvisioningFailure(
            400,
            f"Chatwoot account or endpoint not found — verify chatwootBaseUrl ({base_url}) "
            f"and chatwootAccountId ({account_id}). Detail: {detail}",
        )
    if isinstance(exc, RemoteUnprocessable):
        return ProvisioningFailure(
            400, f"Chatwoot rejected the request as invalid. Detail: {detail}"
        )
    if isinstance(exc, RemoteUnauthorized):
        return ProvisioningFailure(
            401, f"Chatwoot rejected the API token — verify chatwootApiToken. Detail: {detail}"
        )
    if isinstance(exc, RemoteForbidden):
        return forbidden(account_id, detail)
    if isinstance(exc, RemoteTimeout):
        return ProvisioningFailure(
            504,
            f"Chatwoot did not answer in time — verify chatwootBaseUrl ({base_url}). "
            f"Detail: {detail}",
        )
    return ProvisioningFailure(
        502, f"Chatwoot host unreachable — verify chatwootBaseUrl ({base_url}). Detail: {detail}"
    )


def forbidden(account_id: int, detail: str) -> ProvisioningFailure:
    return ProvisioningFailure(
        403,
        "Chatwoot denied the request — verify the API token has admin scope on account "
        f"{account_id}. Detail: {detail}",
    )


def _check_administrator(client: ChatwootClient, account_id: int) -> None:
    role = account_role(client.get_profile(), account_id)
    if role is None:
        raise NotAMember(f"account {account_id} is not among the token's accounts")
    if role != "administrator":
        raise NotAdministrator(f"the token's role on account {account_id} is {role}")


def _create_or_update_inbox(
    client: ChatwootClient, integration: ChatwootIntegration, hook_url: str
) -> dict[str, Any]:
    """Update the inbox we made before (found by its id, never by name); create one if gone."""
    name = integration.chatwoot_inbox_name
    if integration.chatwoot_inbox_id is not None:
        try:
            return client.update_api_inbox(integration.chatwoot_inbox_id, name, hook_url)
        except RemoteNotFound:
            logger.warning(
                "inbox %s of integration %s is gone in Chatwoot; creating a new one",
                integration.chatwoot_inbox_id,
                integration.id,
            )
    return client.create_api_inbox(name, hook_url)


def _run(integration: ChatwootIntegration, settings: Settings) -> dict[str, Any]:
    check_url_allowed(integration.chatwoot_base_url, allow_private=settings.allow_private_urls)
    client = client_for(integration, settings)
    _check_administrator(client, integration.chatwoot_account_id)
    inbox = _create_or_update_inbox(client, integration, webhook_url(settings, integration))
    if not isinstance(inbox.get("id"), int):
        raise RemoteBadResponse("the inbox Chatwoot returned has no id")
    return inbox


def provision(integration_id: str, generation: int) -> bool:
    """Provision ``integration_id`` for request ``generation`` (skips superseded requests).

    Returns True when the integration is now active (its held events can be replayed).
    """
    settings = get_settings()
    with _integration_lock(integration_id):
        integration = _load(integration_id)
        if integration is None:
            logger.info("integration %s was deleted before provisioning", integration_id)
            return False
        if integration.provision_requested > generation:
            logger.info("provisioning %s#%s superseded", integration_id, generation)
            return False
        try:
            inbox = _run(integration, settings)
        except NotAdministrator as exc:
            failure = forbidden(integration.chatwoot_account_id, str(exc))
            record_failure(integration_id, generation, failure)
            return False
        except (RemoteError, UrlNotAllowed, NotAMember) as exc:
            failure = classify(exc, integration.chatwoot_base_url, integration.chatwoot_account_id)
            record_failure(integration_id, generation, failure)
            return False
        _record_success(integration, generation, inbox)
        return True


def record_internal_failure(integration_id: str, generation: int, error: str) -> None:
    """Called when the job gave up on an unexpected error (``error``: the exception's name),
    so ``set`` never waits forever."""
    failure = ProvisioningFailure(500, f"provisioning failed: {error}")
    record_failure(integration_id, generation, failure)


def _load(integration_id: str) -> ChatwootIntegration | None:
    found: ChatwootIntegration | None = ChatwootIntegration.get_or_none(
        ChatwootIntegration.id == integration_id
    )
    return found


def _record_success(
    integration: ChatwootIntegration, generation: int, inbox: dict[str, Any]
) -> None:
    inbox_id = int(inbox["id"])  # presence checked by _run
    secret = inbox.get("secret")
    if secret:
        integration.set_secret("inbox_secret", str(secret))
    logger.info("integration %s active with inbox %s", integration.id, inbox_id)
    _settle(
        integration.id,
        generation,
        chatwoot_inbox_id=inbox_id,
        chatwoot_inbox_name=str(inbox.get("name") or integration.chatwoot_inbox_name),
        inbox_secret=integration.inbox_secret,
        state=STATE_ACTIVE,
        last_error="",
        last_error_http_status=None,
    )


def record_failure(integration_id: str, generation: int, failure: ProvisioningFailure) -> None:
    """Settle ``generation`` as failed (by the job, or by the web process when it could not
    even enqueue the job)."""
    logger.warning("integration %s provisioning failed: %s", integration_id, failure.message)
    _settle(
        integration_id,
        generation,
        state=STATE_ERROR,
        last_error=failure.message,
        last_error_http_status=failure.http_status,
    )


def _settle(integration_id: str, generation: int, **fields: Any) -> None:
    """Write an outcome unless a newer request has completed in the meantime."""
    with database.atomic():
        ChatwootIntegration.update(
            provision_completed=generation, updated_at=utcnow(), **fields
        ).where(
            (ChatwootIntegration.id == integration_id)
            & (ChatwootIntegration.provision_completed < generation)
        ).execute()
    bump_config_version()


@contextmanager
def _integration_lock(integration_id: str) -> Iterator[None]:
    """One provisioning at a time per integration, across every worker process."""
    lock = get_redis().lock(redis_key("provision", integration_id), timeout=LOCK_SECONDS)
    if not lock.acquire(blocking=True, blocking_timeout=LOCK_SECONDS):
        raise TimeoutError(f"provisioning lock for {integration_id} is held")
    try:
        yield
    finally:
        lock.release()
