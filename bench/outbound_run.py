"""The measurements of ``bench.outbound`` (imported after the environment is prepared)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from app.config import get_settings
from app.store.db import database
from app.store.models import ChatLink, ChatwootIntegration, RelayEvent
from bench.harness import REPO, FakeChatwootProcess, to_epoch, wait_for
from bench.loadgen import LoadResult, Request, percentile, run_load
from bench.runtime import bare_starlette, drain_rate
from tests.integration.stack import Stack
from tests.reference import chatwoot_dir
from tests.relay.bridge import APP_SECRET, PHONE_NUMBER_ID, sign, text_body

ACCESS_TOKEN = "EAAG-bench-outbound"


@dataclass
class Target:
    """The wired-up integration: where Chatwoot's webhook goes and what signs it."""

    instance: str
    account_token: str
    webhook_path: str
    inbox_secret: str
    conversations: dict[str, int]  # customer number -> Chatwoot conversation display id


def start_graph() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.serve_graph",
            "--phone-number-id",
            PHONE_NUMBER_ID,
            "--access-token",
            ACCESS_TOKEN,
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    assert process.stdout is not None
    found = re.search(r"(http://\S+)", process.stdout.readline())
    assert found is not None
    return process, found.group(1)


def customer(chat: int) -> str:
    return f"1650557{chat:04d}"


def wire(stack: Stack, fake: FakeChatwootProcess, graph_url: str, chats: int) -> Target:
    assert stack.http is not None
    token = stack.account_token()
    created = stack.http.post(
        "/api/instance/new",
        headers={"token": token},
        json={
            "name": "bench",
            "provider": "cloud",
            "cloudPhoneNumberId": PHONE_NUMBER_ID,
            "cloudAccessToken": ACCESS_TOKEN,
            "cloudAppSecret": APP_SECRET,
            "cloudApiBaseUrl": graph_url,
            "chatwootEnabled": True,
            "chatwootBaseUrl": fake.base_url,
            "chatwootAccountId": fake.account_id,
            "chatwootApiToken": fake.token,
        },
    ).json()
    assert created["chatwoot"]["status"] == "active", created
    for chat in range(chats):  # each customer writes first, so Chatwoot has the conversation
        body = json.dumps(text_body(customer(chat), f"wamid.open.{chat}", "hello")).encode()
        headers = {"content-type": "application/json", "x-hub-signature-256": sign(body)}
        stack.http.post("/webhooks/whatsapp/cloud/bench", content=body, headers=headers)
    wait_for(lambda: fake.stats()["messages"] >= chats, 120, "customer chats")
    listed = stack.http.get("/api/chatwoot/list/bench", headers={"token": token}).json()
    with database.connection_context():
        integration = ChatwootIntegration.get_by_id(created["chatwoot"]["bridge_integration_id"])
        secret = integration.get_secret("inbox_secret") or ""
        links = {
            str(link.chat_key): int(link.conversation_id or 0) for link in ChatLink.select()
        }
    path = "/" + listed["webhook_url"].split("/", 3)[3]
    return Target("bench", token, path, secret, links)


def agent_replies(
    fake: FakeChatwootProcess, target: Target, phase: str, count: int
) -> list[tuple[str, int, str]]:
    """Create ``count`` agent replies round-robin over the chats; (number, id, content) each."""
    numbers = sorted(target.conversations)
    made = []
    with httpx.Client(base_url=fake.base_url, headers={"api_access_token": fake.token}) as http:
        for i in range(count):
            number = numbers[i % len(numbers)]
            content = f"{phase} reply {i}"
            conversation = target.conversations[number]
            answer = http.post(
                f"/api/v1/accounts/{fake.account_id}/conversations/{conversation}/messages",
                json={"content": content, "message_type": "outgoing"},
            )
            made.append((number, int(answer.json()["id"]), content))
    return made


def webhook_requests(target: Target, replies: list[tuple[str, int, str]]) -> list[Request]:
    """What Chatwoot POSTs for each reply, shaped like our test data's example and signed."""
    template = json.loads((chatwoot_dir() / "webhook-message-created.example.json").read_text())
    requests = []
    for number, message_id, content in replies:
        body: dict[str, Any] = copy.deepcopy(template)
        body.update(id=message_id, content=content, attachments=[])
        conversation = body["conversation"]
        conversation["id"] = target.conversations[number]
        conversation["contact_inbox"]["source_id"] = number
        conversation["messages"] = []
        raw = json.dumps(body).encode()
        stamp = str(int(time.time()))
        digest = hmac.new(target.inbox_secret.encode(), f"{stamp}.".encode() + raw, hashlib.sha256)
        headers = {
            "content-type": "application/json",
            "x-chatwoot-timestamp": stamp,
            "x-chatwoot-signature": "sha256=" + digest.hexdigest(),
        }
        requests.append(Request(target.webhook_path, raw, headers))
    return requests


