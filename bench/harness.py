"""Pieces every benchmark shares that must not import the project (the environment is
prepared first, then the project is imported)."""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def prepare_environment(workdir: Path, database_url: str | None) -> None:
    """Settings for every process of the run (read before the project modules import)."""
    os.environ.update(
        {
            "DATABASE_URL": database_url or f"sqlite:///{workdir / 'bench.db'}",
            "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            "QUEUE_NAMESPACE": f"bench-{uuid.uuid4().hex[:8]}",
            "ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
            "ALLOW_PRIVATE_URLS": "true",
            "PUBLIC_URL": "https://bridge.example.com",
            "RATE_LIMIT_PER_MINUTE": "1000000",
            "dramatiq_worker_timeout": "100",
            "LOG_LEVEL": "WARNING",
        }
    )


@dataclass
class FakeChatwootProcess:
    process: subprocess.Popen[str]
    base_url: str
    account_id: int
    token: str

    @classmethod
    def start(cls) -> FakeChatwootProcess:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.chatwoot"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        base_url = re.search(r"(http://\S+)", lines[0])
        account = re.search(r"(\d+)", lines[1])
        token = lines[2].rsplit(" ", 1)[-1].strip()
        assert base_url and account, lines
        return cls(process, base_url.group(1), int(account.group(1)), token)

    def stats(self) -> dict[str, int]:
        answer: dict[str, int] = httpx.get(f"{self.base_url}/__fake/stats").json()
        return answer

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def to_epoch(value: object) -> float:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime)
    return value.replace(tzinfo=dt.UTC).timestamp()
