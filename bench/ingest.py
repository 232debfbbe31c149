"""Ingest benchmark: wrk posting distinct signed Cloud webhooks to one web process (with one
worker process relaying meanwhile), beside a bare Starlette endpoint receiving the same POSTs
under the same uvicorn flags, in alternating runs; then the store and the fake Chatwoot are
checked: every acknowledged message stored once, delivered once, in order per chat.

    python -m bench.ingest [--database-url postgresql://…/scratch] [--seconds 10]
                           [--connections 32] [--runs 3]

A PostgreSQL database given here is emptied first (use a scratch database).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.bridge import (
    Bridge,
    cloud_requests,
    count_events,
    failed,
    inbound_stored,
    open_store,
    wire,
)
from bench.order import order_faults
from bench.stack import (
    Baseline,
    BenchStack,
    bare_starlette,
    cpu_seconds,
    prepare_environment,
    wait_for,
)
from bench.table import FAILED_CHECKS, check, header, median, row
from bench.wrk import WrkResult, run_wrk, write_requests

DRAIN_TIMEOUT = 900.0


@dataclass
class IngestFigures:
    ours: list[WrkResult] = field(default_factory=list)
    bare: list[WrkResult] = field(default_factory=list)
    rss: tuple[float, float] = (0.0, 0.0)
    # CPU seconds per answered request during the runs: the web process, the bare server, and
    # the worker process relaying meanwhile (less sensitive than req/s to a busy machine)
    web_cpu: list[float] = field(default_factory=list)
    bare_cpu: list[float] = field(default_factory=list)
    worker_cpu: list[float] = field(default_factory=list)
    # the same load with the worker process stopped during the run (the web process alone)
    alone: list[WrkResult] = field(default_factory=list)
    alone_cpu: list[float] = field(default_factory=list)


def _run_measuring_cpu(
    pid: int, url: str, requests_file: Path, load: dict[str, Any]
) -> tuple[WrkResult, float]:
    """wrk against ``url``, and the CPU seconds process ``pid`` spent per answered request."""
    before = cpu_seconds(pid)
    result = run_wrk(url, requests_file, **load)
    return result, (cpu_seconds(pid) - before) / max(1, result.ok)


def _bodies(args: argparse.Namespace) -> int:
    """Distinct webhooks written per run: more than wrk can send in it."""
    return int(args.bodies or args.seconds * 12_000)


def _load(args: argparse.Namespace) -> dict[str, Any]:
    return {"connections": args.connections, "seconds": args.seconds}


def _run_ours(
    stack: BenchStack, bridge: Bridge, args: argparse.Namespace, tag: str
) -> tuple[WrkResult, float]:
    """wrk posting run ``tag``'s distinct signed webhooks to the web process; the result and
    the web process's CPU seconds per answered request."""
    requests_file = stack.workdir / "ours.requests"
    write_requests(requests_file, cloud_requests(bridge.instance, tag, _bodies(args), args.chats))
    assert stack.web is not None
    return _run_measuring_cpu(stack.web.popen.pid, stack.base_url, requests_file, _load(args))


