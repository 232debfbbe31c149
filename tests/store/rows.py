"""Rows the storage tests start from, made the way the application makes them."""

from __future__ import annotations

from app.management.accounts import create_account
from app.management.instances import CloudSettings, NewInstance, create_instance
from app.management.integrations import save_request
from app.management.provisioning import IntegrationRequest
from app.store.models import ChatwootIntegration


def integration_named(name: str) -> ChatwootIntegration:
    """A Cloud instance ``name`` of a new account, with its Chatwoot integration."""
    account, _ = create_account(f"Acct {name}")
    cloud = CloudSettings(phone_number_id="1", access_token="t", app_secret="s")
    instance = create_instance(account, NewInstance(name=name, provider="cloud", cloud=cloud))
    request = IntegrationRequest(
        base_url="https://cw.example.com", account_id=1, api_token="tok", inbox_name=name
    )
    integration, _ = save_request(instance.instance, request)
    return integration
