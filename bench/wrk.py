"""Running ``wrk`` (the load generator of every HTTP figure) and reading what it measured.

The requests are written to a file (one per line, see ``bench/wrk.lua``), replayed by wrk's
threads, and ``done()`` prints latency percentiles and per-thread counts as one JSON line.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("wrk.lua")
INSTALL_HINT = "wrk is not installed: run `make bench` as root, or `sudo apt-get install -y wrk`"
MARK = "WRK_JSON "


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""

    def line(self) -> str:
        text = self.body.decode()
        fields = [self.method, self.path, *(f"{k}: {v}" for k, v in self.headers.items()), text]
        if any("\t" in f or "\n" in f for f in fields):
            raise ValueError("a request field contains a tab or a newline")
        return "\t".join(fields)


@dataclass(frozen=True)
class ThreadCount:
    id: int
    sent: int
    ok: int
    bad: int
    wrapped: bool


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    socket_errors: int
    threads: list[ThreadCount]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> int:
        return sum(t.ok for t in self.threads)

    @property
    def non_2xx(self) -> int:
        return sum(t.bad for t in self.threads)

    @property
    def wrapped(self) -> bool:
        return any(t.wrapped for t in self.threads)


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(INSTALL_HINT)
    return path


def write_requests(path: Path, requests: Iterable[HttpRequest]) -> int:
    count = 0
    with path.open("w") as out:
        for request in requests:
            out.write(request.line() + "\n")
            count += 1
    return count


def run_wrk(
    base_url: str,
    requests_file: Path,
    *,
    connections: int,
    seconds: float,
    threads: int = 2,
    until: Callable[[], bool] | None = None,
) -> WrkResult:
    """Run wrk against ``base_url`` replaying ``requests_file`` for ``seconds``.

    With ``until``, each request is sent once and wrk is interrupted as soon as ``until()``
    holds (e.g. the store has every message) or every request has been answered (the result
    then counts the non-2xx answers), or after ``seconds``.
    """
    threads = max(1, min(threads, connections))
    command = [
        require_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(SCRIPT),
        base_url,
    ]
    env = {
        **os.environ,
        "WRK_REQUESTS": str(requests_file),
        "WRK_THREADS": str(threads),
        "WRK_ONCE": "0" if until is None else "1",
        "WRK_DONE_DIR": str(requests_file.parent),
    }
    marks = [requests_file.parent / str(i) for i in range(threads)]
    for mark in marks:
        mark.unlink(missing_ok=True)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        if until is not None:
            deadline = time.monotonic() + seconds
            while process.poll() is None and time.monotonic() < deadline:
                if until() or all(mark.exists() for mark in marks):
                    break
                time.sleep(0.05)
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # wrk stops and still runs done()
        out, err = process.communicate(timeout=seconds + 60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    found = [line for line in out.decode().splitlines() if line.startswith(MARK)]
    if not found:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.decode()[-2000:]}")
    return parse(found[-1][len(MARK) :])


def parse(text: str) -> WrkResult:
    raw = json.loads(text)
    return WrkResult(
        requests=int(raw["requests"]),
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        socket_errors=int(raw["socket_errors"]),
        threads=[
            ThreadCount(t["id"], t["sent"], t["ok"], t["bad"], bool(t["wrapped"]))
            for t in raw["threads"]
        ],
    )
