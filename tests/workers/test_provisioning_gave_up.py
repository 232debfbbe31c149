"""A provisioning job that fails unexpectedly on every retry is recorded by Dramatiq's
``on_retry_exhausted`` actor, so ``set`` never waits forever and the integration says why."""

from __future__ import annotations

from dramatiq import Worker
from starlette.testclient import TestClient

from app.config import Settings
from app.store.db import database
from app.store.models import STATE_ERROR, ChatwootIntegration
from tests.api.helpers import auth, create_instance, seed_chatwoot, set_body
from tests.fakes.chatwoot import FakeChatwoot
from tests.relay.bridge import wait_until
from workers.provisioning import provision


def test_exhausted_retries_are_recorded_on_the_integration(
    settings: Settings,
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
) -> None:
    create_instance(client, account_token, "suporte")
    account_id, user_token = seed_chatwoot(chatwoot)
    body = set_body(chatwoot, account_id, user_token)
    activated = client.post("/api/chatwoot/set/suporte", json=body, headers=auth(account_token))
    assert activated.status_code == 201, activated.text
    with database.connection_context():
        integration = ChatwootIntegration.get()
        generation = int(integration.provision_requested) + 1
        # a real fault: the stored token no longer decrypts (corrupted at rest)
        ChatwootIntegration.update(
            chatwoot_api_token="v1.corrupt.AAAA", provision_requested=generation
        ).execute()

    provision.send_with_options(args=(integration.id, generation), max_retries=0)

    def settled_row() -> ChatwootIntegration:
        with database.connection_context():
            row: ChatwootIntegration = ChatwootIntegration.get_by_id(integration.id)
        return row

    wait_until(lambda: settled_row().provision_completed == generation)
    settled = settled_row()
    assert settled.state == STATE_ERROR
    assert settled.last_error.startswith("provisioning failed: ")
    assert settled.last_error == "provisioning failed: DecryptionError"  # the exception's name
