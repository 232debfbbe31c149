"""What a webhook needs to know about its instance or integration, cached in the web process.

A webhook must find its instance (by name and provider) or integration (by id) and decrypt
its secrets before it can check the signature: a query and an AES-GCM decryption per request
when uncached. Entries here hold the identity and the decrypted secrets only; everything that
changes while the bridge runs (state, pause, options) is read fresh inside the intake
transaction.

Invalidation works across processes and machines through a Redis channel: every write path
calls :func:`bump_config_version` after its commit, which moves this process's own change
count at once and publishes the change to every other process. A web process subscribes to
the channel (:class:`app.api.lookups.ConfigWatch`) and moves its *config token* on each
message; an entry is used only when it was loaded under the current token (read *before* the
load, so a load racing a write is tagged with the older token and never served). In the
process that made the change the next request sees it; in the others, once the message has
arrived — a fraction of a millisecond after the commit on a healthy Redis, where the strict
alternative (reading a version key from Redis on every request) cost a sixth of the web
process's CPU per webhook. Without a confirmed, recently heard subscription (Redis
unreachable, reconnecting, silent past a few heartbeats) there is no token and nothing is
cached. An entry also expires after :data:`MAX_AGE_SECONDS`, which bounds staleness when a
write could not reach Redis to publish (the trade-off: at most that long, only in that case;
one query per instance per that period otherwise). "Not found" is cached like any entry, so a
create is seen like any change. A failed decryption raises and caches nothing.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from redis.exceptions import RedisError

from app.store.models import ChatwootIntegration, Instance
from app.store.redis_client import get_redis, redis_key

logger = logging.getLogger(__name__)

MAX_AGE_SECONDS = 5.0
MAX_ENTRIES = 10_000


_local_changes = itertools.count(1)
_local_change_count = 0


def config_channel() -> str:
    """The Redis channel on which committed configuration changes are announced."""
    return redis_key("config-changed")


def local_change_count() -> int:
    """How many configuration changes this process has committed: part of its config token,
    so its own changes are seen by its next request without waiting for Redis."""
    return _local_change_count


def bump_config_version() -> None:
    """After a committed change of an instance or integration: every process's cached lookups
    are stale — this one's at once, the others' when the announcement reaches them. A Redis
    failure is logged; their caches then refresh within ``MAX_AGE_SECONDS``."""
    global _local_change_count
    _local_change_count = next(_local_changes)
    try:
        get_redis().publish(config_channel(), b"changed")
    except (RedisError, OSError) as exc:
        logger.warning(
            "configuration changed but caches not told (%s); they refresh within %.0f s",
            type(exc).__name__,
            MAX_AGE_SECONDS,
        )


@dataclass(frozen=True)
class WebhookInstance:
    """An instance as its webhooks see it. Secrets never appear in ``repr``."""

    id: str
    name: str
    provider: str
    phone_number_id: str
    integration_id: str | None
    app_secret: str = field(repr=False)
    verify_token: str = field(repr=False)
    gateway_token: str = field(repr=False)


@dataclass(frozen=True)
class WebhookIntegration:
    """An integration as the Chatwoot webhook sees it. Secrets never appear in ``repr``."""

    id: str
    webhook_secret: str = field(repr=False)
    inbox_secret: str | None = field(repr=False)


def load_instance(name: str, provider: str) -> WebhookInstance | None:
    """From the store (blocking); raises when a secret cannot be decrypted."""
    instance: Instance | None = Instance.get_or_none(
        (Instance.name == name) & (Instance.provider == provider)
    )
    if instance is None:
        return None
    integration_id = (
        ChatwootIntegration.select(ChatwootIntegration.id)
        .where(ChatwootIntegration.instance == instance.id)
        .scalar()
    )
    return WebhookInstance(
        id=str(instance.id),
        name=str(instance.name),
        provider=str(instance.provider),
        phone_number_id=str(instance.cloud_phone_number_id),
        integration_id=None if integration_id is None else str(integration_id),
        app_secret=instance.get_secret("cloud_app_secret") or "",
        verify_token=instance.get_secret("cloud_verify_token") or "",
        gateway_token=instance.get_secret("gateway_token") or "",
    )


def load_integration(integration_id: str) -> WebhookIntegration | None:
    """From the store (blocking); raises when a secret cannot be decrypted."""
    found: ChatwootIntegration | None = ChatwootIntegration.get_or_none(
        ChatwootIntegration.id == integration_id
    )
    if found is None:
        return None
    return WebhookIntegration(
        id=str(found.id),
        webhook_secret=found.get_secret("webhook_secret") or "",
        inbox_secret=found.get_secret("inbox_secret"),
    )


K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class _Entry(Generic[V]):
    token: str
    loaded_at: float
    value: V | None


class LookupCache(Generic[K, V]):
    """A bounded LRU of lookups (``None`` = not found), each tagged with the config version it
    was loaded under. Thread-safe; the loader runs outside the lock."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_age: float = MAX_AGE_SECONDS) -> None:
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        self._lock = threading.Lock()
        self._max_entries = max_entries
        self._max_age = max_age

    def __repr__(self) -> str:
        return f"<LookupCache {len(self._entries)} entries>"

    def cached(self, key: K, token: str | None) -> tuple[bool, V | None]:
        """``(True, value)`` when an entry loaded under ``token`` is fresh, else a miss."""
        if token is None:
            return False, None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.token != token:
                return False, None
            if time.monotonic() - entry.loaded_at > self._max_age:
                del self._entries[key]
                return False, None
            self._entries.move_to_end(key)
            return True, entry.value

    def load(self, key: K, token: str | None, loader: Callable[[], V | None]) -> V | None:
        """Run ``loader`` (blocking) and remember its answer under ``token`` (if any)."""
        value = loader()
        if token is not None:
            with self._lock:
                self._entries[key] = _Entry(token, time.monotonic(), value)
                self._entries.move_to_end(key)
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
