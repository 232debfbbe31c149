"""Which worker processes are alive, so that lanes left by a killed one are taken over at once
instead of when their lease expires.

Each worker process has a boot id, put into every claim token it uses (the lane lock's token
and the events' ``claim_token``), and renews ``alive:<boot id>`` (a few seconds' TTL) from a
heartbeat thread. A token whose owner's key is gone belonged to a dead process — but only if
Redis has kept its data for a full TTL: a Redis that restarted (or was flushed) a moment ago
has lost every ``alive:`` key, of live processes too, and is no evidence of anything. The age
of Redis' data is the smaller of the server's uptime and the age of an *epoch* key that the
first heartbeat writes (with the server's clock) into an empty Redis.

Drains of this process register their token while they run, so a token of this very process
is known to be live or finished without asking Redis.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import RedisError

from app.store.redis_client import get_redis, redis_key

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 3.0
ALIVE_TTL_SECONDS = 10

_boot_id = uuid.uuid4().hex
_running: set[str] = set()
_running_lock = threading.Lock()


def _new_boot_id() -> None:
    global _boot_id
    _boot_id = uuid.uuid4().hex
    _running.clear()


os.register_at_fork(after_in_child=_new_boot_id)


def boot_id() -> str:
    return _boot_id


def lock_token() -> str:
    """A unique token that names this process (``<boot id>:<random>``)."""
    return f"{_boot_id}:{uuid.uuid4().hex}"


def owner_of(token: str) -> str:
    return token.split(":", 1)[0]


@contextmanager
def running(token: str) -> Iterator[None]:
    """Mark ``token`` as in use by a drain of this process for the duration of the block."""
    with _running_lock:
        _running.add(token)
    try:
        yield
    finally:
        with _running_lock:
            _running.discard(token)


def beat() -> None:
    """Say this process is alive (and start the epoch of an empty Redis, by its clock)."""
    redis = get_redis()
    server_now, _micros = redis.time()
    pipe = redis.pipeline(transaction=False)
    pipe.set(redis_key("alive", _boot_id), b"1", ex=ALIVE_TTL_SECONDS)
    pipe.set(redis_key("liveness-epoch"), str(server_now), nx=True)
    pipe.execute()


def redis_memory_seconds() -> float:
    """For how long Redis has kept its data: min(server uptime, age of the epoch key); 0 for
    an epoch key that is missing (the data is new)."""
    pipe = get_redis().pipeline(transaction=False)
    pipe.info("server")
    pipe.get(redis_key("liveness-epoch"))
    pipe.time()
    info, epoch, (now, _micros) = pipe.execute()
    if epoch is None:
        return 0.0
    return float(min(int(info["uptime_in_seconds"]), now - int(epoch)))


def owner_gone(token: str) -> bool:
    """True only when the process (or drain) that holds ``token`` provably stopped.

    A token of this process is gone when no drain of this process runs with it. Another
    process is gone when its ``alive:`` key is missing from a Redis that has remembered its
    data for at least a full ``ALIVE_TTL_SECONDS``. Redis unreachable → not provably gone.
    """
    owner = owner_of(token)
    if owner == _boot_id:
        with _running_lock:
            return token not in _running
    try:
        if get_redis().exists(redis_key("alive", owner)):
            return False
        return redis_memory_seconds() >= ALIVE_TTL_SECONDS
    except RedisError as exc:
        logger.info("cannot tell whether worker %s is alive: %s", owner, type(exc).__name__)
        return False


_RELEASE_IF_ORPHANED = """
local token = redis.call('get', KEYS[1])
if token == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def take_over_if_orphaned(lock_key: str) -> bool:
    """Delete ``lock_key`` if its owner is provably gone; True if the lock is free now."""
    redis = get_redis()
    token = redis.get(lock_key)
    if token is None:
        return True
    text = token.decode(errors="replace") if isinstance(token, bytes) else str(token)
    if not owner_gone(text):
        return False
    return bool(redis.eval(_RELEASE_IF_ORPHANED, 1, lock_key, token))
