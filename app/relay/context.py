"""Building what a worker needs to deliver an integration's events: its Chatwoot client and a
media fetcher for its WhatsApp provider (clients are cheap; the pooled HTTP client is shared)."""

from __future__ import annotations

from app.config import get_settings
from app.integrations.http import shared_client
from app.integrations.whatsapp.media import CloudMediaClient, GatewayMediaClient
from app.relay.inbound import InboundContext, MediaFetcher
from app.relay.provisioning import client_for
from app.store.models import PROVIDER_CLOUD, ChatwootIntegration, Instance


def media_fetcher(instance: Instance) -> MediaFetcher:
    settings = get_settings()
    http = shared_client(allow_private=settings.allow_private_urls)
    attempts, max_wait = settings.remote_retry_attempts, settings.remote_retry_max_wait
    timeout = settings.remote_timeout_seconds
    if instance.provider == PROVIDER_CLOUD:
        token = instance.get_secret("cloud_access_token")
        assert token is not None and instance.cloud_api_base_url is not None
        cloud = CloudMediaClient(
            instance.cloud_api_base_url,
            token,
            http=http,
            retry_attempts=attempts,
            retry_max_wait=max_wait,
            timeout=timeout,
        )
        return cloud.fetch
    gateway = GatewayMediaClient(
        http=http, retry_attempts=attempts, retry_max_wait=max_wait, timeout=timeout
    )
    return gateway.fetch


def inbound_context(integration: ChatwootIntegration) -> InboundContext:
    instance: Instance = integration.instance
    return InboundContext(
        integration=integration,
        client=client_for(integration, get_settings()),
        fetch_media=media_fetcher(instance),
    )
