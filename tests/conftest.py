"""Shared fixtures: real Redis, real HTTP fakes, SQLite and PostgreSQL, in-process workers.

The environment is prepared before any project module is imported, because the Dramatiq
broker is configured when ``workers`` is first imported.
"""

from __future__ import annotations

import base64
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

TEST_KEY = base64.b64encode(os.urandom(32)).decode()
NAMESPACE = f"wbtest-{os.getpid()}-{uuid.uuid4().hex[:6]}"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")

os.environ.update(
    {
        "REDIS_URL": REDIS_URL,
        "QUEUE_NAMESPACE": NAMESPACE,
        "ENCRYPTION_KEY": TEST_KEY,
        "ALLOW_PRIVATE_URLS": "true",
        "PUBLIC_URL": "https://bridge.example.com",
        "SET_WAIT_SECONDS": "10",
        "REMOTE_RETRY_ATTEMPTS": "3",
        "REMOTE_RETRY_MAX_WAIT": "0.05",
        "REMOTE_TIMEOUT_SECONDS": "2",
        "UNCONFIRMED_SEND_SECONDS": "3",
        "dramatiq_worker_timeout": "50",
        # tests that exercise rate limits set their own; the rest must never hit one
        "RATE_LIMIT_PER_MINUTE": "100000",
        "RATE_LIMIT_NEW_INSTANCE_PER_MINUTE": "100000",
    }
)

import dramatiq  # noqa: E402
import redis  # noqa: E402
from dramatiq import Worker  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

import workers  # noqa: E402
from app.config import Settings, use_settings  # noqa: E402
from app.main import create_app  # noqa: E402
from app.management.accounts import create_account  # noqa: E402
from app.store import init_store, migrate  # noqa: E402
from app.store.db import database  # noqa: E402
from app.store.models import ALL_MODELS  # noqa: E402
from tests.fakes.chatwoot import FakeChatwoot  # noqa: E402


def _redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _postgres_reason() -> str | None:
    """Why PostgreSQL tests cannot run here, or None if they can."""
    import psycopg2

    try:
        psycopg2.connect(POSTGRES_URL, connect_timeout=2).close()
    except psycopg2.Error as exc:
        return f"PostgreSQL not reachable at {POSTGRES_URL}: {type(exc).__name__}"
    return None


def pytest_sessionstart(session: pytest.Session) -> None:
    if not _redis_available():
        raise pytest.UsageError(
            f"Redis is required at {REDIS_URL} (start it, or set TEST_REDIS_URL)"
        )


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return Settings.from_environ()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated database of each kind (SQLite file; PostgreSQL with empty tables)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wootbridge.db'}"
    reason = _postgres_reason()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI must run the PostgreSQL tests)")
        pytest.skip(reason)
    return POSTGRES_URL


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'wootbridge.db'}"


def _fresh_store(settings: Settings) -> None:
    db = init_store(settings)
    with db.connection_context():
        db.drop_tables(list(reversed(ALL_MODELS)), safe=True)
    migrate(db)


@pytest.fixture
def settings(base_settings: Settings, sqlite_url: str) -> Iterator[Settings]:
    """Settings on a fresh SQLite database (override with ``replace`` in a test)."""
    current = replace(base_settings, database_url=sqlite_url)
    _fresh_store(current)
    use_settings(current)
    yield current
    database.close()
    use_settings(None)


@pytest.fixture
def store_settings(base_settings: Settings, db_url: str) -> Iterator[Settings]:
    """Like ``settings`` but parametrized over SQLite and PostgreSQL."""
    current = replace(base_settings, database_url=db_url)
    _fresh_store(current)
    use_settings(current)
    yield current
    database.close()
    use_settings(None)


@pytest.fixture(scope="session")
def chatwoot_server() -> Iterator[FakeChatwoot]:
    fake = FakeChatwoot()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def chatwoot(chatwoot_server: FakeChatwoot) -> Iterator[FakeChatwoot]:
    """The fake Chatwoot, emptied for each test; every request must match its API description."""
    chatwoot_server.reset()
    yield chatwoot_server
    assert chatwoot_server.schema_errors == []


@pytest.fixture
def worker(settings: Settings) -> Iterator[Worker]:
    """A real Dramatiq worker (threads in this process) consuming from the real Redis."""
    broker = dramatiq.get_broker()
    broker.flush_all()
    running = Worker(broker, worker_threads=4, worker_timeout=50)
    running.start()
    yield running
    running.stop()
    # a stopped Worker leaves its private middleware on the broker; drop it
    broker.middleware[:] = [m for m in broker.middleware if type(m).__name__ != "_WorkerMiddleware"]
    broker.flush_all()


def make_client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with make_client(settings) as test_client:
        yield test_client


@pytest.fixture
def account_token(settings: Settings) -> str:
    with database.connection_context():
        _, token = create_account("Acme")
    return token


@pytest.fixture
def other_account_token(settings: Settings) -> str:
    with database.connection_context():
        _, token = create_account("Globex")
    return token


class SecretLogCapture(logging.Handler):
    """Collects every log line of the session so tests can check no secret was logged."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def all_logs() -> Iterator[SecretLogCapture]:
    """Every record at every level, including the per-request lines of httpx that the app
    keeps quiet by default (an operator may turn them on: they must hold no secret either)."""
    capture = SecretLogCapture()
    capture.setFormatter(logging.Formatter("%(name)s %(message)s %(exc_info)s"))
    loggers = [logging.getLogger(name) for name in ("", "httpx", "httpcore")]
    previous = [logger.level for logger in loggers]
    loggers[0].addHandler(capture)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    yield capture
    loggers[0].removeHandler(capture)
    for logger, level in zip(loggers, previous, strict=True):
        logger.setLevel(level)


assert workers.broker is not None
