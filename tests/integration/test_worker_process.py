"""The provisioning path through a real Redis and a real `dramatiq` worker process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dramatiq
import pytest
from starlette.testclient import TestClient

from app.config import Settings
from tests.api.helpers import auth, create_instance, seed_chatwoot, set_body
from tests.fakes.chatwoot import FakeChatwoot

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def worker_process(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    """`dramatiq workers` as Procfile runs it, on the test's database and Redis namespace."""
    dramatiq.get_broker().flush_all()
    env = {**os.environ, "DATABASE_URL": settings.database_url, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "workers", "--processes", "1", "--threads", "2"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    assert b"Traceback" not in output, output.decode(errors="replace")


@pytest.mark.integration
def test_set_is_provisioned_by_a_separate_worker_process(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker_process: subprocess.Popen[bytes],
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)

    response = client.post(
        "/api/chatwoot/set/suporte",
        json=set_body(chatwoot, account_id, cw_token),
        headers=auth(account_token),
    )

    assert response.status_code == 201, response.text
    assert worker_process.poll() is None
    [inbox] = chatwoot.inboxes.values()
    listed = client.get("/api/chatwoot/list/suporte", headers=auth(account_token)).json()
    assert listed["chatwoot_inbox_id"] == inbox["id"]
    assert listed["status"] == "active"
