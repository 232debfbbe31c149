"""``/api/chatwoot/*``: the Chatwoot module of the management API (API.md)."""

from __future__ import annotations

import logging
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.api.activation import activate
from app.api.auth import Principal, resolve_instance
from app.api.common import in_db, principal_of, settings_of
from app.api.errors import NO_INTEGRATION, ApiError
from app.api.queue import enqueue_replay
from app.api.validation import (
    http_url,
    optional_bool,
    optional_str,
    read_json_object,
    required_positive_int,
    required_str,
)
from app.config import Settings
from app.integrations.errors import RemoteError, RemoteNotFound, RemoteUnauthorized
from app.integrations.urlguard import UrlNotAllowed, check_url_allowed
from app.management import integrations
from app.management.instances import integration_of
from app.relay.provisioning import (
    IntegrationRequest,
    ProvisioningFailure,
    classify,
    client_for,
    webhook_url,
)
from app.store.models import STATE_ACTIVE, ChatwootIntegration, Instance

logger = logging.getLogger(__name__)

NO_INTEGRATION_TO_DELETE = "no chatwoot integration to delete"


def integration_request(body: dict[str, Any], instance_name: str) -> IntegrationRequest:
    """Validate the integration fields of a body.

    ``set`` documents bare flag names (``signMessages``), ``instance/new`` prefixed ones
    (``chatwootSignMessages``); both spellings are accepted on both routes, as with
    ``inboxName``/``chatwootInboxName``.
    """

    def flag(name: str) -> bool:
        if name in body:
            return optional_bool(body, name)
        return optional_bool(body, f"chatwoot{name[0].upper()}{name[1:]}")

    base_url = http_url(body, "chatwootBaseUrl", required=True)
    assert base_url is not None
    inbox_name = (
        optional_str(body, "inboxName", max_len=255)
        or optional_str(body, "chatwootInboxName", max_len=255)
        or instance_name
    )
    return IntegrationRequest(
        base_url=base_url,
        account_id=required_positive_int(body, "chatwootAccountId"),
        api_token=required_str(body, "chatwootApiToken", max_len=500),
        inbox_name=inbox_name,
        sign_messages=flag("signMessages"),
        ignore_groups=flag("ignoreGroups"),
        start_as_pending=flag("startAsPending"),
        reopen_resolved=flag("reopenResolved"),
    )


async def base_url_refusal(
    settings: Settings, request: IntegrationRequest
) -> ProvisioningFailure | None:
    """Why the Chatwoot URL is refused (private/loopback host without ALLOW_PRIVATE_URLS),
    or ``None`` when it may be used. DNS is resolved in a thread."""
    try:
        await run_in_threadpool(
            check_url_allowed, request.base_url, allow_private=settings.allow_private_urls
        )
    except UrlNotAllowed as exc:
        return classify(exc, request.base_url, request.account_id)
    return None


async def set_integration(request: Request) -> JSONResponse:
    settings = settings_of(request)
    principal = await principal_of(request)
    instance = await in_db(resolve_instance, principal, request.path_params["instance"])
    body = await read_json_object(request)
    wanted = integration_request(body, instance.name)
    refusal = await base_url_refusal(settings, wanted)
    if refusal is not None:
        raise ApiError(refusal.http_status, refusal.message)
    activation = await activate(settings, instance, wanted)
    integration = activation.integration
    if not activation.settled:
        return JSONResponse(
            {
                "instance": instance.name,
                "status": "provisioning",
                "bridge_integration_id": integration.id,
                "message": "chatwoot integration is being provisioned",
            },
            status_code=202,
        )
    failure = activation.failure
    if failure is not None:
        raise ApiError(failure.http_status, failure.message)
    return JSONResponse(
        {
            "instance": instance.name,
            "status": integration.status,
            "bridge_integration_id": integration.id,
            "message": "chatwoot integration activated",
        },
        status_code=201,
    )


