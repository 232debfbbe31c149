"""Scale run: the same figures on a store seeded with millions of delivered events and on an
empty store, side by side: ingest (wrk, as ``bench.ingest``), backlog drain both ways (as
``bench.drain``), and the latency of ``GET /api/chatwoot/list/:instance`` (the seeded instance)
and ``GET /metrics`` (wrk, one connection).

    python -m bench.scale --database-url postgresql://…/wb_bench_scale [--events 5000000]
                          [--empty-database-url postgresql://…/scratch]

The seeded database is named and kept: a later run reuses (tops up) its seed, and each run adds
an instance of its own. The empty store (default: a fresh SQLite file) is emptied first.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from app.config import use_settings
from bench import drain, ingest
from bench.bridge import agent_replies, chatwoot_requests, cloud_requests, open_store, wire
from bench.seed import SEED, repoint, seed, seed_integration, seeded_count
from bench.stack import BenchStack, bare_starlette, prepare_environment
from bench.table import FAILED_CHECKS, check, header, row
from bench.wrk import HttpRequest, WrkResult, run_wrk, write_requests


@dataclass
class StoreFigures:
    events: int
    ingest: ingest.IngestFigures
    drain_in: float
    drain_out: float
    list_: WrkResult
    metrics: WrkResult


def main(argv: list[str] | None = None) -> int:
    parser = ingest.parser(__doc__ or "")
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--empty-database-url", help="default: a fresh SQLite file")
    parser.add_argument("--messages", type=int, default=5000, help="drain backlog")
    parser.set_defaults(runs=1)
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("--database-url (the named database to seed and keep) is required")
    with tempfile.TemporaryDirectory(prefix="wootbridge-bench-") as tmp:
        seeded = run_store(Path(tmp), args, args.database_url, args.events)
        use_settings(None)  # the next store's environment
        empty = run_store(Path(tmp), args, args.empty_database_url, 0)
    report(args, seeded, empty)
    return 1 if FAILED_CHECKS else 0


def run_store(
    workdir: Path, args: argparse.Namespace, url: str | None, events: int
) -> StoreFigures:
    prepare_environment(workdir, url)
    if events:  # a key of its own, so the kept database stays readable run after run
        digest = hashlib.sha256(f"wootbridge-bench:{url}".encode()).digest()
        os.environ["ENCRYPTION_KEY"] = base64.b64encode(digest).decode()
    open_store(empty=not events)
    name = f"bench{uuid.uuid4().hex[:6]}"
    with BenchStack(workdir) as stack, bare_starlette(workdir) as bare:
        bridge = wire(stack, name)
        listed = name
        if events:
            added, seconds = seed(stack, bridge, events)
            print(f"  seed: {added:,} events added in {seconds:.0f} s", flush=True)
            repoint(stack, bridge)
            listed = SEED
        headers = {"token": stack.account_token}
        list_ = latency(stack, HttpRequest("GET", f"/api/chatwoot/list/{listed}", headers))
        metrics = latency(stack, HttpRequest("GET", "/metrics", {}))
        figures = ingest.measure(stack, bridge, bare, args)
        requests = list(cloud_requests(name, "d", args.messages, args.chats))
        drain_in = drain.backlog(stack, bridge, "inbound", requests)
        ingest.check_delivered(stack, bridge.integration_id, ["d"])
        replies = agent_replies(stack, "o", args.messages)
        drain_out = drain.backlog(
            stack, bridge, "outbound", chatwoot_requests(bridge, replies, "o")
        )
        drain.check_sent(stack, bridge, replies, "o")
        seeded = seed_integration() if events else None
        count = seeded_count(seeded.id) if seeded is not None else 0
    return StoreFigures(count, figures, drain_in, drain_out, list_, metrics)


def latency(stack: BenchStack, request: HttpRequest, seconds: float = 3) -> WrkResult:
    path = stack.workdir / "latency.requests"
    write_requests(path, [request])
    result = run_wrk(stack.base_url, path, connections=1, threads=1, seconds=seconds)
    check(
        f"GET {request.path}",
        f"{result.requests} requests, {result.non_2xx} non-2xx",
        result.non_2xx == 0 and result.socket_errors == 0,
    )
    return result


def report(args: argparse.Namespace, seeded: StoreFigures, empty: StoreFigures) -> None:
    header(
        f"scale, {args.database_url.split(':', 1)[0]}: {seeded.events:,} stored events vs an "
        f"empty store; wrk {args.connections} connections x {args.seconds:.0f} s"
    )

    def ratio_row(name: str, a: float, b: float, unit: str) -> None:
        row(name, f"{a:9.1f} {unit}", f"empty store {b:9.1f} {unit}", a / b if b else None)

    ours = [f.ingest.ours[0] for f in (seeded, empty)]
    ratio_row("webhook ingest", ours[0].rate, ours[1].rate, "req/s")
    bare = [f.ingest.bare[0].rate for f in (seeded, empty)]
    row("  (bare Starlette, same runs)", f"{bare[0]:9.1f} req/s", f"empty store {bare[1]:9.1f}")
    ratio_row("ingest p99", ours[0].p99_ms, ours[1].p99_ms, "ms")
    ratio_row("drain inbound", seeded.drain_in, empty.drain_in, "msg/s")
    ratio_row("drain outbound", seeded.drain_out, empty.drain_out, "msg/s")
    for name, a, b in (
        ("list p50", seeded.list_.p50_ms, empty.list_.p50_ms),
        ("list p99", seeded.list_.p99_ms, empty.list_.p99_ms),
        ("/metrics p50", seeded.metrics.p50_ms, empty.metrics.p50_ms),
        ("/metrics p99", seeded.metrics.p99_ms, empty.metrics.p99_ms),
    ):
        ratio_row(name, a, b, "ms")
    web, worker = seeded.ingest.rss
    row("RSS web / worker MB", f"{web:6.0f} / {worker:.0f}", "")


if __name__ == "__main__":
    raise SystemExit(main())
