"""A small closed-loop HTTP load generator (asyncio + httpx) used for every HTTP figure, so
that ours and the baseline's are measured by the same client."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Request:
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class LoadResult:
    count: int
    seconds: float
    latencies_ms: list[float]
    started_at: list[float]  # wall-clock send time of each request, in request order
    failures: int

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def _run(
    base_url: str, requests: list[Request], concurrency: int, pause: float
) -> LoadResult:
    latencies = [0.0] * len(requests)
    started = [0.0] * len(requests)
    failures = 0
    cursor = iter(range(len(requests)))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal failures
            for index in cursor:
                request = requests[index]
                started[index] = time.time()
                begin = time.perf_counter()
                response = await client.post(
                    request.path, content=request.body, headers=request.headers
                )
                latencies[index] = (time.perf_counter() - begin) * 1000
                if response.status_code != 200:
                    failures += 1
                if pause:
                    await asyncio.sleep(pause)

        begin = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - begin
    return LoadResult(len(requests), seconds, latencies, started, failures)


def run_load(
    base_url: str, requests: list[Request], concurrency: int = 16, pause: float = 0.0
) -> LoadResult:
    """Send ``requests`` with ``concurrency`` connections; ``pause`` seconds after each."""
    return asyncio.run(_run(base_url, requests, concurrency, pause))
