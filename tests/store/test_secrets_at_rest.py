"""DESIGN invariant 6, end to end: no secret in the database files, a PostgreSQL dump, the logs,
or the repr/str of the objects and errors that carry them.

The flow goes through the real API, the real worker and the fake Chatwoot: a cloud instance, a
gateway instance activated inline, failing ``set`` calls (wrong token, Chatwoot 500) and a
working ``set``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from app.config import Settings
from app.integrations.chatwoot import ChatwootClient
from app.integrations.errors import RemoteServerError, RemoteUnauthorized, RemoteUnreachable
from app.integrations.http import shared_client
from app.management.accounts import create_account
from app.relay.clients import client_for
from app.store.db import database
from app.store.models import ChatwootIntegration, Instance
from tests.api.helpers import auth, cloud_instance_body, gateway_instance_body, seed_chatwoot
from tests.api.helpers import set_body as chatwoot_set_body
from tests.conftest import (
    POSTGRES_URL,
    SecretLogCapture,
    _fresh_store,
    _postgres_reason,
    make_client,
)
from tests.fakes.chatwoot import FakeChatwoot

WRONG_TOKEN = "wrong-chatwoot-token-s3cr3t-0000"


@dataclass
class Flow:
    """What the flow produced: every plaintext secret (by label) and the public ids."""

    secrets: dict[str, str] = field(default_factory=dict)
    integration_ids: list[str] = field(default_factory=list)
    cw_account_id: int = 0

    def add(self, label: str, value: str | None) -> None:
        assert value, f"the flow did not produce {label}"
        assert len(value) >= 8, f"{label} too short to search for: {value!r}"
        self.secrets[label] = value


def _path_secret(webhook_url: str, integration_id: str) -> str:
    head, _, secret = webhook_url.rpartition("/")
    assert head.endswith(f"/webhooks/chatwoot/{integration_id}"), webhook_url
    return secret


def run_flow(
    client: TestClient, account_token: str, fake: FakeChatwoot, *, failures: bool = False
) -> Flow:
    flow = Flow()
    flow.add("account token", account_token)
    cw_account_id, cw_token = seed_chatwoot(fake)
    flow.cw_account_id = cw_account_id
    flow.add("chatwootApiToken", cw_token)

    cloud = cloud_instance_body("suporte")
    created = client.post("/api/instance/new", json=cloud, headers=auth(account_token))
    assert created.status_code == 201, created.text
    flow.add("cloudAccessToken", cloud["cloudAccessToken"])
    flow.add("cloudAppSecret", cloud["cloudAppSecret"])
    flow.add("verify token", created.json()["instance"]["verifyToken"])
    flow.add("cloud instance token", created.json()["instance"]["token"])

    gateway = gateway_instance_body(
        "vendas",
        chatwootEnabled=True,
        chatwootBaseUrl=fake.base_url,
        chatwootAccountId=cw_account_id,
        chatwootApiToken=cw_token,
        chatwootInboxName="WhatsApp - Vendas",
    )
    created = client.post("/api/instance/new", json=gateway, headers=auth(account_token))
    assert created.status_code == 201, created.text
    assert created.json()["chatwoot"]["status"] == "active", created.text
    flow.add("gatewayToken", gateway["gatewayToken"])
    flow.add("gateway instance token", created.json()["instance"]["token"])

    if failures:
        _failing_sets(client, account_token, fake, cw_account_id, cw_token)
        flow.add("wrong chatwoot token", WRONG_TOKEN)

    response = client.post(
        "/api/chatwoot/set/suporte",
        json=chatwoot_set_body(fake, cw_account_id, cw_token),
        headers=auth(account_token),
    )
    assert response.status_code == 201, response.text

    for name in ("suporte", "vendas"):
        listed = client.get(f"/api/chatwoot/list/{name}", headers=auth(account_token))
        assert listed.status_code == 200, listed.text
        body = listed.json()
        assert body["status"] == "active"
        integration_id = body["bridge_integration_id"]
        flow.integration_ids.append(integration_id)
        flow.add(
            f"webhook path secret of {name}", _path_secret(body["webhook_url"], integration_id)
        )

    assert len(fake.inboxes) == 2
    for inbox in fake.inboxes.values():
        flow.add(f"inbox secret of {inbox['name']}", inbox["secret"])

    # tokens sent the other documented ways, and a hit on the secret webhook path
    by_query = client.get(f"/api/instance/list?token={account_token}")
    assert by_query.status_code == 200, by_query.text
    bearer = {"Authorization": f"Bearer {flow.secrets['cloud instance token']}"}
    assert client.get("/api/instance/list", headers=bearer).status_code == 200
    path_secret = flow.secrets["webhook path secret of suporte"]
    secret_path = f"/webhooks/chatwoot/{flow.integration_ids[0]}/{path_secret}"
    client.post(secret_path, json={"event": "conversation_updated"})
    return flow


def _failing_sets(
    client: TestClient, account_token: str, fake: FakeChatwoot, cw_account_id: int, cw_token: str
) -> None:
    wrong = client.post(
        "/api/chatwoot/set/suporte",
        json=chatwoot_set_body(fake, cw_account_id, WRONG_TOKEN),
        headers=auth(account_token),
    )
    assert wrong.status_code == 401, wrong.text
    assert wrong.json()["error"]["message"].startswith(
        "Chatwoot rejected the API token — verify chatwootApiToken. Detail: "
    )

    # Chatwoot fails with a 500 whose body echoes the token, on every retry
    fake.fail_next(
        "GET", r"^/api/v1/profile$", 500, body={"error": f"boom for {cw_token}"}, times=3
    )
    broken = client.post(
        "/api/chatwoot/set/suporte",
        json=chatwoot_set_body(fake, cw_account_id, cw_token),
        headers=auth(account_token),
    )
    assert broken.status_code == 502, broken.text
    message = broken.json()["error"]["message"]
    assert message.startswith(
        f"Chatwoot host unreachable — verify chatwootBaseUrl ({fake.base_url}). Detail: "
    )
    assert cw_token not in message
    fake.clear_faults()


def _leaks(text: str | bytes, flow: Flow) -> list[str]:
    if isinstance(text, bytes):
        return [label for label, value in flow.secrets.items() if value.encode() in text]
    return [label for label, value in flow.secrets.items() if value in text]


# --- (a) SQLite files ------------------------------------------------------------------------


def test_sqlite_files_hold_no_plaintext_secret(
    settings: Settings,
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
) -> None:
    flow = run_flow(client, account_token, chatwoot, failures=True)

    assert settings.database_url.startswith("sqlite:///")
    db_path = Path(settings.database_url.removeprefix("sqlite:///"))
    contents = b""
    for path in (db_path, Path(f"{db_path}-wal"), Path(f"{db_path}-journal")):
        if path.exists():
            contents += path.read_bytes()
    # the files really hold the flow's rows (so the search below means something)
    for integration_id in flow.integration_ids:
        assert integration_id.encode() in contents
    assert b"gateway.example.com" in contents
    assert _leaks(contents, flow) == []


# --- (b) PostgreSQL dump ---------------------------------------------------------------------


def _require_postgres() -> None:
    reason = _postgres_reason()
    if reason is None and shutil.which("pg_dump") is None:
        reason = "pg_dump is not installed"
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI must run the PostgreSQL tests)")
        pytest.skip(reason)


@pytest.fixture
def postgres_settings(settings: Settings) -> Iterator[Settings]:
    _require_postgres()
    current = replace(settings, database_url=POSTGRES_URL)
    _fresh_store(current)
    yield current
    database.close()


@pytest.mark.postgres
def test_postgres_dump_holds_no_plaintext_secret(
    postgres_settings: Settings, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    with make_client(postgres_settings) as client:
        with database.connection_context():
            _, account_token = create_account("Acme")
        flow = run_flow(client, account_token, chatwoot, failures=True)

    dump = subprocess.run(
        # = pg_dump -h 127.0.0.1 -U postgres test, unless TEST_POSTGRES_URL points elsewhere
        ["pg_dump", "--dbname", POSTGRES_URL],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    for integration_id in flow.integration_ids:
        assert integration_id.encode() in dump
    assert b"gateway.example.com" in dump
    assert _leaks(dump, flow) == []


# --- (c) logs --------------------------------------------------------------------------------


def _app_log_lines(capture: SecretLogCapture) -> list[str]:
    """Everything logged, except the test client's own request lines (httpx logs the URLs the
    test itself sends to http://testserver, query token included; the app never sees those)."""
    return [
        line
        for line in capture.lines
        if not (line.startswith("httpx ") and "http://testserver" in line)
    ]


