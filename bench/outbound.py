"""Benchmark of the Chatwoot → WhatsApp direction, with same-run baselines.

    python -m bench.outbound [--messages 1000] [--chats 20] [--concurrency 16]

Starts the fake Chatwoot and the fake Graph API (each in its own process), our web process and
2 x 8 workers on a fresh SQLite file (or ``--database-url``) and the local Redis. Agent replies
are created in the fake Chatwoot and its inbox webhook is delivered to us, signed, as Chatwoot
does. Prints webhook → WhatsApp send latency at light load, throughput under a burst and when
draining a backlog, beside a bare Starlette endpoint and an actor doing one pooled POST to the
Graph API per message, measured in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.harness import prepare_environment


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--chats", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wootbridge-bench-") as tmp:
        prepare_environment(Path(tmp), args.database_url)
        from bench.outbound_run import run
        from bench.runtime import empty_database

        empty_database()
        run(Path(tmp), args.messages, args.chats, args.concurrency)


if __name__ == "__main__":
    main()
