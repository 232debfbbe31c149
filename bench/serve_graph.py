"""Serve the fake Graph API in its own process (for benchmarks): ``python -m bench.serve_graph
--phone-number-id ID --access-token T``; prints its base URL, serves until terminated."""

from __future__ import annotations

import argparse
import signal
import threading

from tests.fakes.graph import FakeGraph


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--phone-number-id", required=True)
    parser.add_argument("--access-token", required=True)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeGraph() as graph:
        graph.add_phone_number(args.phone_number_id, args.access_token)
        print(f"fake Graph listening on {graph.base_url}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
