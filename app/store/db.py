"""The database, chosen by ``DATABASE_URL`` through ``playhouse.db_url``.

Models bind to :data:`database` (a proxy) so they can be declared before settings are read.
PostgreSQL URLs get a connection pool; SQLite runs in WAL mode with full fsync, because a
webhook is acknowledged only after its event is durably committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import peewee
from playhouse.db_url import connect

database = peewee.DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "full",
    "foreign_keys": 1,
    "busy_timeout": 10_000,
}
_POSTGRES_SCHEMES = {"postgres", "postgresql"}


def open_database(url: str) -> peewee.Database:
    """Connect ``database`` to ``url`` and return the concrete database object."""
    scheme = urlsplit(url).scheme
    if scheme in _POSTGRES_SCHEMES:
        pooled = url.replace(f"{scheme}://", f"{scheme}+pool://", 1)
        # threads keep their connection: the web thread pool (40) or a worker process (<=16)
        db = connect(pooled, max_connections=48, stale_timeout=300, timeout=10)
    elif scheme.startswith("sqlite"):
        # IMMEDIATE: a transaction takes the write lock when it begins, so concurrent writers
        # wait (busy_timeout) instead of failing when a read would upgrade to a write.
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


def describe(url: str) -> str:
    """The URL with any password removed, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
