"""Pacing of Cloud API message calls: one WhatsApp number never gets more than its
``cloudMessagesPerSecond`` sends in any one-second window, whichever worker process sends.

Meta counts throughput per business phone number (80 messages per second by default, up to
1,000 after an automatic upgrade, a fixed 20 for a number shared with the WhatsApp Business app)
and answers ``130429`` above it (developers.facebook.com/documentation/business-messaging/
whatsapp/throughput). Every ``POST /{phone-number-id}/messages`` (a text, a media message, a
template, a read receipt with its typing indicator) takes a slot here first. How:
:class:`~app.integrations.whatsapp.cloud_send.CloudSender` does it for every call it makes
(its ``pacer``); any other code posting to that endpoint calls
``app.relay.clients.cloud_pacer(instance).acquire()`` right before the POST, and treats
:class:`PacingBusy` (a ``SendRetryLater``: nothing sent) as "come back after ``retry_after``",
or, for a cosmetic call, as "skip it".

The limiter is GCRA with no burst, kept in Redis under one key per phone number id and updated
by one Lua script (atomic, Redis's own clock, so every process and machine agrees): the key
holds the *theoretical arrival time* ``tat`` of the next free slot, in microseconds. A caller
gets the slot ``max(now, tat)`` and moves ``tat`` to ``slot + interval``; it then sleeps until
its slot and posts. So any two slots are at least ``interval`` apart, and

    N + 1 slots span at least N x interval = N x (1 + JITTER_ALLOWANCE) / N seconds > 1 s,

i.e. no one-second window (sliding, wherever it starts) ever holds more than N slots, and there
is no burst at the start either (a fixed-window counter or a token bucket would allow 2N
around a window edge, or N at once). ``JITTER_ALLOWANCE`` (10 %) is the time a request may take
between its slot and Meta's front door (thread wake-up, connection, network): two requests may
get closer on the way by up to 100 ms and still never put N + 1 in one second at Meta.

A fast number does not pay a Redis round trip per send: one call reserves the consecutive
slots that fit in the next 20 ms (:func:`local_batch`: one at the default 80/s, 16 at 1,000/s)
for this process, whose threads then take them in order. The spacing is the same; a reserved
slot taken up to 50 ms late (a thread woke late) still keeps every one-second window within the
rate thanks to the jitter allowance, and a later one is dropped unused (a slot lost, never an
extra send). The same holds for the slot a thread slept for: when the process stalled past it
(descheduled on a busy machine, a long pause), every sender sleeping meanwhile wakes at once, so
each drops its passed slot and takes a fresh one rather than posting together. (A stall in the
few instructions between that check and the request leaving, or between Redis answering and
the slot's time being read, is not seen; Meta's 130429 is backed off for those.)

A caller never sleeps longer than ``max_wait`` (2 s): when the next slot is further away (a low
rate, many senders), no slot is taken and :class:`PacingBusy` says when to come back, so a
worker thread is never pinned.

Redis unreachable: the send goes ahead unpaced, and so do the process's sends for the next
10 s without asking Redis again (a call to a Redis that is down takes seconds), with a warning
(at most one a minute per process). Meta enforces the limit anyway and its 130429 is backed
off; stopping every reply of every number because the limiter's store is down would turn a
degraded limiter into an outage, and the lanes already treat Redis as an optimisation, never
the guard (the database's claims are).

:meth:`RedisPacer.hold` pushes the next slot away (after a 130429: Meta also counts inbound
messages, which no sender here can pace, so the number's budget is spent now for everyone) and
drops the slots this process reserved ahead.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis

from app.integrations.whatsapp.send import SendRetryLater
from app.store.redis_client import get_redis, redis_key

__all__ = [
    "DEFAULT_MESSAGES_PER_SECOND",
    "JITTER_ALLOWANCE",
    "MAX_MESSAGES_PER_SECOND",
    "MAX_WAIT_SECONDS",
    "Pacer",
    "PacingBusy",
    "RedisPacer",
    "interval_seconds",
]

logger = logging.getLogger(__name__)

DEFAULT_MESSAGES_PER_SECOND = 80
MAX_MESSAGES_PER_SECOND = 1000
JITTER_ALLOWANCE = 0.1
MAX_WAIT_SECONDS = 2.0
WARN_EVERY_SECONDS = 60.0
LOCAL_HORIZON_SECONDS = 0.02  # slots one Redis call may reserve ahead for this process
MAX_LOCAL_SLOTS = 16
STALE_SLOT_SECONDS = 0.05  # a slot reached this late is dropped (within JITTER_ALLOWANCE)
SKIP_AFTER_FAILURE_SECONDS = 10.0
_MICROS = 1_000_000

# KEYS[1]: the number's tat key. ARGV[1]: interval (us), ARGV[2]: max wait (us),
# ARGV[3]: how many consecutive slots to reserve; 0 = hold: push tat to now + ARGV[1] at least.
# Returns {slots taken (0 when the first is too far), wait for the first in us}. Lua numbers are
# doubles: microseconds since the epoch (~1.8e15) are exact below 2^53.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local interval = tonumber(ARGV[1])
if ARGV[3] == '0' then
  local until_us = now + interval
  if until_us > tat then
    redis.call('SET', KEYS[1], string.format('%.0f', until_us),
      'PX', math.ceil(interval / 1000) + 1000)
  end
  return {1, 0}
end
local slot = math.max(now, tat)
local wait = slot - now
if wait > tonumber(ARGV[2]) then
  return {0, wait}
end
local count = tonumber(ARGV[3])
local next_tat = slot + interval * count
redis.call('SET', KEYS[1], string.format('%.0f', next_tat),
  'PX', math.ceil((next_tat - now) / 1000) + 1000)
return {count, wait}
"""


