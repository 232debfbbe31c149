"""GET /metrics: Prometheus text from the counters table, the store's indexes and Redis."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import replace

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from starlette.testclient import TestClient

from app.config import Settings
from app.integrations import latency
from app.integrations.http import build_client
from app.management.accounts import create_account
from app.management.instances import CloudSettings, NewInstance, create_instance
from app.management.integrations import save_request
from app.management.provisioning import IntegrationRequest
from app.store.counters import bump_counters
from app.store.db import database
from app.store.models import ChatwootIntegration, RelayEvent, utcnow
from app.store.redis_client import get_redis
from tests.conftest import make_client
from tests.fakes.chatwoot import FakeChatwoot

COUNTERS = ("received", "relayed", "failed", "retried")


def _seed() -> ChatwootIntegration:
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
        for i, (status, age) in enumerate((("delivered", 90), ("pending", 30), ("pending", 5))):
            RelayEvent.create(
                integration=integration,
                direction="inbound",
                natural_key=f"k{i}",
                chat_key="c",
                kind="text",
                payload="{}",
                status=status,
                created_at=now - dt.timedelta(seconds=age),
            )
        with database.atomic():
            bump_counters(
                [
                    (integration.id, "inbound", "received", 3),
                    (integration.id, "inbound", "relayed", 1),
                    (integration.id, "outbound", "failed", 2),
                    (integration.id, "outbound", "retried", 4),
                ]
            )
        return integration


def _families(text: str) -> dict[str, tuple[str, list[Sample]]]:
    return {f.name: (f.type, f.samples) for f in text_string_to_metric_families(text)}


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


@pytest.fixture
def clean_histograms(settings: Settings) -> Iterator[None]:
    latency.flush()
    get_redis().delete(latency.histogram_key())
    yield
    latency.flush()
    get_redis().delete(latency.histogram_key())


def test_counters_lag_and_integrations_parse_with_their_types(client: TestClient) -> None:
    _seed()

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = _families(response.text)
    for outcome in COUNTERS:
        kind, samples = families[f"wootbridge_events_{outcome}"]
        assert kind == "counter"
        assert {s.labels["direction"] for s in samples if s.name.endswith("_total")} == {
            "inbound",
            "outbound",
        }
    received = families["wootbridge_events_received"][1]
    assert _value(received, "wootbridge_events_received_total", direction="inbound") == 3
    assert _value(received, "wootbridge_events_received_total", direction="outbound") == 0
    relayed = families["wootbridge_events_relayed"][1]
    assert _value(relayed, "wootbridge_events_relayed_total", direction="inbound") == 1
    failed = families["wootbridge_events_failed"][1]
    assert _value(failed, "wootbridge_events_failed_total", direction="outbound") == 2
    retried = families["wootbridge_events_retried"][1]
    assert _value(retried, "wootbridge_events_retried_total", direction="outbound") == 4
    kind, lag = families["wootbridge_queue_lag_seconds"]
    assert kind == "gauge" and 29 <= lag[0].value < 60
    kind, integrations = families["wootbridge_integrations"]
    assert kind == "gauge"
    assert _value(integrations, "wootbridge_integrations", status="provisioning") == 1
    assert _value(integrations, "wootbridge_integrations", status="active") == 0


def test_no_pending_event_means_no_lag(client: TestClient) -> None:
    families = _families(client.get("/metrics").text)
    assert families["wootbridge_queue_lag_seconds"][1][0].value == 0
    received = families["wootbridge_events_received"][1]
    assert _value(received, "wootbridge_events_received_total", direction="inbound") == 0


def test_remote_calls_fill_the_latency_histograms(
    client: TestClient, chatwoot: FakeChatwoot, clean_histograms: None
) -> None:
    http = build_client(allow_private=True)
    ok = http.get(f"{chatwoot.base_url}/api/v1/profile", headers={"api_access_token": "nope"})
    missing = http.get(f"{chatwoot.base_url}/v20.0/123/messages")  # not a Chatwoot path
    http.close()
    assert latency.flush()

    kind, samples = _families(client.get("/metrics").text)["wootbridge_remote_call_seconds"]

    assert kind == "histogram"
    chatwoot_outcome = "ok" if ok.status_code < 400 else "http_error"
    labels = {"remote": "chatwoot", "outcome": chatwoot_outcome}
    assert _value(samples, "wootbridge_remote_call_seconds_count", **labels) == 1
    assert _value(samples, "wootbridge_remote_call_seconds_bucket", **labels, le="+Inf") == 1
    buckets = [
        s for s in samples if s.name.endswith("_bucket") and s.labels["remote"] == "chatwoot"
    ]
    assert len(buckets) == len(latency.BUCKETS) + 1
    assert 0 < _value(samples, "wootbridge_remote_call_seconds_sum", **labels) < 5
    outcome = "ok" if missing.status_code < 400 else "http_error"
    whatsapp = {"remote": "whatsapp", "outcome": outcome}
    assert _value(samples, "wootbridge_remote_call_seconds_count", **whatsapp) == 1


def test_redis_down_still_answers_without_histograms(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    _seed()
    unreachable = replace(settings, redis_url="redis://127.0.0.1:1/0")

    with make_client(unreachable) as client, caplog.at_level(logging.WARNING):
        response = client.get("/metrics")

    assert response.status_code == 200
    families = _families(response.text)
    assert families["wootbridge_latency_store_up"][1][0].value == 0
    assert families["wootbridge_remote_call_seconds"][1] == []
    received = families["wootbridge_events_received"][1]
    assert _value(received, "wootbridge_events_received_total", direction="inbound") == 3
    assert "remote call histograms unavailable" in caplog.text


def test_latency_survives_redis_being_down(
    settings: Settings, chatwoot: FakeChatwoot, clean_histograms: None
) -> None:
    """A remote call never fails for Redis; its observation waits for the next flush."""
    from app.config import use_settings
    from app.store.redis_client import reset_clients

    use_settings(replace(settings, redis_url="redis://127.0.0.1:1/0"))
    reset_clients()
    try:
        with build_client(allow_private=True) as http:
            answer = http.get(f"{chatwoot.base_url}/api/v1/profile")
        assert answer.status_code in (200, 401)
        assert latency.flush() is False
    finally:
        use_settings(settings)
        reset_clients()
    assert latency.flush() is True
    stored = latency.parse(get_redis().hgetall(latency.histogram_key()))
    assert [(h.remote, h.count) for h in stored] == [("chatwoot", 1)]


def test_metrics_need_no_token_and_hold_no_secret(client: TestClient) -> None:
    _seed()

    text = client.get("/metrics").text

    assert "tok" not in text.replace("wootbridge", "")
    assert "cw.example.com" not in text


def test_metrics_on_postgres_too(store_settings: Settings) -> None:
    _seed()
    with make_client(store_settings) as client:
        families = _families(client.get("/metrics").text)
    relayed = families["wootbridge_events_relayed"][1]
    assert _value(relayed, "wootbridge_events_relayed_total", direction="inbound") == 1
    assert 29 <= families["wootbridge_queue_lag_seconds"][1][0].value < 60
