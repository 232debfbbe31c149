"""Connections of short-lived threads go back to the pool (the web's thread-pool threads exit
when idle; a connection one kept would be lost to the pool until it ran dry)."""

from __future__ import annotations

import threading

from playhouse.pool import PooledDatabase

from app.config import Settings
from app.store.db import database, request_connection
from app.store.models import Account


def _count_accounts(results: list[int]) -> None:
    with request_connection():
        results.append(Account.select().count())


def test_threads_that_exit_leave_no_connection_checked_out(store_settings: Settings) -> None:
    results: list[int] = []
    threads = [threading.Thread(target=_count_accounts, args=(results,)) for _ in range(60)]
    for thread in threads:
        thread.start()
        thread.join()
    assert results == [0] * 60
    if isinstance(database.obj, PooledDatabase):
        # more threads than the pool holds (48): without handing back, the pool runs dry
        assert len(database.obj._in_use) == 0


def test_a_connection_opened_by_the_caller_stays_open(store_settings: Settings) -> None:
    database.connect(reuse_if_open=True)
    with request_connection():
        Account.select().count()
    assert not database.is_closed()
