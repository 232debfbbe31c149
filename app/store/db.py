"""The database, chosen by ``DATABASE_URL`` through ``playhouse.db_url``.

Models bind to :data:`database` (a proxy) so they can be declared before settings are read.
PostgreSQL URLs get a connection pool; SQLite runs in WAL mode with full fsync, because a
webhook is acknowledged only after its event is durably committed, and with ``secure_delete``,
so that content the retention purge erases (app/management/retention.py) is overwritten with
zeros in the file instead of lingering in free space.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import peewee
from playhouse.db_url import connect, parse
from playhouse.pool import PooledDatabase

database = peewee.DatabaseProxy()

BUSY_TIMEOUT_MS = 10_000
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "full",
    "foreign_keys": 1,
    "busy_timeout": BUSY_TIMEOUT_MS,
    "secure_delete": 1,  # freed bytes are zeroed: erased message content leaves the file
}
_POSTGRES_SCHEMES = {"postgres", "postgresql"}
EAGER_POLL_SECONDS = 0.0005


def _is_busy(exc: peewee.OperationalError) -> bool:
    text = str(exc)
    return "database is locked" in text or "database is busy" in text


class EagerSqliteDatabase(peewee.SqliteDatabase):
    """SQLite whose transactions begin as soon as the write lock is free.

    SQLite's busy handler waits for another connection's write lock by sleeping 1, 2, 5, 10,
    … up to 100 ms between tries, so a writer often begins tens of milliseconds after the lock
    was released (measured: 92 ms late after a 240 ms hold), and the web's group commit, the
    worker threads and the worker processes all queue on that one lock. Here ``BEGIN`` polls
    every :data:`EAGER_POLL_SECONDS` instead (the busy handler off while it does), for the
    same ``busy_timeout_ms`` in total; every other statement keeps the busy handler.
    """

    def __init__(
        self, database: str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, **kwargs: Any
    ) -> None:
        pragmas = dict(kwargs.pop("pragmas", {}))
        pragmas["busy_timeout"] = busy_timeout_ms
        super().__init__(database, pragmas=pragmas, **kwargs)
        self.busy_timeout_ms = busy_timeout_ms

    def begin(self, lock_type: str | None = None) -> None:
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        cursor = self.cursor()  # type: ignore[no-untyped-call]
        cursor.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    super().begin(lock_type)
                    return
                except peewee.OperationalError as exc:
                    if not _is_busy(exc) or time.monotonic() >= deadline:
                        raise
                time.sleep(EAGER_POLL_SECONDS)
        finally:
            cursor.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")


def open_database(url: str) -> peewee.Database:
    """Connect ``database`` to ``url`` and return the concrete database object."""
    scheme = urlsplit(url).scheme
    if scheme in _POSTGRES_SCHEMES:
        pooled = url.replace(f"{scheme}://", f"{scheme}+pool://", 1)
        # threads keep their connection: the web thread pool (40) or a worker process (<=16)
        db = connect(pooled, max_connections=48, stale_timeout=300, timeout=10)
    elif scheme == "sqlite" and parse(url).get("database"):
        # IMMEDIATE: a transaction takes the write lock when it begins, so concurrent writers
        # wait instead of failing when a read would upgrade to a write.
        db = EagerSqliteDatabase(**parse(url), pragmas=SQLITE_PRAGMAS, lock_type="IMMEDIATE")
    elif scheme.startswith("sqlite"):
        db = connect(url, pragmas=SQLITE_PRAGMAS, lock_type="IMMEDIATE")
    else:
        db = connect(url)
    database.initialize(db)
    opened: peewee.Database = db
    return opened


CONNECTION_ERRORS = (peewee.OperationalError, peewee.InterfaceError)


@contextmanager
def thread_connection() -> Iterator[None]:
    """Use this thread's connection, opening it on first use and keeping it afterwards.

    Long-lived threads (the web thread pool, worker threads) then skip a connect per unit of
    work. After a connection-level error the connection is dropped, so the next use of the
    thread reconnects (e.g. after a database restart).
    """
    database.connect(reuse_if_open=True)
    try:
        yield
    except CONNECTION_ERRORS:
        if not database.is_closed():
            database.close()
        raise


@contextmanager
def request_connection() -> Iterator[None]:
    """A connection for one unit of work of a short-lived thread (the web's thread pool, whose
    threads exit when idle). From a pool, the connection goes back at the end: a thread that
    exits while keeping one would hold it out of the pool for good. SQLite connections are
    kept per thread as :func:`thread_connection` does (they are closed with their thread)."""
    if not isinstance(database.obj, PooledDatabase):
        with thread_connection():
            yield
        return
    opened_here = database.is_closed()
    if opened_here:
        database.connect()
    try:
        yield
    except CONNECTION_ERRORS:
        if not database.is_closed():
            database.close()
            opened_here = False
        raise
    finally:
        if opened_here and not database.is_closed():
            database.close()


def describe(url: str) -> str:
    """The URL with any password removed, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
