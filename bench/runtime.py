"""Measurements every benchmark shares (imported once the environment is prepared)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.config import get_settings
from app.store import init_store
from app.store.models import ALL_MODELS
from app.store.redis_client import get_redis, redis_key
from bench.harness import REPO, wait_for
from bench.loadgen import LoadResult, Request, run_load
from tests.integration.stack import free_port


def bare_starlette(requests: list[Request], concurrency: int, workdir: Path) -> LoadResult:
    port = free_port()
    log = open(workdir / "bare.log", "ab")  # noqa: SIM115
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.bare_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url), 20, "bare Starlette")
        bare = [Request("/", r.body, r.headers) for r in requests]
        return run_load(url, bare, concurrency)
    finally:
        server.terminate()
        server.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        return httpx.post(url + "/", content=b"{}").status_code == 200
    except httpx.TransportError:
        return False


def drain_rate(actor_name: str, args: tuple[object, ...], messages: int, workdir: Path) -> float:
    """Messages per second that 2 x 8 ``dramatiq bench.actors`` workers get through."""
    import bench.actors as actors

    redis = get_redis()
    counter = redis_key(actors.COUNTER)
    redis.delete(counter)
    log = open(workdir / f"{actor_name}.log", "ab")  # noqa: SIM115
    workers = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "bench.actors", "--processes", "2", "--threads", "8"],
        cwd=REPO,
        env=os.environ.copy(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        time.sleep(3)  # let both processes boot before the clock starts
        actor = getattr(actors, actor_name)
        begin = time.perf_counter()
        for _ in range(messages):
            actor.send(*args)
        wait_for(lambda: int(redis.get(counter) or 0) >= messages, 300, f"{actor_name} drain")
        return messages / (time.perf_counter() - begin)
    finally:
        os.killpg(workers.pid, signal.SIGTERM)
        workers.wait(timeout=30)


def empty_database() -> None:
    """Start from empty tables (a scratch PostgreSQL database is reused between runs)."""
    db = init_store(get_settings())
    with db.connection_context():
        db.drop_tables(list(reversed(ALL_MODELS)), safe=True)
