"""GET /metrics: Prometheus text figures read from the store."""

from __future__ import annotations

import datetime as dt
import re

from starlette.testclient import TestClient

from app.management.accounts import create_account
from app.management.instances import CloudSettings, NewInstance, create_instance
from app.management.integrations import save_request
from app.management.provisioning import IntegrationRequest
from app.store.db import database
from app.store.models import RelayEvent, utcnow


def _seed() -> None:
    with database.connection_context():
        account, _ = create_account("Metrics")
        created = create_instance(
            account,
            NewInstance(
                name="m1",
                provider="cloud",
                cloud=CloudSettings(phone_number_id="1", access_token="t", app_secret="s"),
            ),
        )
        integration, _ = save_request(
            created.instance,
            IntegrationRequest(
                base_url="https://cw.example.com", account_id=1, api_token="tok", inbox_name="x"
            ),
        )
        now = utcnow()
        rows = [
            ("inbound", "delivered", 1, now - dt.timedelta(seconds=2), now),
            ("inbound", "delivered", 3, now - dt.timedelta(seconds=4), now),
            ("inbound", "pending", 2, now - dt.timedelta(seconds=30), None),
            ("outbound", "failed", 1, now - dt.timedelta(seconds=5), None),
        ]
        for i, (direction, status, attempts, created_at, delivered_at) in enumerate(rows):
            RelayEvent.create(
                integration=integration,
                direction=direction,
                natural_key=f"k{i}",
                chat_key="c",
                kind="text",
                payload="{}",
                status=status,
                attempts=attempts,
                created_at=created_at,
                delivered_at=delivered_at,
            )


def test_metrics_report_outcomes_lag_retries_and_latency(client: TestClient) -> None:
    _seed()

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'wootbridge_relay_events{direction="inbound",status="delivered"} 2' in text
    assert 'wootbridge_relay_events{direction="inbound",status="pending"} 1' in text
    assert 'wootbridge_relay_events{direction="outbound",status="failed"} 1' in text
    assert 'wootbridge_relay_retries{direction="inbound"} 3' in text
    lag = re.search(r'wootbridge_relay_queue_lag_seconds\{direction="inbound"\} ([\d.]+)', text)
    assert lag is not None and 29 <= float(lag.group(1)) < 60
    assert 'wootbridge_relay_latency_seconds_count{direction="inbound"} 2' in text
    median = re.search(
        r'wootbridge_relay_latency_seconds\{direction="inbound",quantile="0.5"\} ([\d.]+)', text
    )
    assert median is not None and float(median.group(1)) in (2.0, 4.0)
    assert 'wootbridge_integrations{status="provisioning"} 1' in text


def test_metrics_need_no_token_and_hold_no_secret(client: TestClient) -> None:
    _seed()

    text = client.get("/metrics").text

    assert "tok" not in text.replace("wootbridge", "")
    assert "cw.example.com" not in text
