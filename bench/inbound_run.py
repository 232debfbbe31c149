"""The measurements of ``bench.inbound`` (imported after the environment is prepared)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from app.config import get_settings
from app.store.db import database
from app.store.models import ChatLink, RelayEvent
from bench.harness import FakeChatwootProcess, to_epoch, wait_for
from bench.loadgen import LoadResult, Request, percentile, run_load
from bench.runtime import bare_starlette, drain_rate
from tests.integration.stack import Stack
from tests.relay.bridge import APP_SECRET, PHONE_NUMBER_ID, sign, text_body


def webhook_requests(instance: str, phase: str, messages: int, chats: int) -> list[Request]:
    requests = []
    for i in range(messages):
        chat = i % chats
        body = json.dumps(
            text_body(f"1650556{chat:04d}", f"wamid.{phase}.{i}", f"{phase} {i} of chat {chat}")
        ).encode()
        headers = {"content-type": "application/json", "x-hub-signature-256": sign(body)}
        requests.append(Request(f"/webhooks/whatsapp/cloud/{instance}", body, headers))
    return requests


def create_instance(stack: Stack, fake: FakeChatwootProcess) -> str:
    assert stack.http is not None
    stack.account_token_value = stack.account_token()
    response = stack.http.post(
        "/api/instance/new",
        headers={"token": stack.account_token_value},
        json={
            "name": "bench",
            "provider": "cloud",
            "cloudPhoneNumberId": PHONE_NUMBER_ID,
            "cloudAccessToken": "EAAG-bench",
            "cloudAppSecret": APP_SECRET,
            "chatwootEnabled": True,
            "chatwootBaseUrl": fake.base_url,
            "chatwootAccountId": fake.account_id,
            "chatwootApiToken": fake.token,
        },
    )
    assert response.status_code == 201 and response.json()["chatwoot"]["status"] == "active"
    return "bench"


@dataclass
class RelayFigures:
    ingest: LoadResult
    e2e_latencies: list[float]
    e2e_rate: float
    light_latencies: list[float]
    backlog_rate: float
    calls_per_message: float


def measure_relay(
    stack: Stack, fake: FakeChatwootProcess, messages: int, chats: int, concurrency: int
) -> RelayFigures:
    instance = create_instance(stack, fake)
    token = stack.account_token_value
    # A: a burst of webhooks while the workers relay (ingest and end-to-end figures)
    calls_before = fake.stats()["calls"]
    burst = webhook_requests(instance, "a", messages, chats)
    ingest = run_load(stack.base_url, burst, concurrency)
    wait_for(lambda: fake.stats()["messages"] >= messages, 600, "relay of the burst")
    calls = fake.stats()["calls"] - calls_before
    e2e = latencies_of(ingest, "a", messages)
    e2e_rate = messages / (max(delivered_at("a").values()) - min(ingest.started_at))
    # B: light load, one message at a time
    light = webhook_requests(instance, "b", 50, 5)
    light_result = run_load(stack.base_url, light, 1, pause=0.05)
    wait_for(lambda: fake.stats()["messages"] >= messages + 50, 60, "light load")
    light_latencies = latencies_of(light_result, "b", 50)
    # C: drain a backlog held by pause, from resume to the last delivery
    assert stack.http is not None
    stack.http.post(f"/api/chatwoot/pause/{instance}", headers={"token": token})
    run_load(stack.base_url, webhook_requests(instance, "c", messages, chats), concurrency)
    begin = time.time()
    stack.http.post(f"/api/chatwoot/resume/{instance}", headers={"token": token})
    target = 2 * messages + 50
    wait_for(lambda: fake.stats()["messages"] >= target, 600, "backlog drain")
    backlog_rate = messages / (max(delivered_at("c").values()) - begin)
    return RelayFigures(ingest, e2e, e2e_rate, light_latencies, backlog_rate, calls / messages)


def delivered_at(phase: str) -> dict[str, float]:
    with database.connection_context():
        rows: list[tuple[str, object]] = list(
            RelayEvent.select(RelayEvent.message_id, RelayEvent.delivered_at)
            .where(RelayEvent.message_id.startswith(f"wamid.{phase}."))
            .tuples()  # type: ignore[arg-type]
        )
    return {str(mid): to_epoch(at) for mid, at in rows if at is not None}


def latencies_of(result: LoadResult, phase: str, count: int) -> list[float]:
    """Webhook sent → our POST to Chatwoot answered, per message, in ms."""
    delivered = delivered_at(phase)
    return [(delivered[f"wamid.{phase}.{i}"] - result.started_at[i]) * 1000 for i in range(count)]


def run(workdir: Path, messages: int, chats: int, concurrency: int) -> None:
    settings = get_settings()
    fake = FakeChatwootProcess.start()
    stack = Stack(settings, settings.database_url, workdir)
    try:
        bare = bare_starlette(webhook_requests("bare", "x", messages, chats), concurrency, workdir)
        stack.start_web()
        stack.start_workers(processes=2, threads=8)
        figures = measure_relay(stack, fake, messages, chats, concurrency)
        stack.stop()
        with database.connection_context():
            link = ChatLink.select().where(ChatLink.conversation_id.is_null(False)).first()
        post_url = (
            f"{fake.base_url}/api/v1/accounts/{fake.account_id}"
            f"/conversations/{link.conversation_id}/messages"
        )
        noop_rate = drain_rate("noop", (), messages, workdir)
        post_rate = drain_rate(
            "post_once",
            (
                post_url,
                {"api_access_token": fake.token},
                {"content": "baseline", "message_type": "incoming"},
            ),
            messages,
            workdir,
        )
    finally:
        stack.stop()
        fake.stop()
    report(messages, chats, concurrency, bare, figures, noop_rate, post_rate)


def report(
    messages: int,
    chats: int,
    concurrency: int,
    bare: LoadResult,
    f: RelayFigures,
    noop_rate: float,
    post_rate: float,
) -> None:
    def ms(values: list[float]) -> str:
        return f"{percentile(values, 50):6.0f} / {percentile(values, 99):6.0f} ms"

    print(
        f"\nwootbridge inbound benchmark: {messages} messages over {chats} chats, "
        f"{concurrency} concurrent senders, 2 worker processes x 8 threads, "
        f"{os.cpu_count()} CPUs"
    )
    rows = [
        (
            "webhook ingest",
            f"{f.ingest.rate:8.0f} req/s",
            f"bare Starlette {bare.rate:8.0f} req/s",
            f"{f.ingest.rate / bare.rate:5.2f}x",
        ),
        (
            "ingest p50 / p99",
            f"{f.ingest.percentile(50):6.1f} / {f.ingest.percentile(99):6.1f} ms",
            f"bare {bare.percentile(50):6.1f} / {bare.percentile(99):6.1f} ms",
            "",
        ),
        (
            "relay, backlog drain",
            f"{f.backlog_rate:8.0f} msg/s",
            f"one-POST actor {post_rate:8.0f} msg/s",
            f"{f.backlog_rate / post_rate:5.2f}x",
        ),
        ("", "", f"no-op actor {noop_rate:8.0f} msg/s", f"{f.backlog_rate / noop_rate:5.2f}x"),
        ("relay during the burst", f"{f.e2e_rate:8.0f} msg/s", "(bounded by ingest)", ""),
        ("end-to-end p50 / p99, burst", ms(f.e2e_latencies), "", ""),
        ("end-to-end p50 / p99, light", ms(f.light_latencies), "(one message at a time)", ""),
        ("Chatwoot calls per message", f"{f.calls_per_message:8.2f}", "", ""),
    ]
    for name, ours, baseline, ratio in rows:
        print(f"  {name:<30}{ours:<24}{baseline:<36}{ratio}")
    if f.ingest.failures:
        print(f"  !! {f.ingest.failures} webhook requests did not answer 200")
