"""The processes of a benchmark run, as the Procfile runs them: one uvicorn web process, one
``dramatiq workers`` process (8 threads), the fake Chatwoot and the fake Graph API in their own
processes, and the same-run baselines (bare Starlette, the one-POST actor). ``BenchStack`` is a
context manager: every process it started is stopped on the way out, whatever happened.

Call :func:`prepare_environment` before anything reads the settings.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
PHONE_NUMBER_ID = "106540352242922"
APP_SECRET = "bench-app-secret-0123456789"
ACCESS_TOKEN = "EAAG-bench"
WORKER_THREADS = 8
WEB_FLAGS = ["--no-access-log", "--proxy-headers"]  # as in the Procfile


def prepare_environment(workdir: Path, database_url: str | None) -> str:
    """Settings for every process of the run; returns the database URL. SIGTERM exits
    through ``finally`` blocks, so the processes of the run are stopped."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    url = database_url or f"sqlite:///{workdir / 'bench.db'}"
    os.environ.update(
        {
            "DATABASE_URL": url,
            "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            "QUEUE_NAMESPACE": f"bench-{uuid.uuid4().hex[:8]}",
            "ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
            "ALLOW_PRIVATE_URLS": "true",
            "PUBLIC_URL": "https://bridge.example.com",
            "RATE_LIMIT_PER_MINUTE": "100000000",
            "dramatiq_worker_timeout": "100",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(REPO),
        }
    )
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def rss_mb(pid: int) -> float:
    """Resident set size of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


@dataclass
class Process:
    """A child process in its own session, logging to ``log``; prints parsed from stdout."""

    popen: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def spawn(cls, command: list[str], log: Path, stdout_lines: int = 0) -> tuple[Process, str]:
        out = open(log, "ab")  # noqa: SIM115 (owned by the child)
        popen = subprocess.Popen(
            command,
            cwd=REPO,
            env=os.environ.copy(),
            stdout=subprocess.PIPE if stdout_lines else out,
            stderr=out,
            start_new_session=True,
        )
        head = ""
        if stdout_lines:
            assert popen.stdout is not None
            head = "".join(popen.stdout.readline().decode() for _ in range(stdout_lines))
        return cls(popen, log), head

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        if self.popen.stdout is not None:
            self.popen.stdout.close()


def uvicorn(app: str, port: int, log: Path, factory: bool = False) -> Process:
    command = [sys.executable, "-m", "uvicorn", *(["--factory"] if factory else []), app]
    command += ["--host", "127.0.0.1", "--port", str(port), *WEB_FLAGS]
    process, _ = Process.spawn(command, log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/healthz", timeout=2)
            return process
        except httpx.TransportError:
            if process.popen.poll() is not None:
                break
            time.sleep(0.1)
    process.stop()
    raise SystemExit(f"{app} did not start: {log.read_text(errors='replace')[-2000:]}")


@dataclass(frozen=True)
class Baseline:
    """The bare Starlette server: where it listens and its process (for its CPU time)."""

    url: str
    pid: int


@contextmanager
def bare_starlette(workdir: Path) -> Iterator[Baseline]:
    """The baseline endpoint, served by uvicorn with the web process's flags."""
    port = free_port()
    server = uvicorn("bench.bare_app:app", port, workdir / "bare.log")
    try:
        yield Baseline(f"http://127.0.0.1:{port}", server.popen.pid)
    finally:
        server.stop()


@dataclass
class BenchStack:
    workdir: Path
    processes: list[Process] = field(default_factory=list)
    web: Process | None = None
    worker: Process | None = None
    base_url: str = ""
    chatwoot_url: str = ""
    chatwoot_account: int = 0
    chatwoot_token: str = ""
    graph_url: str = ""
    account_token: str = ""

    def __enter__(self) -> BenchStack:
        try:
            self._start_fakes()
            self.start_web()
            self.start_worker()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def _start_fakes(self) -> None:
        command = [sys.executable, "-m", "tests.fakes.chatwoot"]
        fake, head = Process.spawn(command, self.workdir / "chatwoot.log", stdout_lines=3)
        self.processes.append(fake)
        url, account = re.search(r"(http://\S+)", head), re.search(r"account id: (\d+)", head)
        assert url and account, head
        self.chatwoot_url, self.chatwoot_account = url.group(1), int(account.group(1))
        self.chatwoot_token = head.strip().rsplit(" ", 1)[-1]
        command = [sys.executable, "-m", "bench.serve_graph", "--phone-number-id"]
        command += [PHONE_NUMBER_ID, "--access-token", ACCESS_TOKEN]
        graph, head = Process.spawn(command, self.workdir / "graph.log", stdout_lines=1)
        self.processes.append(graph)
        found = re.search(r"(http://\S+)", head)
        assert found, head
        self.graph_url = found.group(1)

    def start_web(self) -> None:
        port = free_port()
        self.web = uvicorn("app.main:asgi_app", port, self.workdir / "web.log", factory=True)
        self.processes.append(self.web)
        self.base_url = f"http://127.0.0.1:{port}"

    def start_worker(self, module: str = "workers") -> Process:
        command = [sys.executable, "-m", "dramatiq", module, "--processes", "1"]
        command += ["--threads", str(WORKER_THREADS)]
        self.worker, _ = Process.spawn(command, self.workdir / f"{module}.log")
        self.processes.append(self.worker)
        wait_for(lambda: bool(children(self.worker_pid())), 30, f"the {module} worker process")
        return self.worker

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    def worker_pid(self) -> int:
        assert self.worker is not None
        return self.worker.popen.pid

    def worker_process_pid(self) -> int:
        """The process that runs the actors (dramatiq's child; the parent only supervises)."""
        return max(children(self.worker_pid()))

    def rss(self) -> tuple[float, float]:
        """RSS in MB of the web process and of the worker process (dramatiq's child)."""
        assert self.web is not None
        worker = max((rss_mb(pid) for pid in children(self.worker_pid())), default=float("nan"))
        return rss_mb(self.web.popen.pid), worker

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def chatwoot_stats(self) -> dict[str, int]:
        stats: dict[str, int] = httpx.get(f"{self.chatwoot_url}/__fake/stats").json()
        return stats

    def chatwoot_messages(self) -> list[tuple[int, int, str]]:
        """The fake Chatwoot's record: (conversation id, message id, content) of every message."""
        got = httpx.get(f"{self.chatwoot_url}/__fake/messages", timeout=120).json()
        return [(int(c), int(m), str(t)) for c, m, t in got]

    def graph_sent(self) -> list[tuple[str, str | None]]:
        """The fake Graph's record: (recipient, text body) of every message it accepted, in
        order."""
        origin = self.graph_url.rsplit("/", 1)[0]  # graph_url ends with the API version
        got = httpx.get(f"{origin}/__fake/sent", timeout=120).json()
        return [(str(to), None if text is None else str(text)) for to, text in got]

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"token": self.account_token, **kwargs.pop("headers", {})}
        return httpx.request(method, self.base_url + path, headers=headers, timeout=60, **kwargs)
