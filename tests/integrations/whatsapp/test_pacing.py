"""The send pacer (app/integrations/whatsapp/pacing.py) against the real Redis: threads of this
process and separate processes share one number's pacer and never put more than its rate in any
one-second window (sliding), with no burst at the start, even when their process stalls past
its slots; a far slot is refused, not waited for;
a hold pushes every sender back; Redis down sends unpaced. And CloudSender with a pacer against
the fake Graph enforcing Meta's throughput: no 130429, and a 130429 holds the number."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.integrations.http import build_client
from app.integrations.whatsapp.cloud_send import CloudSender
from app.integrations.whatsapp.pacing import (
    JITTER_ALLOWANCE,
    STALE_SLOT_SECONDS,
    PacingBusy,
    RedisPacer,
    interval_seconds,
    local_batch,
)
from app.integrations.whatsapp.send import SendRetryLater
from tests.fakes.graph import FakeGraph
from tests.fakes.server import unused_port

REPO = Path(__file__).resolve().parents[3]
TOKEN = "EAAG-pacing-token"
TO = "5511999998888"

# A child process: once imported it says "ready", reads the wall-clock start and end, acquires
# slots of ``number`` at ``rate`` in ``threads`` threads in between (acquire_in_threads) and
# prints the time each acquire returned (JSON).
CHILD = """
import json, sys, time
from app.integrations.whatsapp.pacing import RedisPacer
from tests.integrations.whatsapp.test_pacing import acquire_in_threads
number, rate, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
pacer = RedisPacer(number, rate, max_wait=5.0)
print("ready", flush=True)
start, end = map(float, sys.stdin.readline().split())
time.sleep(max(0.0, start - time.time()))
print(json.dumps(acquire_in_threads(pacer, threads, end)))
"""


def new_number() -> str:
    """A phone number id no other test paces (its key is fresh in Redis)."""
    return f"pace{uuid.uuid4().hex[:12]}"


def most_in_window(times: list[float], window: float = 1.0) -> int:
    """The largest number of ``times`` inside any half-open window ``[t, t + window)``."""
    ordered = sorted(times)
    best, first = 0, 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= window:
            first += 1
        best = max(best, last - first + 1)
    return best


def test_most_in_window_counts_a_sliding_window() -> None:
    assert most_in_window([0.0, 0.5, 0.99, 1.0, 1.2]) == 4  # [0.5, 1.5): 0.5, 0.99, 1.0, 1.2
    assert most_in_window([0.0, 0.6, 1.2, 1.8]) == 2
    assert most_in_window([]) == 0


def acquire_in_threads(pacer: RedisPacer, threads: int, until: float) -> list[float]:
    times: list[float] = []
    lock = threading.Lock()

    def run() -> None:
        while time.time() < until:
            pacer.acquire()
            with lock:
                times.append(time.time())

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return times


@pytest.mark.parametrize("rate", [40, 400])
def test_threads_and_processes_sharing_a_number_never_exceed_its_rate(rate: int) -> None:
    """Two processes plus four threads here, all flat out on one number for 2.5 s: no
    one-second window, wherever it starts, holds more than ``rate`` sends, and together they
    still get the rate (less the 10 % jitter allowance), so the limiter is neither leaky nor
    idle. At 400/s each process reserves several slots per Redis call (``local_batch``)."""
    number = new_number()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, number, str(rate), "1"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for child in children:  # imported and connected: they start together
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    start = time.time() + 0.2
    end = start + 2.5
    for child in children:
        assert child.stdin is not None
        child.stdin.write(f"{start!r} {end!r}\n")
        child.stdin.flush()
    time.sleep(max(0.0, start - time.time()))
    here = acquire_in_threads(RedisPacer(number, rate, max_wait=5.0), 4, end)
    theirs = []
    for child in children:
        out, _ = child.communicate(timeout=30)
        assert child.returncode == 0
        theirs.append(json.loads(out))

    everyone = here + [t for times in theirs for t in times]
    assert all(theirs) and here, "every sender got slots"
    assert most_in_window(everyone) <= rate
    steady = [t for t in everyone if start + 0.5 <= t < end - 0.5]  # away from the edges
    expected = rate / (1 + JITTER_ALLOWANCE) * 1.5
    assert len(steady) >= 0.85 * expected, f"{len(steady)} sends in 1.5 s, expected ~{expected}"


def test_a_process_stalled_past_its_slots_does_not_send_them_together() -> None:
    """Eight threads of one process flat out at 30/s, and the process stopped for 0.3 s
    (SIGSTOP: descheduled on a busy machine): every thread asleep for a slot inside the stall
    wakes at once when it resumes. Using those passed slots would put eight sends together
    right before a second of fresh slots; each is dropped and a fresh one taken instead, so
    no one-second window holds more than 30."""
    number, rate = new_number(), 30
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, number, str(rate), "8"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    start = time.time() + 0.2
    end = start + 3.0
    assert child.stdin is not None
    child.stdin.write(f"{start!r} {end!r}\n")
    child.stdin.flush()
    time.sleep(max(0.0, start + 0.8 - time.time()))
    child.send_signal(signal.SIGSTOP)
    time.sleep(0.3)
    child.send_signal(signal.SIGCONT)
    out, _ = child.communicate(timeout=30)
    assert child.returncode == 0
    times = sorted(json.loads(out))
    assert max(b - a for a, b in pairwise(times)) >= 0.25, "the process was stopped"
    assert most_in_window(times) <= rate
    expected = rate / (1 + JITTER_ALLOWANCE) * (3.0 - 0.3)
    assert len(times) >= 0.85 * expected, f"{len(times)} sends, expected ~{expected}"


def test_a_thread_that_keeps_waking_too_late_comes_back_later() -> None:
    """A thread that never gets back to its slot in time (a process starved of CPU) drops
    each one and, after ``max_wait``, is told to come back later: nothing sent, never a late
    slot used."""
    number, rate = new_number(), 10
    RedisPacer(number, rate).acquire()  # the number's first slot: the next is 0.11 s away
    oversleeps: list[float] = []

    def oversleep(seconds: float) -> None:
        oversleeps.append(seconds)
        time.sleep(seconds + STALE_SLOT_SECONDS + 0.05)

    starved = RedisPacer(number, rate, max_wait=0.5, sleep=oversleep)
    started = time.monotonic()
    with pytest.raises(PacingBusy) as busy:
        starved.acquire()
    assert 0.5 <= time.monotonic() - started < 2.0  # after max_wait, not pinned much longer
    assert len(oversleeps) >= 2, "each late slot was dropped and a fresh one waited for"
    assert busy.value.retry_after == pytest.approx(interval_seconds(rate), abs=1e-6)
    on_time = RedisPacer(number, rate, max_wait=0.5)  # the slots it dropped went unused
    assert on_time.acquire() <= interval_seconds(rate) + 0.01


def test_no_burst_at_the_start() -> None:
    """Twenty senders at once on a fresh number paced at 5/s: the slots come one by one, evenly
    spaced, never several together (a token bucket or fixed window would let 5 go at once)."""
    number, rate = new_number(), 5
    pacer = RedisPacer(number, rate, max_wait=10.0)
    times: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def run() -> None:
        barrier.wait()
        pacer.acquire()
        with lock:
            times.append(time.monotonic())

    workers = [threading.Thread(target=run) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    gaps = [b - a for a, b in pairwise(sorted(times))]
    spacing = interval_seconds(rate)  # 0.22 s
    assert min(gaps) >= spacing - 0.06, gaps
    assert sorted(times)[-1] - sorted(times)[0] >= 7 * spacing - 0.06
    assert most_in_window(times) <= rate


def test_a_far_slot_is_refused_without_taking_it() -> None:
    number = new_number()
    pacer = RedisPacer(number, 1, max_wait=0.5)
    assert pacer.acquire() == 0.0  # a fresh number: at once
    with pytest.raises(PacingBusy) as busy:
        pacer.acquire()
    assert isinstance(busy.value, SendRetryLater)  # nothing sent; the relay comes back later
    assert 0.9 <= (busy.value.retry_after or 0.0) <= interval_seconds(1) + 0.01
    with pytest.raises(PacingBusy):  # the refusal took no slot: the next one is as far
        pacer.acquire()
    time.sleep((busy.value.retry_after or 0.0) - 0.3)
    waited = pacer.acquire()  # now within the bound: waited for, not refused
    assert 0.0 < waited <= 0.5


class CountingRedis(redis.Redis):
    """The real Redis client, counting the pacing script's calls."""

    calls = 0

    def evalsha(self, *args: Any, **kwargs: Any) -> Any:
        type(self).calls += 1
        return super().evalsha(*args, **kwargs)