async def _instance_and_integration(
    request: Request, missing: str = NO_INTEGRATION
) -> tuple[Instance, ChatwootIntegration]:
    principal: Principal = await principal_of(request)
    instance = await in_db(resolve_instance, principal, request.path_params["instance"])
    integration = await in_db(integration_of, instance)
    if integration is None:
        raise ApiError(404, missing)
    return instance, integration


async def list_integration(request: Request) -> JSONResponse:
    settings = settings_of(request)
    instance, integration = await _instance_and_integration(request)
    counters = await in_db(integrations.relay_counters, integration)
    status, last_error = integration.status, integration.last_error
    live = await live_check(settings, integration)
    if live is not None:
        status, last_error = "error", live
    return JSONResponse(
        {
            "instance_name": instance.name,
            "status": status,
            "bridge_integration_id": integration.id,
            "chatwoot_base_url": integration.chatwoot_base_url,
            "chatwoot_account_id": integration.chatwoot_account_id,
            "chatwoot_api_token": integration.get_secret("chatwoot_api_token"),
            "chatwoot_inbox_id": integration.chatwoot_inbox_id,
            "chatwoot_inbox_name": integration.chatwoot_inbox_name,
            "last_error": last_error,
            "created_at": integrations.rfc3339(integration.created_at),
            "sign_messages": integration.sign_messages,
            "ignore_groups": integration.ignore_groups,
            "start_as_pending": integration.start_as_pending,
            "reopen_resolved": integration.reopen_resolved,
            "webhook_url": webhook_url(settings, integration),
            "relay": {
                "pending": counters.pending,
                "delivered": counters.delivered,
                "failed": counters.failed,
                "last_delivered_at": counters.last_delivered_at,
            },
        }
    )


async def live_check(settings: Settings, integration: ChatwootIntegration) -> str | None:
    """Best effort, bounded by LIVE_CHECK_SECONDS: is the inbox there and the token good?

    Returns an error text when Chatwoot definitely says no (token rejected, inbox gone);
    ``None`` when all is well or the check could not complete (stored data then stands).
    """
    if integration.state != STATE_ACTIVE or integration.chatwoot_inbox_id is None:
        return None
    inbox_id = integration.chatwoot_inbox_id

    def check() -> None:
        client = client_for(integration, settings, attempts=1)
        client.get_inbox(inbox_id)

    try:
        with anyio.fail_after(settings.live_check_seconds):
            await anyio.to_thread.run_sync(check, abandon_on_cancel=True)
    except RemoteUnauthorized as exc:
        return classify(exc, integration.chatwoot_base_url, integration.chatwoot_account_id).message
    except RemoteNotFound:
        return f"Chatwoot inbox {inbox_id} no longer exists — run set to create a new one"
    except (RemoteError, TimeoutError) as exc:
        logger.info("live check of %s inconclusive: %s", integration.id, type(exc).__name__)
    return None


async def delete_integration(request: Request) -> JSONResponse:
    _, integration = await _instance_and_integration(request, NO_INTEGRATION_TO_DELETE)
    await in_db(integrations.delete_integration, integration)
    return JSONResponse({"message": "chatwoot integration deactivated"})


async def _set_paused(request: Request, paused: bool) -> JSONResponse:
    instance, integration = await _instance_and_integration(request)
    updated = await in_db(integrations.set_paused, integration, paused)
    if not paused:
        await enqueue_replay(integration.id)
    return JSONResponse({"instance": instance.name, "status": updated.status})


async def pause_integration(request: Request) -> JSONResponse:
    return await _set_paused(request, True)


async def resume_integration(request: Request) -> JSONResponse:
    return await _set_paused(request, False)


routes = [
    Route("/api/chatwoot/set/{instance}", set_integration, methods=["POST"]),
    Route("/api/chatwoot/list/{instance}", list_integration, methods=["GET"]),
    Route("/api/chatwoot/delete/{instance}", delete_integration, methods=["DELETE"]),
    Route("/api/chatwoot/pause/{instance}", pause_integration, methods=["POST"]),
    Route("/api/chatwoot/resume/{instance}", resume_integration, methods=["POST"]),
]