def sent_at(replies: list[tuple[str, int, str]]) -> list[float]:
    """When each reply was sent and ticked (its event delivered), in reply order."""
    keys = {f"cw:{message_id}": i for i, (_, message_id, _) in enumerate(replies)}
    with database.connection_context():
        rows: list[tuple[str, object]] = list(
            RelayEvent.select(RelayEvent.natural_key, RelayEvent.delivered_at)
            .where(RelayEvent.natural_key.in_(list(keys)))
            .tuples()  # type: ignore[arg-type]
        )
    found = {keys[str(key)]: to_epoch(at) for key, at in rows if at is not None}
    return [found[i] for i in range(len(replies))]


def all_sent(replies: list[tuple[str, int, str]]) -> bool:
    with database.connection_context():
        keys = [f"cw:{message_id}" for _, message_id, _ in replies]
        return bool(
            RelayEvent.select()
            .where(RelayEvent.natural_key.in_(keys) & RelayEvent.delivered_at.is_null(False))
            .count()
            == len(keys)
        )


@dataclass
class Figures:
    light: list[float]
    ingest: LoadResult
    burst_rate: float
    burst_latencies: list[float]
    backlog_rate: float


def measure(stack: Stack, fake: FakeChatwootProcess, target: Target, n: int, conc: int) -> Figures:
    assert stack.http is not None
    light_replies = agent_replies(fake, target, "light", 50)
    light = run_load(stack.base_url, webhook_requests(target, light_replies), 1, pause=0.05)
    wait_for(lambda: all_sent(light_replies), 120, "light load")
    light_ms = [
        (s - b) * 1000 for s, b in zip(sent_at(light_replies), light.started_at, strict=True)
    ]
    burst_replies = agent_replies(fake, target, "burst", n)
    ingest = run_load(stack.base_url, webhook_requests(target, burst_replies), conc)
    wait_for(lambda: all_sent(burst_replies), 600, "burst")
    burst_sent = sent_at(burst_replies)
    burst_ms = [(s - b) * 1000 for s, b in zip(burst_sent, ingest.started_at, strict=True)]
    burst_rate = n / (max(burst_sent) - min(ingest.started_at))
    headers = {"token": target.account_token}
    backlog = agent_replies(fake, target, "backlog", n)
    stack.http.post(f"/api/chatwoot/pause/{target.instance}", headers=headers)
    run_load(stack.base_url, webhook_requests(target, backlog), conc)
    begin = time.time()
    stack.http.post(f"/api/chatwoot/resume/{target.instance}", headers=headers)
    wait_for(lambda: all_sent(backlog), 600, "backlog")
    return Figures(light_ms, ingest, burst_rate, burst_ms, n / (max(sent_at(backlog)) - begin))


def run(workdir: Path, messages: int, chats: int, concurrency: int) -> None:
    settings = get_settings()
    fake = FakeChatwootProcess.start()
    graph, graph_url = start_graph()
    stack = Stack(settings, settings.database_url, workdir)
    try:
        stack.start_web()
        stack.start_workers(processes=2, threads=8)
        target = wire(stack, fake, graph_url, chats)
        bare = bare_starlette(
            webhook_requests(target, agent_replies(fake, target, "bare", messages)),
            concurrency,
            workdir,
        )
        figures = measure(stack, fake, target, messages, concurrency)
        stack.stop()
        send_url = f"{graph_url}/{PHONE_NUMBER_ID}/messages"
        send = {
            "messaging_product": "whatsapp",
            "to": customer(0),
            "type": "text",
            "text": {"body": "baseline"},
        }
        bearer = {"Authorization": f"Bearer {ACCESS_TOKEN}"}
        post_rate = drain_rate("post_once", (send_url, bearer, send), messages, workdir)
    finally:
        stack.stop()
        graph.terminate()
        graph.wait(timeout=10)
        fake.stop()
    report(messages, chats, concurrency, bare, figures, post_rate)


def report(
    messages: int, chats: int, concurrency: int, bare: LoadResult, f: Figures, post_rate: float
) -> None:
    def ms(values: list[float]) -> str:
        return f"{percentile(values, 50):6.0f} / {percentile(values, 99):6.0f} ms"

    print(
        f"\nwootbridge outbound benchmark: {messages} replies over {chats} chats, "
        f"{concurrency} concurrent webhook senders, 2 worker processes x 8 threads, "
        f"{os.cpu_count()} CPUs"
    )
    rows = [
        ("webhook -> WhatsApp, light", ms(f.light), "(one reply at a time)", ""),
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
        ("relay during the burst", f"{f.burst_rate:8.0f} msg/s", "(bounded by ingest)", ""),
        ("webhook -> WhatsApp, burst", ms(f.burst_latencies), "", ""),
        (
            "relay, backlog drain",
            f"{f.backlog_rate:8.0f} msg/s",
            f"one-POST actor {post_rate:8.0f} msg/s",
            f"{f.backlog_rate / post_rate:5.2f}x",
        ),
    ]
    for name, ours, baseline, ratio in rows:
        print(f"  {name:<30}{ours:<24}{baseline:<36}{ratio}")
    if f.ingest.failures:
        print(f"  !! {f.ingest.failures} webhook requests did not answer 200")