def test_no_secret_in_any_log_line(
    all_logs: SecretLogCapture,
    settings: Settings,
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
) -> None:
    flow = run_flow(client, account_token, chatwoot, failures=True)
    with database.connection_context():
        instance = Instance.get(Instance.name == "suporte")
        integration = ChatwootIntegration.get(ChatwootIntegration.instance == instance)
    chatwoot.fail_next("GET", r"^/api/v1/profile$", 500, times=3)
    with pytest.raises(RemoteServerError):
        client_for(integration, settings).get_profile()
    deleted = client.delete("/api/instance/delete/vendas", headers=auth(account_token))
    assert deleted.status_code == 200, deleted.text

    lines = _app_log_lines(all_logs)
    joined = "\n".join(lines)
    # the capture saw the flow: access log, the worker's failure report, the client's calls
    assert "POST /api/chatwoot/set/suporte 401" in joined
    assert "provisioning failed" in joined
    assert "/api/v1/profile" in joined
    leaked = {
        label: [ln for ln in lines if flow.secrets[label] in ln] for label in _leaks(joined, flow)
    }
    assert leaked == {}


# --- (d) repr and str ------------------------------------------------------------------------


def _shown(exc: BaseException) -> str:
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


def test_reprs_and_client_errors_hold_no_secret(
    settings: Settings,
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
) -> None:
    flow = run_flow(client, account_token, chatwoot)
    with database.connection_context():
        instances = list(Instance.select())
        integrations = list(ChatwootIntegration.select())
    assert len(instances) == 2 and len(integrations) == 2
    clients = [client_for(integration, settings) for integration in integrations]
    shown = [repr(obj) for obj in [*instances, *integrations, *clients]]
    shown += [str(obj) for obj in [*instances, *integrations, *clients]]
    # the loaded rows keep ciphertext only; plaintext appears only when get_secret is called
    shown += [repr(obj.__data__) for obj in [*instances, *integrations]]
    assert _leaks("\n".join(shown), flow) == []

    cw_token = flow.secrets["chatwootApiToken"]
    http = shared_client(allow_private=True)
    errors: list[BaseException] = []

    wrong = ChatwootClient(chatwoot.base_url, flow.cw_account_id, WRONG_TOKEN, http=http)
    with pytest.raises(RemoteUnauthorized) as unauthorized:
        wrong.get_profile()
    errors.append(unauthorized.value)

    good = ChatwootClient(
        chatwoot.base_url, flow.cw_account_id, cw_token, http=http, retry_max_wait=0.01
    )
    chatwoot.fail_next("GET", r"/inboxes$", 500, body={"error": f"echo {cw_token}"}, times=3)
    with pytest.raises(RemoteServerError) as server_error:
        good.list_inboxes()
    errors.append(server_error.value)

    gone = ChatwootClient(
        FakeChatwoot.unused_url(), flow.cw_account_id, cw_token, http=http, retry_max_wait=0.01
    )
    with pytest.raises(RemoteUnreachable) as unreachable:
        gone.get_profile()
    errors.append(unreachable.value)

    for error in errors:
        text = _shown(error)
        assert cw_token not in text
        assert WRONG_TOKEN not in text
        assert _leaks(text, flow) == []
    assert "[redacted]" in str(server_error.value)
