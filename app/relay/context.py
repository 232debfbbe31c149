"""Building what a worker needs to relay an integration's events: its Chatwoot client, and
its WhatsApp provider's media fetcher and sender (clients are cheap; the pooled HTTP client
is shared by the whole process)."""

from __future__ import annotations

from functools import partial

import httpx

from app.config import Settings, get_settings
from app.integrations.chatwoot_files import fetch_attachment
from app.integrations.http import shared_client
from app.integrations.whatsapp.cloud_send import CloudSender
from app.integrations.whatsapp.gateway_send import GatewaySender
from app.integrations.whatsapp.media import CloudMediaClient, GatewayMediaClient
from app.integrations.whatsapp.send import WhatsAppSender
from app.relay.inbound import InboundContext, MediaFetcher, Waker
from app.relay.outbound import OutboundContext
from app.relay.provisioning import client_for
from app.store.models import PROVIDER_CLOUD, ChatwootIntegration, Instance


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
    http, attempts = _http(settings), settings.remote_retry_attempts
    max_wait, timeout = settings.remote_retry_max_wait, settings.remote_timeout_seconds
    if instance.provider == PROVIDER_CLOUD:
        token = instance.get_secret("cloud_access_token")
        assert token is not None and instance.cloud_api_base_url is not None
        return CloudSender(
            instance.cloud_api_base_url,
            str(instance.cloud_phone_number_id),
            token,
            http=http,
            retry_attempts=attempts,
            retry_max_wait=max_wait,
            timeout=timeout,
        )
    token = instance.get_secret("gateway_token")
    assert token is not None and instance.gateway_base_url is not None
    return GatewaySender(
        instance.gateway_base_url,
        str(instance.gateway_instance or instance.name),
        token,
        http=http,
        retry_attempts=attempts,
        retry_max_wait=max_wait,
        timeout=timeout,
    )


def inbound_context(integration: ChatwootIntegration, wake: Waker) -> InboundContext:
    instance: Instance = integration.instance
    return InboundContext(
        integration=integration,
        client=client_for(integration, get_settings()),
        fetch_media=media_fetcher(instance),
        wake=wake,
    )


def outbound_context(integration: ChatwootIntegration) -> OutboundContext:
    settings = get_settings()
    instance: Instance = integration.instance
    return OutboundContext(
        integration=integration,
        sender=whatsapp_sender(instance),
        chatwoot=client_for(integration, settings),
        fetch_file=partial(
            fetch_attachment, http=_http(settings), timeout=settings.remote_timeout_seconds
        ),
        passes_links=instance.provider != PROVIDER_CLOUD,
    )
