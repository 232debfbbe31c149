"""Which worker processes are alive, so that a lane lock left by a killed one is taken over at
once instead of when it expires.

Each worker process has a boot id, put into the token of every lane lock it takes, and renews
``alive:<boot id>`` (a few seconds' TTL) from its sweeper thread. A lock whose owner's key is
gone belonged to a dead process.
"""

from __future__ import annotations

import os
import uuid

from app.store.redis_client import get_redis, redis_key

HEARTBEAT_SECONDS = 3.0
ALIVE_TTL_SECONDS = 10

_boot_id = uuid.uuid4().hex


def _new_boot_id() -> None:
    global _boot_id
    _boot_id = uuid.uuid4().hex


os.register_at_fork(after_in_child=_new_boot_id)


def lock_token() -> str:
    """A unique lock token that names this process."""
    return f"{_boot_id}:{uuid.uuid4().hex}"


def beat() -> None:
    get_redis().set(redis_key("alive", _boot_id), b"1", ex=ALIVE_TTL_SECONDS)


_RELEASE_IF_ORPHANED = """
local token = redis.call('get', KEYS[1])
if token == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


def take_over_if_orphaned(lock_key: str) -> bool:
    """Delete ``lock_key`` if its owner process is not alive; True if it was deleted."""
    redis = get_redis()
    token = redis.get(lock_key)
    if token is None:
        return True
    text = token.decode(errors="replace") if isinstance(token, bytes) else str(token)
    owner = text.split(":", 1)[0]
    if redis.exists(redis_key("alive", owner)):
        return False
    return bool(redis.eval(_RELEASE_IF_ORPHANED, 1, lock_key, token))