class PacingBusy(SendRetryLater):
    """No slot within the bounded wait: nothing was sent; come back after ``retry_after``
    seconds. Not a failure of the message (it must not count as an attempt) and never retried
    inside the call."""


class Pacer(Protocol):
    """What a sender needs: a slot before each message call, and a way to back off."""

    def acquire(self) -> float:
        """Return at this number's next free slot (the seconds waited for it), or raise
        :class:`PacingBusy`."""

    def hold(self, seconds: float) -> None:
        """No slot for anyone sending as this number for ``seconds`` from now."""


def interval_seconds(messages_per_second: int) -> float:
    """The spacing between two slots of a number paced at ``messages_per_second``."""
    return (1.0 + JITTER_ALLOWANCE) / messages_per_second


class RedisPacer:
    """The pacer of one phone number id, shared through Redis by every process."""

    def __init__(
        self,
        phone_number_id: str,
        messages_per_second: int = DEFAULT_MESSAGES_PER_SECOND,
        *,
        max_wait: float = MAX_WAIT_SECONDS,
        client: Callable[[], redis.Redis] = get_redis,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 1 <= messages_per_second <= MAX_MESSAGES_PER_SECOND:
            raise ValueError(f"messages per second must be 1 to {MAX_MESSAGES_PER_SECOND}")
        self.phone_number_id = phone_number_id
        self.messages_per_second = messages_per_second
        self._interval_us = math.ceil(interval_seconds(messages_per_second) * _MICROS)
        self._max_wait_us = int(max_wait * _MICROS)
        self._client = client
        self._sleep = sleep
        self._batch = local_batch(messages_per_second)
        self._reserved = _reserved_slots(phone_number_id, self._interval_us)

    def __repr__(self) -> str:
        return (
            f"RedisPacer(phone_number_id={self.phone_number_id!r}, "
            f"messages_per_second={self.messages_per_second})"
        )

    def acquire(self) -> float:
        started, slept = time.monotonic(), 0.0
        while True:
            slot = self._reserved.take(time.monotonic())
            if slot is None:
                slot = self._reserve()
                if slot is None:  # Redis unreachable: unpaced (see the module docstring)
                    return slept
            wait = slot - time.monotonic()
            if wait > 0:
                self._sleep(wait)
                slept += wait
            late = time.monotonic() - slot
            if late <= STALE_SLOT_SECONDS:
                return slept
            self._drop_late_slot(late, elapsed=time.monotonic() - started)

    def _drop_late_slot(self, late: float, *, elapsed: float) -> None:
        """This thread got back to its slot ``late`` seconds after it (the process stalled:
        descheduled, a long GIL wait, a pause). Posting now could land beside the slots after
        it (a stall wakes every sleeping sender at once), so the slot is lost and a fresh one
        taken; after ``max_wait`` in all, the caller comes back later instead."""
        logger.debug("a pacing slot of %s passed %.3fs ago: taking a fresh one", self, late)
        if elapsed >= self._max_wait_us / _MICROS:
            retry_after = self._interval_us / _MICROS
            raise PacingBusy(
                f"pacing {self.messages_per_second} messages/s: slots passed while this "
                f"process stalled; next attempt in {retry_after:.2f}s",
                retry_after=retry_after,
            )

    def hold(self, seconds: float) -> None:
        if seconds > 0:
            self._reserved.clear()
            self._run(count=0, hold_us=math.ceil(seconds * _MICROS))

    def _reserve(self) -> float | None:
        """Reserve this process's next slots in Redis: the first one's monotonic time (the
        others wait in :attr:`_reserved`), or None when Redis is unreachable."""
        answer = self._run(count=self._batch)
        if answer is None:
            return None
        taken, wait_us = answer
        wait = wait_us / _MICROS
        if not taken:
            raise PacingBusy(
                f"pacing {self.messages_per_second} messages/s: next slot in {wait:.1f}s",
                retry_after=wait,
            )
        first = time.monotonic() + wait
        interval = self._interval_us / _MICROS
        self._reserved.add([first + i * interval for i in range(1, taken)])
        return first

    def _run(self, *, count: int, hold_us: int = 0) -> tuple[int, int] | None:
        key = redis_key("pace", "cloud", self.phone_number_id)
        args = [self._interval_us, self._max_wait_us, count] if count else [hold_us, 0, 0]
        client = self._client()
        outage = _outage_of(client)
        if outage.skipping():
            return None
        try:
            answer = _script_of(client)(keys=[key], args=args)
        except redis.RedisError as exc:
            outage.failed(exc)
            return None
        taken, wait_us = answer
        return int(taken), int(wait_us)


def local_batch(messages_per_second: int) -> int:
    """How many consecutive slots one Redis call reserves: those within
    :data:`LOCAL_HORIZON_SECONDS` (one at the default 80/s, 16 at 1,000/s)."""
    fit = int(LOCAL_HORIZON_SECONDS / interval_seconds(messages_per_second))
    return max(1, min(MAX_LOCAL_SLOTS, fit))


@dataclass
class _ReservedSlots:
    """Slots of one number this process reserved ahead (monotonic times, in order), shared
    by its threads. A slot taken late by up to :data:`STALE_SLOT_SECONDS` still keeps every
    one-second window within the rate (slots are spaced for 1.1 s per N); later, it is
    dropped unused (a slot lost, never an extra send)."""

    times: deque[float] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, now: float) -> float | None:
        with self.lock:
            while self.times and self.times[0] < now - STALE_SLOT_SECONDS:
                self.times.popleft()
            return self.times.popleft() if self.times else None

    def add(self, times: list[float]) -> None:
        with self.lock:
            self.times.extend(times)
            if len(self.times) > 1 and times:
                self.times = deque(sorted(self.times))

    def clear(self) -> None:
        with self.lock:
            self.times.clear()


