"""The config token every webhook reads before trusting its cached lookups (ConfigWatch): held
by a subscription to the configuration-change channel, moved by every announcement, by a change
made in this process at once, and absent — nothing cached — whenever an announcement could be
missed (before the subscription is confirmed, Redis unreachable, a connection cut, a silence).

Redis is real; the connection faults come from a TCP proxy in front of it that can go silent
(forward nothing, close nothing: a network partition) or cut every connection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

from app.api.lookups import SILENCE_LIMIT, ConfigWatch
from app.config import Settings
from app.management.lookup_cache import bump_config_version, config_channel
from tests.conftest import REDIS_URL

WAIT = 2.0  # announcements arrive in milliseconds; this only bounds a failing test


async def eventually(check: Callable[[], bool], within: float = WAIT) -> float:
    """Seconds until ``check()`` holds; fails the test after ``within``."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not check():
        if loop.time() - started > within:
            raise AssertionError(f"not within {within} s")
        await asyncio.sleep(0.005)
    return loop.time() - started


async def subscribed(watch: ConfigWatch) -> str:
    """Start ``watch`` (as a first request does) and wait for its first token."""
    watch.token()
    await eventually(lambda: watch.token() is not None)
    token = watch.token()
    assert token is not None
    return token


class SilentableProxy:
    """A TCP proxy to Redis that can stop forwarding (``silent``) or cut every connection."""

    def __init__(self) -> None:
        target = urlsplit(REDIS_URL)
        self.target = (target.hostname or "127.0.0.1", target.port or 6379)
        self.db = target.path or "/0"
        self.silent = False
        self.connections: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}{self.db}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self.connections += [writer, upstream_writer]
        await asyncio.gather(
            self._pipe(reader, upstream_writer),
            self._pipe(upstream_reader, writer),
            return_exceptions=True,
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held = b""
        while data := await reader.read(65536):
            held += data
            if not self.silent:
                writer.write(held)
                held = b""
                await writer.drain()
        writer.close()

    def cut(self) -> None:
        for writer in self.connections:
            writer.close()
        self.connections.clear()

    async def stop(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def publish_elsewhere() -> None:
    """An announcement from another process's point of view: another connection publishes."""
    other = aioredis.Redis.from_url(REDIS_URL)
    await other.publish(config_channel(), b"changed")
    await other.aclose()


def run(
    scenario: Callable[[ConfigWatch], Awaitable[None]],
    url: str = REDIS_URL,
    proxy: SilentableProxy | None = None,
) -> None:
    """``scenario`` with a watch on Redis at ``url`` (or through ``proxy``), in one loop."""

    async def main() -> None:
        target = url if proxy is None else await proxy.start()
        redis = aioredis.Redis.from_url(target, socket_timeout=2, socket_connect_timeout=0.5)
        watch = ConfigWatch(redis)
        try:
            await scenario(watch)
        finally:
            await watch.stop()
            await redis.aclose()
            if proxy is not None:
                await proxy.stop()

    asyncio.run(main())


def test_no_token_until_the_subscription_is_confirmed_then_a_steady_one(
    settings: Settings,
) -> None:
    async def scenario(watch: ConfigWatch) -> None:
        assert watch.token() is None  # the first request starts the watch: uncached
        token = await subscribed(watch)
        await asyncio.sleep(0.05)
        assert watch.token() == token  # nothing changed: entries stay usable

    run(scenario)


def test_an_announcement_from_elsewhere_moves_the_token(settings: Settings) -> None:
    async def scenario(watch: ConfigWatch) -> None:
        seen: list[str | None] = [await subscribed(watch)]
        for _ in range(3):
            await publish_elsewhere()
            await eventually(lambda: watch.token() != seen[-1])
            seen.append(watch.token())
        assert len(set(seen)) == 4 and None not in seen

    run(scenario)


def test_a_change_made_in_this_process_moves_the_token_at_once(settings: Settings) -> None:
    async def scenario(watch: ConfigWatch) -> None:
        before = await subscribed(watch)
        bump_config_version()  # no await between the change and the next request
        assert watch.token() not in (before, None)

    run(scenario)


def test_redis_unreachable_means_no_token_and_one_warning(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(watch: ConfigWatch) -> None:
        for _ in range(4):
            assert watch.token() is None
            await asyncio.sleep(0.6)  # past a reconnect pause each time

    with caplog.at_level(logging.INFO, logger="app.api.lookups"):
        run(scenario, url="redis://127.0.0.1:1/0")

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["lookups uncached, Redis unavailable: ConnectionError"]


def test_a_cut_connection_drops_the_token_until_subscribed_again_under_a_new_one(
    settings: Settings,
) -> None:
    proxy = SilentableProxy()

    async def scenario(watch: ConfigWatch) -> None:
        before = await subscribed(watch)
        proxy.cut()  # e.g. Redis restarted: announcements meanwhile are lost
        await eventually(lambda: watch.token() is None)
        await eventually(lambda: watch.token() is not None)
        assert watch.token() != before  # entries loaded before the cut are never served

    run(scenario, proxy=proxy)


def test_a_silent_subscription_drops_the_token_and_resumes_under_a_new_one(
    settings: Settings,
) -> None:
    """A partition cuts nothing: the watch notices the silence by its unanswered heartbeats."""
    proxy = SilentableProxy()

    async def scenario(watch: ConfigWatch) -> None:
        before = await subscribed(watch)
        proxy.silent = True
        waited = await eventually(lambda: watch.token() is None, within=SILENCE_LIMIT + 1.5)
        assert waited > SILENCE_LIMIT - 1.5  # not before the heartbeats went unanswered
        proxy.silent = False  # what was held is delivered now
        await eventually(lambda: watch.token() is not None, within=3)
        assert watch.token() != before

    run(scenario, proxy=proxy)


def test_stop_ends_the_subscription(settings: Settings) -> None:
    async def subscribers(probe: aioredis.Redis) -> int:
        return int((await probe.pubsub_numsub(config_channel()))[0][1])

    async def scenario(watch: ConfigWatch) -> None:
        probe = aioredis.Redis.from_url(REDIS_URL)
        before = await subscribers(probe)
        await subscribed(watch)
        during = await subscribers(probe)
        await watch.stop()
        after = await subscribers(probe)
        await probe.aclose()
        assert (during, after) == (before + 1, before)

    run(scenario)
