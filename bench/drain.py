"""Drain benchmark: how fast one worker process (8 threads) relays a backlog, beside an actor
doing one pooled POST per message on the same broker, worker flags and fakes (same run).

Inbound: N signed Cloud webhooks are stored while the integration is paused (wrk posts them),
then ``resume``; the rate is N over resume → last delivery (one Chatwoot call each), then the
fake Chatwoot's record is checked (delivered once, per-chat order). Outbound: N agent replies'
Chatwoot webhooks, same way; each costs two remote calls (Graph send + Chatwoot tick), the
baseline one POST to the fake Graph, as issue 9 compares them; the fake Graph's record is
checked the same way (each reply sent once, to its customer, in the order stored). With
``--runs``, relay and actor alternate that many times and the table shows the median of each
figure and of the per-run ratios, with their range.

    python -m bench.drain [--database-url postgresql://…/scratch] [--messages 5000] [--runs 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from app.store.redis_client import get_redis, redis_key
from bench.bridge import (
    Bridge,
    agent_replies,
    chatwoot_requests,
    cloud_requests,
    content,
    count_events,
    delivered_span,
    failed,
    open_store,
    outbound_stored,
    wire,
)
from bench.ingest import check_delivered, settle
from bench.order import order_faults
from bench.stack import PHONE_NUMBER_ID, BenchStack, prepare_environment, wait_for
from bench.table import FAILED_CHECKS, check, header, median, row
from bench.wrk import HttpRequest, run_wrk, write_requests

TIMEOUT = 900.0


@dataclass
class DrainFigures:
    inbound: float
    outbound: float
    actor_inbound: float
    actor_outbound: float


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wootbridge-bench-") as tmp:
        url = prepare_environment(Path(tmp), args.database_url)
        open_store(empty=True)
        runs = []
        with BenchStack(Path(tmp)) as stack:
            bridge = wire(stack)
            for run in range(args.runs):
                if run:
                    stack.start_worker()
                runs.append(measure(stack, bridge, args.messages, args.chats, str(run)))
        report(runs, args.messages, url.split(":", 1)[0])
        return 1 if FAILED_CHECKS else 0


def measure(
    stack: BenchStack, bridge: Bridge, messages: int, chats: int, run: str = ""
) -> DrainFigures:
    """Both directions through the relay, then both baselines (the relay worker stopped)."""
    inbound = backlog(
        stack, bridge, "inbound", list(cloud_requests(bridge.instance, f"d{run}", messages, chats))
    )
    check_delivered(stack, bridge.integration_id, [f"d{run}"])
    replies = agent_replies(stack, f"o{run}", messages)
    outbound = backlog(stack, bridge, "outbound", chatwoot_requests(bridge, replies, f"o{run}"))
    check_sent(stack, bridge, replies, f"o{run}")
    stack.stop_worker()
    conversation = replies[0][0]
    chatwoot = (
        f"{stack.chatwoot_url}/api/v1/accounts/{stack.chatwoot_account}"
        f"/conversations/{conversation}/messages"
    )
    actor_in = actor_rate(
        stack,
        messages,
        chatwoot,
        {"api_access_token": stack.chatwoot_token},
        {"content": "baseline", "message_type": "incoming"},
    )
    send = {"messaging_product": "whatsapp", "to": "16505560000", "type": "text"}
    actor_out = actor_rate(
        stack,
        messages,
        f"{stack.graph_url}/{PHONE_NUMBER_ID}/messages",
        {"Authorization": "Bearer EAAG-bench"},
        send | {"text": {"body": "baseline"}},
    )
    return DrainFigures(inbound, outbound, actor_in, actor_out)


def check_sent(stack: BenchStack, bridge: Bridge, replies: list[tuple[int, int]], tag: str) -> bool:
    """Each stored reply reached WhatsApp once, to its chat's customer, each customer's
    replies in the order they were stored."""
    texts = {message_id: content(tag, i) for i, (_, message_id) in enumerate(replies)}
    expected = {
        texts[message_id]: (event_id, chat)
        for event_id, message_id, chat in outbound_stored(bridge.integration_id, texts)
    }
    record = [(to, text) for to, text in stack.graph_sent() if text is not None]
    faults = order_faults(record, expected)
    misaddressed = sum(1 for to, text in record if text in expected and expected[text][1] != to)
    detail = (
        f"{faults.arrived} of {len(replies)} sent, {faults.lost} lost, {faults.twice} twice, "
        f"{faults.disorder} out of order, {misaddressed} to another customer, "
        f"{failed(bridge.integration_id)} failed"
    )
    ok = faults.ok and not misaddressed and faults.expected == len(replies)
    return check("sent once, per-chat order", detail, ok)


def backlog(
    stack: BenchStack, bridge: Bridge, direction: str, requests: list[HttpRequest]
) -> float:
    """Store ``requests`` while paused, resume, and return messages/s until the last delivery."""
    before = count_events(bridge.integration_id, direction)
    target = before + len(requests)
    stack.api("POST", f"/api/chatwoot/pause/{bridge.instance}").raise_for_status()
    path = stack.workdir / f"{direction}.requests"
    write_requests(path, requests)
    stored = lambda: count_events(bridge.integration_id, direction) >= target  # noqa: E731
    fill = run_wrk(stack.base_url, path, connections=32, seconds=TIMEOUT, until=stored)
    settle(lambda: count_events(bridge.integration_id, direction))
    have = count_events(bridge.integration_id, direction) - before
    if not check(
        f"{direction} backlog stored",
        f"{have} of {len(requests)} webhooks stored, {fill.non_2xx} answered non-2xx",
        have == len(requests),
    ):
        target = before + have
    begin = time.time()
    stack.api("POST", f"/api/chatwoot/resume/{bridge.instance}").raise_for_status()
    done = lambda: count_events(bridge.integration_id, direction, "delivered") >= target  # noqa: E731
    wait_for(done, TIMEOUT, f"the {direction} backlog to drain")
    _, last = delivered_span(bridge.integration_id, direction)
    return have / (last - begin)


def actor_rate(
    stack: BenchStack, messages: int, url: str, headers: dict[str, str], body: dict[str, object]
) -> float:
    """The one-POST actor on a backlog of ``messages``: rate from first to last completion."""
    from bench import actors  # installs the project's broker in this process

    redis = get_redis()
    keys = [redis_key(k) for k in (actors.DONE, actors.FIRST, actors.LAST)]
    redis.delete(*keys)
    for _ in range(messages):
        actors.post_once.send(url, headers, body)
    stack.start_worker("bench.actors")
    try:
        wait_for(lambda: int(redis.get(keys[0]) or 0) >= messages, TIMEOUT, "the actor drain")
    finally:
        stack.stop_worker()
    first, last = (float(redis.get(k) or 0) for k in keys[1:])
    return (messages - 1) / (last - first)


def report(runs: list[DrainFigures], messages: int, store: str) -> None:
    """Each figure as the median of the runs, the ratio as the median of the per-run ratios
    (with their range when there are several runs)."""
    times = f", median of {len(runs)} runs" if len(runs) > 1 else ""
    header(f"drain, {store}: backlog of {messages} messages, 1 worker process x 8 threads{times}")
    for name, ours, actor in (
        ("inbound msg/s", "inbound", "actor_inbound"),
        ("outbound msg/s (2 calls each)", "outbound", "actor_outbound"),
    ):
        ratios = sorted(getattr(r, ours) / getattr(r, actor) for r in runs)
        row(
            name,
            f"{median([getattr(r, ours) for r in runs]):9.0f}",
            f"one-POST actor {median([getattr(r, actor) for r in runs]):9.0f}",
            median(ratios),
        )
        if len(runs) > 1:
            row("", "", f"ratio range over the runs: {ratios[0]:.2f}-{ratios[-1]:.2f}x")


if __name__ == "__main__":
    raise SystemExit(main())