def test_a_fast_number_reserves_several_slots_per_redis_call() -> None:
    """At 1,000/s one call reserves 16 slots (20 ms) for this process; still one slot per
    send: never more sends than the slots in the time they took."""
    assert local_batch(80) == 1 and local_batch(1000) == 16
    client = CountingRedis.from_url(os.environ["REDIS_URL"])
    CountingRedis.calls = 0
    pacer = RedisPacer(new_number(), 1000, client=lambda: client)
    started = time.time()
    times = acquire_in_threads(pacer, 4, started + 0.3)
    elapsed = max(times) - started
    assert len(times) >= 100
    assert CountingRedis.calls <= len(times) / 16 + 8, (CountingRedis.calls, len(times))
    # never more sends than slots in the time it took (the first ones start at once)
    assert len(times) <= elapsed / interval_seconds(1000) + 16 + 1


def test_a_hold_drops_the_slots_this_process_reserved() -> None:
    number = new_number()
    pacer = RedisPacer(number, 1000)
    pacer.acquire()  # and 15 more reserved here
    pacer.hold(0.5)
    started = time.monotonic()
    pacer.acquire()
    assert time.monotonic() - started >= 0.45


def test_a_hold_pushes_every_sender_of_the_number_back() -> None:
    number = new_number()
    first, second = RedisPacer(number, 100), RedisPacer(number, 100)
    first.hold(0.6)
    started = time.monotonic()
    second.acquire()
    assert time.monotonic() - started >= 0.55
    other = RedisPacer(new_number(), 100)  # another number is not held
    assert other.acquire() == 0.0


