"""Latency of remote calls, as a Prometheus histogram shared by every process through Redis.

Every HTTP exchange with a remote system (one attempt; retries are separate observations) is
observed by :class:`app.integrations.http.GuardedTransport`, the one transport all our clients
use. An observation only adds to an in-process buffer (a lock and a few dict updates); a
daemon thread flushes the buffer every :data:`FLUSH_SECONDS` with one pipelined ``HINCRBY`` per
changed field into one Redis hash, so the figures add up across web and worker processes and
machines. A failed flush is logged at DEBUG and its increments are kept for the next one (the
buffer is bounded: a few dozen fields), so Redis being down never fails or slows a remote call.

Hash fields are ``<remote>|<outcome>|<bucket>`` (non-cumulative bucket counts, ``+Inf`` for
the overflow), ``<remote>|<outcome>|count`` and ``<remote>|<outcome>|sum_us`` (microseconds,
an integer so concurrent increments stay exact). :func:`parse` turns the hash back into
cumulative histograms.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx
import redis

from app.store.redis_client import get_redis, redis_key

logger = logging.getLogger(__name__)

BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REMOTES = ("chatwoot", "whatsapp")
OUTCOMES = ("ok", "http_error", "transport_error")
REMOTE_EXTENSION = "wootbridge_remote"
"""Request extension a caller may set (``extensions={REMOTE_EXTENSION: "chatwoot"}``) to name
the remote explicitly; otherwise :func:`remote_of` infers it."""
FLUSH_SECONDS = 1.0
_CHATWOOT_PATHS = ("/api/v1/", "/public/api/v1/", "/rails/active_storage/", "/platform/api/")


def histogram_key() -> str:
    return redis_key("metrics", "remote_call_seconds")


def remote_of(request: httpx.Request) -> str:
    """``chatwoot`` or ``whatsapp`` (the Cloud API, its media hosts, or a gateway)."""
    tagged = request.extensions.get(REMOTE_EXTENSION)
    if tagged in REMOTES:
        return str(tagged)
    if "api_access_token" in request.headers or request.url.path.startswith(_CHATWOOT_PATHS):
        return "chatwoot"
    return "whatsapp"


def _bucket(seconds: float) -> str:
    for bound in BUCKETS:
        if seconds <= bound:
            return repr(bound)
    return "+Inf"


@dataclass
class _Recorder:
    pending: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    wake: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def observe(self, remote: str, outcome: str, seconds: float) -> None:
        prefix = f"{remote}|{outcome}|"
        with self.lock:
            for name, n in (
                (_bucket(seconds), 1),
                ("count", 1),
                ("sum_us", round(seconds * 1_000_000)),
            ):
                self.pending[prefix + name] = self.pending.get(prefix + name, 0) + n
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="latency-flush", daemon=True)
                self.thread.start()

    def _run(self) -> None:
        while True:
            self.wake.wait(FLUSH_SECONDS)
            self.wake.clear()
            self.flush()

    def flush(self) -> bool:
        """Write the buffered increments; on failure keep them for the next flush."""
        with self.lock:
            batch, self.pending = self.pending, {}
        if not batch:
            return True
        try:
            pipe = get_redis().pipeline(transaction=False)
            key = histogram_key()
            for name, n in batch.items():
                pipe.hincrby(key, name, n)
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            logger.debug("remote call latency not flushed to Redis: %s", type(exc).__name__)
            with self.lock:
                for name, n in batch.items():
                    self.pending[name] = self.pending.get(name, 0) + n
            return False
        return True


_recorder = _Recorder()


def observe(remote: str, outcome: str, seconds: float) -> None:
    """Record one remote call (never raises, never waits on Redis)."""
    _recorder.observe(remote, outcome, seconds)


def flush() -> bool:
    """Write what is buffered now (the flush thread does it every second); False if Redis
    did not take it (it is kept for the next flush)."""
    return _recorder.flush()


def _forget_after_fork() -> None:
    """A forked child starts with an empty buffer (the parent flushes its own) and no thread."""
    global _recorder
    _recorder = _Recorder()


os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(lambda: _recorder.flush())


@dataclass(frozen=True)
class Histogram:
    """One remote/outcome: cumulative ``(le, count)`` buckets (ending with ``+Inf``), count
    and sum in seconds."""

    remote: str
    outcome: str
    buckets: tuple[tuple[str, int], ...]
    count: int
    sum_seconds: float


def parse(fields: Mapping[bytes | str, bytes | str]) -> list[Histogram]:
    """The histograms held in the Redis hash (as ``HGETALL`` returns it)."""
    values: dict[str, int] = {}
    for name, value in fields.items():
        text = name.decode() if isinstance(name, bytes) else name
        values[text] = int(value)
    found = []
    for remote in REMOTES:
        for outcome in OUTCOMES:
            prefix = f"{remote}|{outcome}|"
            if prefix + "count" not in values:
                continue
            running, cumulative = 0, []
            for le in [*(repr(b) for b in BUCKETS), "+Inf"]:
                running += values.get(prefix + le, 0)
                cumulative.append((le, running))
            found.append(
                Histogram(
                    remote,
                    outcome,
                    tuple(cumulative),
                    values[prefix + "count"],
                    values.get(prefix + "sum_us", 0) / 1_000_000,
                )
            )
    return found
