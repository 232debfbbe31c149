"""Smoke test of the benchmarks (not a timed test): each one runs at a tiny size on SQLite —
its real processes, wrk and the fakes — prints its table and passes its own checks (nothing
lost, nothing twice, per-chat order). Needs wrk (``apt-get install -y wrk``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.wrk import INSTALL_HINT

REPO = Path(__file__).resolve().parents[2]
TINY = ["--seconds", "1", "--connections", "2", "--runs", "1", "--chats", "5"]


def run_benchmark(*args: str) -> str:
    assert shutil.which("wrk") is not None, INSTALL_HINT
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "FAILED" not in done.stdout, done.stdout
    return done.stdout


def test_ingest_prints_its_table_beside_bare_starlette() -> None:
    out = run_benchmark("bench.ingest", *TINY)
    assert "ingest, sqlite" in out
    assert "bare Starlette" in out and "RSS web / worker MB" in out
    assert "web alone: req/s" in out  # the runs with the worker process stopped meanwhile
    assert "delivered once, per-chat order" in out and "0 lost, 0 twice, 0 out of order" in out


def test_drain_prints_both_directions_beside_the_one_post_actor() -> None:
    out = run_benchmark("bench.drain", "--messages", "40", "--chats", "5", "--runs", "2")
    assert "inbound msg/s" in out and "outbound msg/s" in out
    assert out.count("one-POST actor") == 2 and "median of 2 runs" in out
    assert out.count("ratio range over the runs") == 2
    # both directions checked in each run: Chatwoot's record, then the fake Graph's
    assert out.count("delivered once, per-chat order") == 2
    assert out.count("40 of 40 sent, 0 lost, 0 twice, 0 out of order, 0 to another") == 2


def test_scale_seeds_then_compares_with_an_empty_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'scale.db'}"
    args = ["--database-url", url, "--events", "1000", "--messages", "20"]
    out = run_benchmark("bench.scale", *TINY, *args)
    assert "seed: 1,000 events added" in out
    assert "1,000 stored events vs an empty store" in out
    for figure in ("webhook ingest", "drain inbound", "drain outbound", "list p99", "/metrics p99"):
        assert figure in out
    assert out.count("20 of 20 sent, 0 lost, 0 twice") == 2  # each store's outbound drain
    again = run_benchmark("bench.scale", *TINY, *args)  # reuses the seed
    assert "seed: 0 events added" in again and "1,000 stored events" in again
