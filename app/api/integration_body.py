"""The Chatwoot integration fields of a request body (``set`` and ``instance/new`` share them),
and the check of the Chatwoot URL against private networks."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

from app.api.validation import (
    http_url,
    optional_bool,
    optional_str,
    required_header_token,
    required_positive_int,
)
from app.config import Settings
from app.integrations.urlguard import UrlNotAllowed, check_url_allowed
from app.management.provisioning import IntegrationRequest, ProvisioningFailure, classify


def integration_request(body: dict[str, Any], instance_name: str) -> IntegrationRequest:
    """Validate the integration fields of a body.

    ``set`` documents bare flag names (``signMessages``), ``instance/new`` prefixed ones
    (``chatwootSignMessages``); both spellings are accepted on both routes, as with
    ``inboxName``/``chatwootInboxName``.
    """

    def flag(name: str, default: bool = False) -> bool:
        if name in body:
            return optional_bool(body, name, default)
        return optional_bool(body, f"chatwoot{name[0].upper()}{name[1:]}", default)

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
        api_token=required_header_token(body, "chatwootApiToken", max_len=500),
        inbox_name=inbox_name,
        sign_messages=flag("signMessages"),
        ignore_groups=flag("ignoreGroups"),
        start_as_pending=flag("startAsPending"),
        reopen_resolved=flag("reopenResolved"),
        mark_read=flag("markRead", default=True),
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
