"""SQLite transactions begin as soon as another connection releases the write lock (polled),
instead of after SQLite's busy-handler sleeps, which grow to 100 ms."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import peewee
import pytest

from app.config import Settings
from app.store.db import BUSY_TIMEOUT_MS, EagerSqliteDatabase, database
from app.store.models import Account

HOLD_SECONDS = 0.24
"""Long enough that SQLite's own busy handler would be sleeping in 50 ms steps on release."""


def _db_file(settings: Settings) -> Path:
    return Path(settings.database_url.removeprefix("sqlite:///"))


def _hold_write_lock(path: Path, seconds: float, locked: threading.Event) -> float:
    """Another connection (as a worker process would) holds the write lock for ``seconds``;
    returns the monotonic time it released it."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    locked.set()
    time.sleep(seconds)
    other.execute("COMMIT")
    released = time.monotonic()
    other.close()
    return released


def _busy_timeout(db: Any) -> int:
    (value,) = db.execute_sql("PRAGMA busy_timeout").fetchone()
    return int(value)


def test_the_store_uses_the_eager_database(settings: Settings) -> None:
    assert isinstance(database.obj, EagerSqliteDatabase)
    with database.connection_context():
        assert _busy_timeout(database) == BUSY_TIMEOUT_MS


def test_begins_right_after_another_writer_releases_the_lock(settings: Settings) -> None:
    released: list[float] = []
    locked = threading.Event()
    holder = threading.Thread(
        target=lambda: released.append(_hold_write_lock(_db_file(settings), HOLD_SECONDS, locked))
    )
    with database.connection_context():
        holder.start()
        assert locked.wait(5)
        with database.atomic():
            began = time.monotonic()
            Account.create(id="acc_eager", name="Eager", token_hash="h" * 64)
        holder.join()
        assert Account.get_by_id("acc_eager").name == "Eager"
        assert _busy_timeout(database) == BUSY_TIMEOUT_MS
    late = began - released[0]
    # SQLite's busy handler began 92 ms late here (measured with plain SqliteDatabase);
    # polling begins within a poll and a thread switch.
    assert late < 0.02, f"began {late * 1000:.1f} ms after the lock was released"


def test_an_error_inside_rolls_back_and_the_connection_goes_on(settings: Settings) -> None:
    with database.connection_context():
        with pytest.raises(RuntimeError), database.atomic():
            Account.create(id="acc_gone", name="Gone", token_hash="g" * 64)
            raise RuntimeError("bad data")
        assert Account.get_or_none(Account.id == "acc_gone") is None
        assert _busy_timeout(database) == BUSY_TIMEOUT_MS
        with database.atomic():
            Account.create(id="acc_next", name="Next", token_hash="n" * 64)
        assert Account.get_by_id("acc_next").name == "Next"


def test_gives_up_like_sqlite_would_when_the_lock_is_never_released(settings: Settings) -> None:
    impatient = EagerSqliteDatabase(
        str(_db_file(settings)), busy_timeout_ms=200, lock_type="IMMEDIATE"
    )
    locked = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(_db_file(settings), 1.0, locked))
    holder.start()
    assert locked.wait(5)
    started = time.monotonic()
    with pytest.raises(peewee.OperationalError, match="database is locked"), impatient.atomic():
        pass
    assert 0.2 <= time.monotonic() - started < 0.9
    assert _busy_timeout(impatient) == 200
    holder.join()
    impatient.close()
