"""The clients a worker relays an integration's events with: its Chatwoot client, and its
WhatsApp provider's media fetcher, sender and Chatwoot file fetcher (clients are cheap; the
pooled HTTP client is shared by the whole process). Provisioning uses :func:`client_for` too."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import httpx

from app.config import Settings, get_settings
from app.integrations.chatwoot import ChatwootClient
from app.integrations.chatwoot_files import fetch_attachment
from app.integrations.files import File, Media
from app.integrations.http import shared_client
from app.integrations.whatsapp.cloud_send import CloudSender
from app.integrations.whatsapp.gateway_send import GatewaySender
from app.integrations.whatsapp.media import CloudMediaClient, GatewayMediaClient
from app.integrations.whatsapp.pacing import DEFAULT_MESSAGES_PER_SECOND, RedisPacer
from app.integrations.whatsapp.send import WhatsAppSender
from app.store.models import PROVIDER_CLOUD, ChatwootIntegration, Instance

MediaFetcher = Callable[[Media], File]  # an inbound attachment's bytes, from WhatsApp
FileFetcher = Callable[[str], File]  # an agent's attachment's bytes, from its Chatwoot URL


C = TypeVar("C")
G = TypeVar("G")


def client_for(
    integration: ChatwootIntegration, settings: Settings, attempts: int | None = None
) -> ChatwootClient:
    """A client for the integration's Chatwoot; ``attempts`` overrides the retry count."""
    token = integration.get_secret("chatwoot_api_token")
    assert token is not None
    return ChatwootClient(
        integration.chatwoot_base_url,
        integration.chatwoot_account_id,
        token,
        http=shared_client(allow_private=settings.allow_private_urls),
        retry_attempts=attempts or settings.remote_retry_attempts,
        retry_max_wait=settings.remote_retry_max_wait,
        timeout=settings.remote_timeout_seconds,
    )


def _http(settings: Settings) -> httpx.Client:
    return shared_client(allow_private=settings.allow_private_urls)


def media_fetcher(instance: Instance) -> MediaFetcher:
    settings = get_settings()
    attempts, max_wait = settings.remote_retry_attempts, settings.remote_retry_max_wait
    timeout = settings.remote_timeout_seconds
    if instance.provider == PROVIDER_CLOUD:
        token = instance.get_secret("cloud_access_token")
        assert token is not None and instance.cloud_api_base_url is not None
        cloud = CloudMediaClient(
            instance.cloud_api_base_url,
            token,
            http=_http(settings),
            retry_attempts=attempts,
            retry_max_wait=max_wait,
            timeout=timeout,
        )
        return cloud.fetch
    gateway = GatewayMediaClient(
        http=_http(settings), retry_attempts=attempts, retry_max_wait=max_wait, timeout=timeout
    )
    return gateway.fetch


def whatsapp_sender(instance: Instance) -> WhatsAppSender:
    settings = get_settings()
    sender: WhatsAppSender = provider_client(
        instance,
        CloudSender,
        GatewaySender,
        http=_http(settings),
        retry_attempts=settings.remote_retry_attempts,
        retry_max_wait=settings.remote_retry_max_wait,
        timeout=settings.remote_timeout_seconds,
    )
    return sender


def provider_client(
    instance: Instance,
    cloud: Callable[..., C],
    gateway: Callable[..., G],
    **options: Any,
) -> C | G:
    """``cloud(base URL, phone number id, token, pacer=…, **options)`` for a Cloud API instance,
    else ``gateway(base URL, gateway instance, token, **options)``: a sender, receipts, …"""
    if instance.provider == PROVIDER_CLOUD:
        token = instance.get_secret("cloud_access_token")
        assert token is not None and instance.cloud_api_base_url is not None
        base, name = instance.cloud_api_base_url, str(instance.cloud_phone_number_id)
        return cloud(base, name, token, pacer=cloud_pacer(instance), **options)
    token = instance.get_secret("gateway_token")
    assert token is not None and instance.gateway_base_url is not None
    name = str(instance.gateway_instance or instance.name)
    return gateway(instance.gateway_base_url, name, token, **options)


def cloud_pacer(instance: Instance) -> RedisPacer:
    """The send pacer of a Cloud instance's number (``cloudMessagesPerSecond``, default 80),
    shared through Redis by every worker; a sender built by :func:`whatsapp_sender` uses it."""
    rate = instance.cloud_messages_per_second or DEFAULT_MESSAGES_PER_SECOND
    return RedisPacer(str(instance.cloud_phone_number_id), int(rate))


def file_fetcher() -> FileFetcher:
    """Downloads an agent's attachment (no credentials: Chatwoot's URLs are signed)."""
    settings = get_settings()
    return partial(fetch_attachment, http=_http(settings), timeout=settings.remote_timeout_seconds)


def passes_links(instance: Instance) -> bool:
    """The gateway fetches media URLs itself; the Cloud API needs an upload."""
    return bool(instance.provider != PROVIDER_CLOUD)
