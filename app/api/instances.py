"""``/api/instance/*``: create, list and delete WhatsApp instances (API.md, Instances)."""

from __future__ import annotations

import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.api.activation import Activation, start
from app.api.auth import require_account_token, resolve_instance
from app.api.common import in_db, principal_of, settings_of
from app.api.errors import ApiError, invalid_body
from app.api.integration_body import base_url_refusal, integration_request
from app.api.middleware import GATE_MESSAGE
from app.api.names import INSTANCE_NAME, is_instance_name
from app.api.validation import (
    http_url,
    optional_bool,
    optional_int_between,
    optional_str,
    read_json_object,
    required_header_token,
    required_str,
)
from app.config import Settings
from app.integrations.urlguard import UrlNotAllowed, check_url_allowed
from app.integrations.whatsapp.pacing import MAX_MESSAGES_PER_SECOND
from app.management import instances as service
from app.management.integrations import record_failure, rfc3339
from app.management.provisioning import ProvisioningFailure
from app.store.models import PROVIDER_CLOUD, PROVIDER_GATEWAY, ChatwootIntegration, Instance

NAME_PATTERN = INSTANCE_NAME
TOKEN_PATTERN = re.compile(r"[\x21-\x7e]{8,256}")
BUSINESS_ACCOUNT_ID = re.compile(r"[0-9]{1,32}")  # a WhatsApp Business Account id: digits
NAME_TAKEN = "Instance name already exists"
TOKEN_TAKEN = "Instance token already exists"  # noqa: S105
NO_ENCRYPTION_KEY = "encryption key not configured"


def parse_new_instance(body: dict[str, Any]) -> service.NewInstance:
    name = required_str(body, "name", max_len=64, pattern=NAME_PATTERN)
    token = optional_str(body, "token", max_len=256, pattern=TOKEN_PATTERN)
    provider = required_str(body, "provider", max_len=16)
    if provider == PROVIDER_CLOUD:
        cloud = service.CloudSettings(
            phone_number_id=required_str(body, "cloudPhoneNumberId", max_len=64),
            access_token=required_header_token(body, "cloudAccessToken"),
            app_secret=required_str(body, "cloudAppSecret", max_len=500),
            verify_token=optional_str(body, "cloudVerifyToken", max_len=500),
            api_base_url=http_url(body, "cloudApiBaseUrl", required=False),
            business_account_id=optional_str(
                body, "cloudBusinessAccountId", max_len=32, pattern=BUSINESS_ACCOUNT_ID
            ),
            messages_per_second=optional_int_between(
                body, "cloudMessagesPerSecond", minimum=1, maximum=MAX_MESSAGES_PER_SECOND
            ),
        )
        return service.NewInstance(name=name, provider=provider, token=token, cloud=cloud)
    if provider == PROVIDER_GATEWAY:
        base_url = http_url(body, "gatewayBaseUrl", required=True)
        assert base_url is not None
        gateway = service.GatewaySettings(
            base_url=base_url,
            token=required_header_token(body, "gatewayToken"),
            instance=optional_str(body, "gatewayInstance", max_len=200),
        )
        return service.NewInstance(name=name, provider=provider, token=token, gateway=gateway)
    raise invalid_body("provider", 'must be "cloud" or "gateway"')


async def guard_provider_urls(settings: Settings, spec: service.NewInstance) -> None:
    """The WhatsApp side's URLs receive our secrets: same private-address rule as Chatwoot."""
    checks = []
    if spec.gateway is not None:
        checks.append(("gatewayBaseUrl", spec.gateway.base_url))
    if spec.cloud is not None and spec.cloud.api_base_url is not None:
        checks.append(("cloudApiBaseUrl", spec.cloud.api_base_url))
    for field, url in checks:
        try:
            await run_in_threadpool(
                check_url_allowed, url, allow_private=settings.allow_private_urls
            )
        except UrlNotAllowed as exc:
            raise ApiError(400, f"{field} is not allowed: {exc}") from exc


