"""Benchmark of the WhatsApp → Chatwoot direction, with same-run baselines.

    python -m bench.inbound [--messages 2000] [--chats 50] [--concurrency 16]

Starts the fake Chatwoot (its own process), our web process and 2 x 8 worker processes (as in
the Procfile) on a fresh SQLite file and the local Redis, fires signed Cloud API webhooks over
several chats, and prints, beside each figure, a baseline measured in the same run on the same
machine: a bare Starlette endpoint for ingest, a no-op Dramatiq actor and an actor doing one
pooled httpx POST per message for the relay.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.harness import prepare_environment


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--database-url",
        help="default: a fresh SQLite file; a PostgreSQL URL is emptied first (use a scratch db)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wootbridge-bench-") as tmp:
        prepare_environment(Path(tmp), args.database_url)
        from bench.inbound_run import run
        from bench.runtime import empty_database

        empty_database()

        run(Path(tmp), args.messages, args.chats, args.concurrency)


if __name__ == "__main__":
    main()
