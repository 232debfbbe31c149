"""The config version every webhook reads before trusting its cached lookups: one Redis GET
shared by the requests waiting meanwhile, never one answered from before a request asked, and
a request that goes away takes no one else with it."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from app.api.lookups import VersionReader
from app.config import Settings
from app.management.lookup_cache import config_version_key
from tests.conftest import REDIS_URL


class CountingRedis(aioredis.Redis):
    """A real Redis client that counts its GETs and can hold them until released."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gets = 0
        self.release = asyncio.Event()
        self.release.set()

    async def get(self, name: Any) -> Any:
        self.gets += 1
        await self.release.wait()
        return await super().get(name)


def counting_redis() -> CountingRedis:
    pool = aioredis.ConnectionPool.from_url(REDIS_URL)
    return CountingRedis(connection_pool=pool)


def test_requests_waiting_together_share_one_get(settings: Settings) -> None:
    async def scenario() -> tuple[list[str | None], int]:
        redis = counting_redis()
        await redis.set(config_version_key(), "v1")
        reader = VersionReader(redis)
        redis.release.clear()
        first = asyncio.ensure_future(reader.token())
        await asyncio.sleep(0.01)  # the first GET is in flight; 49 more ask meanwhile
        rest = [asyncio.ensure_future(reader.token()) for _ in range(49)]
        await asyncio.sleep(0.01)
        redis.release.set()
        tokens = await asyncio.gather(first, *rest)
        await redis.aclose()
        return tokens, redis.gets

    tokens, gets = asyncio.run(scenario())

    assert tokens == ["v1"] * 50
    assert gets == 2  # the one in flight, then one for everyone who asked during it


def test_a_version_set_before_a_request_asks_is_what_it_gets(settings: Settings) -> None:
    async def scenario() -> list[str | None]:
        redis = counting_redis()
        reader = VersionReader(redis)
        seen = []
        for version in ("v1", "v2", "v3"):
            await redis.set(config_version_key(), version)
            seen.append(await reader.token())
        await redis.aclose()
        return seen

    assert asyncio.run(scenario()) == ["v1", "v2", "v3"]


def test_a_request_cancelled_while_waiting_leaves_the_others_their_answer(
    settings: Settings,
) -> None:
    async def scenario() -> tuple[bool, list[str | None]]:
        redis = counting_redis()
        await redis.set(config_version_key(), "v7")
        reader = VersionReader(redis)
        redis.release.clear()
        waiting = [asyncio.ensure_future(reader.token()) for _ in range(3)]
        await asyncio.sleep(0.01)
        waiting[1].cancel()  # its client went away
        await asyncio.sleep(0.01)
        redis.release.set()
        others = await asyncio.gather(waiting[0], waiting[2])
        cancelled = waiting[1].cancelled()
        await redis.aclose()
        return cancelled, list(others)

    cancelled, others = asyncio.run(scenario())

    assert cancelled
    assert others == ["v7", "v7"]


def test_an_empty_redis_starts_a_version_and_later_requests_read_it(settings: Settings) -> None:
    """After a Redis restart the key is gone: the first reader starts a version (no cache is
    trusted on a missing one) and the next request reads the version it started."""

    async def scenario() -> tuple[str | None, str | None, bytes | None]:
        redis = counting_redis()
        await redis.delete(config_version_key())
        reader = VersionReader(redis)
        first = await reader.token()
        second = await reader.token()
        stored = await redis.get(config_version_key())
        await redis.aclose()
        return first, second, stored

    first, second, stored = asyncio.run(scenario())

    assert first is None
    assert stored is not None and second == stored.decode()


class BrokenRedis(CountingRedis):
    """Answers its first GET with an error no Redis client raises (a bug on our side)."""

    async def get(self, name: Any) -> Any:
        self.gets += 1
        if self.gets == 1:
            raise ValueError("unexpected")
        return await super().get(name)


def test_an_unexpected_error_fails_the_waiting_requests_and_the_next_ones_read_again(
    settings: Settings,
) -> None:
    async def scenario() -> tuple[list[BaseException | str | None], str | None]:
        redis = BrokenRedis(connection_pool=aioredis.ConnectionPool.from_url(REDIS_URL))
        await redis.set(config_version_key(), "v9")
        reader = VersionReader(redis)
        both = asyncio.gather(reader.token(), reader.token(), return_exceptions=True)
        first = await asyncio.wait_for(both, 5)  # not hanging is the point
        later = await asyncio.wait_for(reader.token(), 5)
        await redis.aclose()
        return list(first), later

    first, later = asyncio.run(scenario())

    assert [type(outcome) for outcome in first] == [ValueError, ValueError]
    assert later == "v9"


def test_redis_unreachable_answers_no_version(settings: Settings) -> None:
    async def scenario() -> str | None:
        redis = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
        token = await VersionReader(redis).token()
        await redis.aclose()
        return token

    assert asyncio.run(scenario()) is None
