"""``/api/chatwoot/*``: the Chatwoot module of the management API (API.md)."""

from __future__ import annotations

import logging

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.api.activation import activate
from app.api.auth import Principal, resolve_instance
from app.api.common import in_db, principal_of, settings_of
from app.api.errors import NO_INTEGRATION, ApiError
from app.api.failed_params import failed_query, retry_ids
from app.api.integration_body import base_url_refusal, integration_request
from app.api.queue import enqueue_lanes, enqueue_replay
from app.api.validation import read_json_object
from app.config import Settings
from app.integrations.errors import RemoteError, RemoteNotFound, RemoteUnauthorized
from app.management import failed_events, integrations
from app.management.instances import integration_of
from app.management.provisioning import classify, webhook_url
from app.relay.clients import client_for
from app.store.models import STATE_ACTIVE, ChatwootIntegration, Instance

logger = logging.getLogger(__name__)

NO_INTEGRATION_TO_DELETE = "no chatwoot integration to delete"


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
    oldest_pending_at = await in_db(failed_events.oldest_pending_at, integration)
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
            "mark_read": integration.mark_read,
            "webhook_url": webhook_url(settings, integration),
            "relay": {
                "pending": counters.pending,
                "delivered": counters.delivered,
                "failed": counters.failed,
                "last_delivered_at": counters.last_delivered_at,
                "oldest_pending_at": oldest_pending_at,
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


async def list_failed_events(request: Request) -> JSONResponse:
    instance, integration = await _instance_and_integration(request)
    query = failed_query(request.query_params)
    page = await in_db(
        failed_events.list_failed, integration, query.direction, query.limit, query.before
    )
    return JSONResponse(
        {
            "instance": instance.name,
            "failed": [event.as_json() for event in page.events],
            "next_before": page.next_before,
        }
    )


async def retry_failed_events(request: Request) -> JSONResponse:
    """Failed events back to pending, then their lanes enqueued (one call per direction);
    if the queue is unreachable the workers' recovery sweep delivers them."""
    instance, integration = await _instance_and_integration(request)
    ids = retry_ids(await read_json_object(request))
    result = await in_db(failed_events.retry_failed, integration, ids)
    for direction in failed_events.DIRECTIONS:
        chat_keys = result.chat_keys(direction)
        if chat_keys:
            await enqueue_lanes(direction, integration.id, chat_keys)
    return JSONResponse(
        {"instance": instance.name, "retrying": result.retrying, "skipped": result.skipped},
        status_code=202,
    )


routes = [
    Route("/api/chatwoot/set/{instance}", set_integration, methods=["POST"]),
    Route("/api/chatwoot/list/{instance}", list_integration, methods=["GET"]),
    Route("/api/chatwoot/delete/{instance}", delete_integration, methods=["DELETE"]),
    Route("/api/chatwoot/pause/{instance}", pause_integration, methods=["POST"]),
    Route("/api/chatwoot/resume/{instance}", resume_integration, methods=["POST"]),
    Route("/api/chatwoot/failed/{instance}", list_failed_events, methods=["GET"]),
    Route("/api/chatwoot/retry/{instance}", retry_failed_events, methods=["POST"]),
]