async def new_instance(request: Request) -> JSONResponse:
    """Validate the whole body (inline ``chatwoot*`` fields included) before storing anything,
    then store the instance and its integration request in one transaction."""
    settings = settings_of(request)
    principal = await principal_of(request)
    account = require_account_token(principal)
    body = await read_json_object(request)
    spec = parse_new_instance(body)
    chatwoot_wanted = optional_bool(body, "chatwootEnabled")
    wanted = integration_request(body, spec.name) if chatwoot_wanted else None
    await guard_provider_urls(settings, spec)
    if settings.current_key() is None:
        raise ApiError(503, NO_ENCRYPTION_KEY)
    integrate = wanted if settings.chatwoot_module_enabled else None
    refusal = await base_url_refusal(settings, integrate) if integrate is not None else None
    try:
        created = await in_db(service.create_instance, account, spec, integrate)
    except service.InstanceNameTaken as exc:
        raise ApiError(409, NAME_TAKEN) from exc
    except service.InstanceTokenTaken as exc:
        raise ApiError(409, TOKEN_TAKEN) from exc
    payload: dict[str, Any] = {
        "success": True,
        "message": "Instance created",
        "instance": _created_instance_json(settings, created),
    }
    if wanted is not None:
        payload["chatwoot"] = await _inline_activation(settings, created, refusal)
    return JSONResponse(payload, status_code=201)


def _created_instance_json(settings: Settings, created: service.CreatedInstance) -> dict[str, Any]:
    instance = created.instance
    shown: dict[str, Any] = {
        "name": instance.name,
        "token": created.token,
        "provider": instance.provider,
        "webhookUrl": service.whatsapp_webhook_url(settings, instance),
    }
    if created.verify_token is not None:
        shown["verifyToken"] = created.verify_token
    shown["createdAt"] = rfc3339(instance.created_at)
    return shown


async def _inline_activation(
    settings: Settings, created: service.CreatedInstance, refusal: ProvisioningFailure | None
) -> dict[str, Any]:
    """Activate Chatwoot for a new instance; a failure is reported, never fatal."""
    integration = created.integration
    if integration is None:  # the module is off: nothing was stored for it
        return {"status": "error", "error": GATE_MESSAGE}
    if refusal is not None:
        rejected = await in_db(record_failure, integration.id, created.generation, refusal)
        return _activation_json(Activation(rejected or integration, settled=True))
    return _activation_json(await start(settings, integration, created.generation))


def _activation_json(activation: Activation) -> dict[str, Any]:
    integration = activation.integration
    failure = activation.failure
    if failure is not None:
        return {
            "status": "error",
            "error": failure.message,
            "bridge_integration_id": integration.id,
        }
    if not activation.settled:
        return {"status": "provisioning", "bridge_integration_id": integration.id}
    return {
        "status": integration.status,
        "bridge_integration_id": integration.id,
        "chatwoot_inbox_id": integration.chatwoot_inbox_id,
    }


def _instance_summary(
    settings: Settings, instance: Instance, integration: ChatwootIntegration | None
) -> dict[str, Any]:
    return {
        "name": instance.name,
        "provider": instance.provider,
        "webhookUrl": service.whatsapp_webhook_url(settings, instance),
        "createdAt": rfc3339(instance.created_at),
        "chatwoot": {
            "enabled": integration is not None,
            "status": integration.status if integration is not None else None,
        },
    }


async def list_instances(request: Request) -> JSONResponse:
    settings = settings_of(request)
    principal = await principal_of(request)
    if principal.instance is not None:
        own = principal.instance
        rows = [(own, await in_db(service.integration_of, own))]
    else:
        raw = request.query_params.get("instanceName")
        names = [n.strip() for n in raw.split(",") if n.strip()] if raw else None
        if names is not None:  # a name no instance can have matches nothing; keep it off SQL
            names = [n for n in names if is_instance_name(n)]
        rows = await in_db(service.list_instances, principal.account, names)
    found = [_instance_summary(settings, inst, integ) for inst, integ in rows]
    noun = "Instance" if len(found) == 1 else "Instances"
    return JSONResponse(
        {"success": True, "message": f"{len(found)} {noun} found", "instances": found}
    )


async def delete_instance(request: Request) -> JSONResponse:
    principal = await principal_of(request)
    require_account_token(principal)
    instance = await in_db(resolve_instance, principal, request.path_params["instance"])
    await in_db(service.delete_instance, instance)
    return JSONResponse(
        {"success": True, "message": "Instance deleted", "instance": {"status": "deleted"}}
    )


routes = [
    Route("/api/instance/new", new_instance, methods=["POST"]),
    Route("/api/instance/list", list_instances, methods=["GET"]),
    Route("/api/instance/delete/{instance}", delete_instance, methods=["DELETE"]),
]
