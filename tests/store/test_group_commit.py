"""Group commit (app/store/group_commit.py): units of many threads share transactions, and each
caller sees exactly what it would see with a transaction of its own — on both databases."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import peewee
import pytest

from app.config import Settings
from app.management.accounts import create_account
from app.store import migrate
from app.store.db import EagerSqliteDatabase, database, thread_connection
from app.store.group_commit import GroupCommitter
from app.store.models import Account

THREADS = 16


class Refused(Exception):
    pass


def _accounts() -> list[str]:
    with thread_connection():
        return sorted(str(a.name) for a in Account.select())


def _create(name: str) -> Callable[[], str]:
    def work() -> str:
        account, _ = create_account(name)
        return str(account.id)

    return work


def _hold_writer(committer: GroupCommitter) -> tuple[threading.Event, threading.Thread]:
    """Keep the writer busy with a unit that waits, so the next units queue up together."""
    busy, release = threading.Event(), threading.Event()

    def blocking() -> None:
        busy.set()
        release.wait(10)

    caller = threading.Thread(target=committer.run, args=(blocking,))
    caller.start()
    assert busy.wait(5)
    return release, caller


def _trace_writer(committer: GroupCommitter, statements: list[str]) -> None:
    """Trace the writer's own connection (it opens one on its first unit)."""

    def trace() -> None:
        connection = database.connection()
        assert isinstance(connection, sqlite3.Connection)
        connection.set_trace_callback(statements.append)

    committer.run(trace)


def test_every_caller_gets_its_result_committed(store_settings: Settings) -> None:
    committer = GroupCommitter()
    names = [f"Acme {i:02d}" for i in range(THREADS * 4)]

    def call(name: str) -> str:
        with thread_connection():
            return committer.run(_create(name))

    with ThreadPoolExecutor(THREADS) as pool:
        ids = list(pool.map(call, names))
    assert len(set(ids)) == len(names)
    assert _accounts() == names
    with thread_connection():
        by_id = {str(a.id): str(a.name) for a in Account.select()}
    assert [by_id[i] for i in ids] == names  # each caller got the id of its own row


def test_queued_units_share_one_transaction(settings: Settings) -> None:
    committer = GroupCommitter()
    statements: list[str] = []
    _trace_writer(committer, statements)
    statements.clear()  # the tracing unit's own commit
    release, holder = _hold_writer(committer)
    with ThreadPoolExecutor(8) as pool:
        results = [pool.submit(committer.run, _create(f"Acme {i}")) for i in range(8)]
        release.set()
        ids = [result.result(10) for result in results]
    holder.join(10)
    assert len(set(ids)) == 8 and len(_accounts()) == 8
    commits = [sql for sql in statements if sql.strip().upper() == "COMMIT"]
    # one for the held unit; the eight queued meanwhile, together
    assert len(commits) == 2, statements


def test_a_failing_unit_fails_alone(store_settings: Settings) -> None:
    """A unit that raises gets its exception back with its writes rolled back; the units
    committed in the same batch are kept."""
    committer = GroupCommitter()

    def half_then_refuse() -> None:
        create_account("Half done")
        raise Refused("no")

    release, holder = _hold_writer(committer)
    with ThreadPoolExecutor(3) as pool:
        before = pool.submit(committer.run, _create("Before"))
        failing = pool.submit(committer.run, half_then_refuse)
        after = pool.submit(committer.run, _create("After"))
        release.set()
        assert before.result(10) and after.result(10)
        with pytest.raises(Refused):
            failing.result(10)
    holder.join(10)
    assert _accounts() == ["After", "Before"]


def test_a_caller_inside_a_transaction_runs_inline(store_settings: Settings) -> None:
    """The writer would wait for the write lock this caller holds: the work joins the
    caller's transaction instead (and is rolled back with it)."""
    committer = GroupCommitter()
    with database.connection_context():
        with database.atomic() as transaction:
            committer.run(_create("Inside"))
            transaction.rollback()
        with database.atomic():
            committer.run(_create("Kept"))
    assert _accounts() == ["Kept"]


def test_a_failed_begin_fails_the_batch_and_the_writer_goes_on(
    settings: Settings, tmp_path: Path
) -> None:
    """The database refuses the transaction (here: its write lock held elsewhere past the
    busy timeout): every caller of the batch gets the error, nothing is half-written, and
    the next unit succeeds once the lock is free."""
    path = tmp_path / "locked.db"
    database.initialize(EagerSqliteDatabase(str(path), busy_timeout_ms=300))
    try:
        migrate(database.obj)
        committer = GroupCommitter()
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        with ThreadPoolExecutor(4) as pool:
            calls = [pool.submit(committer.run, _create(f"Locked {i}")) for i in range(4)]
            for call in calls:
                with pytest.raises(peewee.OperationalError, match="locked"):
                    call.result(10)
        blocker.execute("ROLLBACK")
        blocker.close()
        assert committer.run(_create("Free"))
        assert _accounts() == ["Free"]
    finally:
        database.close()


def test_the_writer_follows_a_new_database(settings: Settings, tmp_path: Path) -> None:
    """Pointed at another database (tests, a settings reload), the writer commits there."""
    committer = GroupCommitter()
    seen: list[Any] = []
    for name in ("first", "second"):
        database.initialize(EagerSqliteDatabase(str(tmp_path / f"{name}.db")))
        migrate(database.obj)
        committer.run(_create(name))
        seen.append(_accounts())
        database.close()
    assert seen == [["first"], ["second"]]