def parser(doc: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--bodies", type=int, default=0, help="per run (default 12,000/s)")
    parser.add_argument(
        "--no-web-alone",
        dest="web_alone",
        action="store_false",
        help="skip the runs with the worker process stopped meanwhile",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser(__doc__ or "").parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wootbridge-bench-") as tmp:
        url = prepare_environment(Path(tmp), args.database_url)
        open_store(empty=True)
        with BenchStack(Path(tmp)) as stack, bare_starlette(Path(tmp)) as bare:
            bridge = wire(stack)
            figures = measure(stack, bridge, bare, args)
            if args.web_alone:
                measure_alone(stack, bridge, args, figures)
        report(figures, args, url)
        return 1 if FAILED_CHECKS else 0


def measure(
    stack: BenchStack, bridge: Bridge, bare: Baseline, args: argparse.Namespace
) -> IngestFigures:
    """``args.runs`` alternating runs (bare, ours), each ours drained before the next."""

    figures = IngestFigures()
    bare_file = stack.workdir / "bare.requests"
    write_requests(bare_file, cloud_requests(bridge.instance, "bare", _bodies(args), args.chats))
    tags = [f"i{run}" for run in range(args.runs)]
    worker_pid = stack.worker_process_pid()
    for tag in tags:
        result, cpu = _run_measuring_cpu(bare.pid, bare.url, bare_file, _load(args))
        figures.bare.append(result)
        figures.bare_cpu.append(cpu)
        worker_before = cpu_seconds(worker_pid)
        result, cpu = _run_ours(stack, bridge, args, tag)
        figures.ours.append(result)
        figures.web_cpu.append(cpu)
        figures.worker_cpu.append((cpu_seconds(worker_pid) - worker_before) / max(1, result.ok))
        if tag == tags[-1]:
            figures.rss = stack.rss()
        check_stored(bridge.integration_id, tag, result)
        wait_drained(bridge.integration_id)
    check_delivered(stack, bridge.integration_id, tags)
    return figures


def measure_alone(
    stack: BenchStack, bridge: Bridge, args: argparse.Namespace, figures: IngestFigures
) -> None:
    """The web process alone: the same runs with the worker process stopped meanwhile (on two
    cores the relay otherwise takes one from the web), then started again to deliver what
    they stored, and checked like the others."""
    tags = [f"a{run}" for run in range(args.runs)]
    stack.stop_worker()
    try:
        for tag in tags:
            result, cpu = _run_ours(stack, bridge, args, tag)
            figures.alone.append(result)
            figures.alone_cpu.append(cpu)
            check_stored(bridge.integration_id, tag, result)
    finally:
        stack.start_worker()
    wait_drained(bridge.integration_id)
    check_delivered(stack, bridge.integration_id, tags)


def wait_drained(integration_id: str) -> None:

    def drained() -> bool:
        total = count_events(integration_id, "inbound")
        return count_events(integration_id, "inbound", "delivered") >= total

    wait_for(drained, DRAIN_TIMEOUT, "the relay to deliver the ingested messages")


def settle(measure: Callable[[], int], quiet: float = 1.0) -> None:
    """Wait until ``measure()`` has not changed for ``quiet`` seconds."""
    last, since = measure(), time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.1)
        now = measure()
        if now != last:
            last, since = now, time.monotonic()


def sent_indices(result: WrkResult) -> set[int]:
    """The message indices wrk sent: thread k of n sends lines k, k + n, … in order."""

    n = len(result.threads)
    return {t.id + n * k for t in result.threads for k in range(t.sent)}


def check_stored(integration_id: str, tag: str, result: WrkResult) -> bool:
    """Every acknowledged message stored once (and nothing that was not sent)."""

    settle(lambda: len(inbound_stored(integration_id, tag)))  # requests still in flight
    rows = inbound_stored(integration_id, tag)
    stored = {int(wamid.rsplit(".", 1)[1]) for _, wamid, _ in rows}
    sent = sent_indices(result)
    unanswered = sum(t.sent for t in result.threads) - result.ok - result.non_2xx
    missing, extra = len(sent - stored), len(stored - sent)
    detail = (
        f"{tag}: {result.ok} acked, {len(stored)} stored, {len(sent)} sent, "
        f"{missing} missing (<= {unanswered + result.non_2xx} unacked)"
    )
    ok = (
        len(rows) == len(stored)
        and extra == 0
        and missing <= unanswered + result.non_2xx
        and len(stored) >= result.ok
        and not result.wrapped
    )
    detail += ", bodies reused!" if result.wrapped else ""
    return check("acked => stored once", detail, ok)


def check_delivered(stack: BenchStack, integration_id: str, tags: list[str]) -> bool:
    """Each stored message is in Chatwoot once, and each conversation holds its chat's
    messages in the order they were stored (event id order)."""

    expected: dict[str, tuple[int, str]] = {}
    for tag in tags:
        for event_id, wamid, chat in inbound_stored(integration_id, tag):
            expected[f"{tag} {wamid.rsplit('.', 1)[1]}"] = (event_id, chat)
    record = sorted(stack.chatwoot_messages(), key=lambda m: m[1])  # by Chatwoot message id
    faults = order_faults(((conversation, text) for conversation, _, text in record), expected)
    detail = (
        f"{faults.arrived} of {faults.expected} in Chatwoot, {faults.lost} lost, "
        f"{faults.twice} twice, {faults.disorder} out of order, {faults.mixed} chats mixed, "
        f"{failed(integration_id)} failed"
    )
    return check("delivered once, per-chat order", detail, faults.ok)


def report(figures: IngestFigures, args: argparse.Namespace, database_url: str) -> None:

    ours, bare = figures.ours, figures.bare
    store = database_url.split(":", 1)[0]
    header(
        f"ingest, {store}: wrk {args.connections} connections x {args.seconds:.0f} s, "
        f"median of {len(ours)} runs, 1 web + 1 worker process"
    )

    def med(attr: str, of: list[WrkResult]) -> float:
        return median([float(getattr(r, attr)) for r in of])

    rate, bare_rate = med("rate", ours), med("rate", bare)
    row("webhook req/s", f"{rate:9.0f}", f"bare Starlette {bare_rate:9.0f}", rate / bare_rate)
    for q in ("p50_ms", "p99_ms"):
        row(f"latency {q[:3]} ms", f"{med(q, ours):9.1f}", f"bare Starlette {med(q, bare):9.1f}")
    row(
        "non-2xx / socket errors",
        f"{sum(r.non_2xx for r in ours):5d} / {sum(r.socket_errors for r in ours)}",
        f"bare {sum(r.non_2xx for r in bare)}",
    )
    web_cpu, bare_cpu = median(figures.web_cpu) * 1e6, median(figures.bare_cpu) * 1e6
    row("web CPU us per request", f"{web_cpu:9.0f}", f"bare Starlette {bare_cpu:9.0f}")
    worker_cpu = median(figures.worker_cpu) * 1e6
    row("worker CPU us per request", f"{worker_cpu:9.0f}", "(relaying meanwhile)")
    web, worker = figures.rss
    row("RSS web / worker MB", f"{web:6.0f} / {worker:.0f}")
    if figures.alone:
        alone = med("rate", figures.alone)
        baseline = f"bare Starlette {bare_rate:9.0f}"
        row("web alone: req/s", f"{alone:9.0f}", baseline, alone / bare_rate)
        p50, p99 = med("p50_ms", figures.alone), med("p99_ms", figures.alone)
        row("web alone: p50 / p99 ms", f"{p50:5.1f} / {p99:.1f}", "(worker stopped meanwhile)")
        row("web alone: CPU us per request", f"{median(figures.alone_cpu) * 1e6:9.0f}")


if __name__ == "__main__":
    raise SystemExit(main())