_reserved: dict[tuple[str, int], _ReservedSlots] = {}
_reserved_lock = threading.Lock()


def _reserved_slots(phone_number_id: str, interval_us: int) -> _ReservedSlots:
    with _reserved_lock:
        return _reserved.setdefault((phone_number_id, interval_us), _ReservedSlots())


_scripts: weakref.WeakKeyDictionary[redis.Redis, Any] = weakref.WeakKeyDictionary()


def _script_of(client: redis.Redis) -> Any:
    """The pacing script registered once per Redis client (not hashed again per call)."""
    script = _scripts.get(client)
    if script is None:
        script = _scripts[client] = client.register_script(_SCRIPT)
    return script


@dataclass
class _Outage:
    """Redis failing for the pacer (per client, so per process): after a failure, sends skip
    the pacer for :data:`SKIP_AFTER_FAILURE_SECONDS` (a call to a Redis that is down can take
    seconds with its client's own retries: paying that before every send would stall the
    relay), and the warning is logged at most once every :data:`WARN_EVERY_SECONDS`."""

    skip_until: float = -math.inf
    warned_at: float = -math.inf
    lock: threading.Lock = field(default_factory=threading.Lock)

    def skipping(self) -> bool:
        return time.monotonic() < self.skip_until

    def failed(self, exc: redis.RedisError) -> None:
        now = time.monotonic()
        with self.lock:
            self.skip_until = now + SKIP_AFTER_FAILURE_SECONDS
            if now - self.warned_at < WARN_EVERY_SECONDS:
                return
            self.warned_at = now
        logger.warning(
            "send pacing unavailable (Redis: %s); sending unpaced for now, WhatsApp's 130429 "
            "is backed off",
            type(exc).__name__,
        )


_outages: weakref.WeakKeyDictionary[redis.Redis, _Outage] = weakref.WeakKeyDictionary()
_outages_lock = threading.Lock()


def _outage_of(client: redis.Redis) -> _Outage:
    """The outage state of one Redis client (one connection pool: one per process)."""
    with _outages_lock:
        outage = _outages.get(client)
        if outage is None:
            outage = _outages[client] = _Outage()
        return outage