def test_redis_down_sends_unpaced_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Fail open: a send is never refused or delayed because the limiter's Redis is down, and
    after one failed call the process stops asking it for a while (each call to a Redis that
    is down costs its timeouts)."""
    down = redis.Redis(port=unused_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    pacer = RedisPacer(new_number(), 1, client=lambda: down)
    caplog.set_level(logging.WARNING, logger="app.integrations.whatsapp.pacing")
    assert pacer.acquire() == 0.0  # never refused, never slept
    started = time.monotonic()
    assert [pacer.acquire() for _ in range(50)] == [0.0] * 50  # a rate of 1/s, unpaced
    assert time.monotonic() - started < 0.1  # without asking Redis again
    warnings = [r for r in caplog.records if "pacing unavailable" in r.getMessage()]
    assert len(warnings) == 1
    live = RedisPacer(new_number(), 1, max_wait=0.1)  # the real Redis's pacers still pace
    assert live.acquire() == 0.0
    with pytest.raises(PacingBusy):
        live.acquire()


def test_rate_out_of_range_is_refused() -> None:
    for rate in (0, 1001):
        with pytest.raises(ValueError):
            RedisPacer("106540352242922", rate)


# ---- CloudSender with a pacer, against the fake Graph enforcing Meta's throughput ----------


@pytest.fixture(scope="module")
def graph_server() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def http_client() -> Iterator[httpx.Client]:
    client = build_client(allow_private=True)
    yield client
    client.close()


def sender(graph: FakeGraph, http: httpx.Client, number: str, rate: int) -> CloudSender:
    graph.add_phone_number(number, TOKEN)
    return CloudSender(
        graph.base_url,
        number,
        TOKEN,
        http=http,
        retry_max_wait=0.01,
        pacer=RedisPacer(number, rate),
    )


def test_paced_sends_never_trip_the_throughput_limit(
    graph_server: FakeGraph, http_client: httpx.Client
) -> None:
    """Eight threads sending 120 messages as fast as they can, paced at the 30/s that the fake
    enforces like Meta: not one 130429, every message accepted."""
    graph = graph_server
    graph.reset()
    number, rate = new_number(), 30
    cloud = sender(graph, http_client, number, rate)
    graph.limit_throughput(number, rate)
    texts = iter(range(120))
    lock = threading.Lock()

    def run() -> None:
        while True:
            with lock:
                i = next(texts, None)
            if i is None:
                return
            cloud.send_text(TO, f"message {i}")

    workers = [threading.Thread(target=run) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert graph.throttled == []
    assert len(graph.sent) == 120
    assert most_in_window(graph.message_times[number]) <= rate


def test_unpaced_sends_do_trip_the_fake(graph_server: FakeGraph, http_client: httpx.Client) -> None:
    """The control: without a pacer, the same burst meets 130429 (so the test above proves
    the pacer, not a slow client)."""
    graph = graph_server
    graph.reset()
    number = new_number()
    graph.add_phone_number(number, TOKEN)
    graph.limit_throughput(number, 5)
    cloud = CloudSender(graph.base_url, number, TOKEN, http=http_client, retry_attempts=1)
    refused = 0
    for i in range(10):
        try:
            cloud.send_text(TO, f"message {i}")
        except SendRetryLater as exc:
            assert exc.code == 130429
            refused += 1
    assert refused >= 4 and len(graph.throttled) == refused


def test_a_130429_holds_the_number_for_every_sender(
    graph_server: FakeGraph, http_client: httpx.Client
) -> None:
    """Meta counts inbound messages too, so a 130429 can come despite the pacing: the number's
    pacer is held for a second, for every process, and the in-call retry waits for it."""
    graph = graph_server
    graph.reset()
    number = new_number()
    cloud = sender(graph, http_client, number, 80)
    graph.fail_next("POST", r"/messages$", 400, body=130429)
    started = time.monotonic()
    cloud.send_text(TO, "hello")
    assert time.monotonic() - started >= 0.95  # the retry waited for the held slot
    assert [c.status for c in graph.calls] == [400, 200]
    other = RedisPacer(number, 80, max_wait=0.1)  # another worker's pacer of the same number
    graph.fail_next("POST", r"/messages$", 400, body=130429)
    with pytest.raises(PacingBusy):  # the in-call retry is refused a slot, not sent
        CloudSender(
            graph.base_url, number, TOKEN, http=http_client, retry_max_wait=0.01, pacer=other
        ).send_text(TO, "again")
    assert [c.status for c in graph.calls] == [400, 200, 400]


def test_pacing_busy_is_not_retried_inside_the_call(
    graph_server: FakeGraph, http_client: httpx.Client
) -> None:
    graph = graph_server
    graph.reset()
    number = new_number()
    graph.add_phone_number(number, TOKEN)
    pacer = RedisPacer(number, 1, max_wait=0.2)
    pacer.acquire()  # the next slot is 1.1 s away
    cloud = CloudSender(graph.base_url, number, TOKEN, http=http_client, pacer=pacer)
    started = time.monotonic()
    with pytest.raises(PacingBusy):
        cloud.send_text(TO, "hello")
    assert time.monotonic() - started < 0.5
    assert graph.calls == []  # nothing posted
