"""Group commit for the threads of one process: many small write transactions, one fsync.

A relay worker runs several threads, and each delivered reply costs it two small durable
writes (the part is about to be sent; the part was sent) that must be committed before the
drain goes on. Committed one by one, they queue on the database's single write lock (SQLite)
and each pays its own fsync, so the drain is bounded by commits per second, not by work.

:func:`run_committed` hands a unit of work to this process's writer thread and waits. The
writer takes every unit queued while it was busy (up to :data:`MAX_BATCH`), runs them one after
another inside ONE transaction, commits, and only then answers each caller. When a unit
raises, that transaction is rolled back and the batch runs again with each unit in a savepoint
of its own (so a unit must only write to the database: it may run twice, the first run rolled
back). For the caller nothing changes but the speed:

* its work is committed when :func:`run_committed` returns, as with ``database.atomic()``;
* an exception its work raised comes back to it, and its writes were rolled back (to its
  savepoint); the other units of the batch are unaffected;
* a failed ``COMMIT`` (or ``BEGIN``: the database unreachable) fails every unit of the batch,
  none of which was committed, as if each had failed its own transaction;
* the process killed mid-batch: nothing of that batch was committed and no caller was told
  otherwise, as with one transaction each.

Units run one after another, so conditional updates (the fenced claims of
:mod:`app.relay.lanes.claims`) keep their meaning. A caller already inside a transaction runs
its work inline (in a savepoint of its own transaction): the writer would wait for the write
lock that caller holds.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import peewee

from app.store.db import database, thread_connection

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BATCH = 64
IDLE_CLOSE_SECONDS = 1.0  # the writer's connection is closed after this long without work


@dataclass
class _Unit:
    work: Callable[[], Any]
    done: Future[Any] = field(default_factory=Future)


class GroupCommitter:
    """One writer thread committing the units of work of every thread of this process."""

    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self._queue: queue.SimpleQueue[_Unit] = queue.SimpleQueue()
        self._max_batch = max_batch
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._connected_to: peewee.Database | None = None  # the database object opened on

    def run(self, work: Callable[[], T]) -> T:
        """Run ``work`` in a transaction shared with other threads' work; its result once
        committed (or its exception, with its writes rolled back)."""
        if database.in_transaction():
            with database.atomic():
                return work()
        unit = _Unit(work)
        self._queue.put(unit)
        self._ensure_started()
        result: T = unit.done.result()
        return result

    def _ensure_started(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._serve, name="group-commit", daemon=True
                )
                self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=IDLE_CLOSE_SECONDS)
            except queue.Empty:
                self._close()
                continue
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(batch)

    def _commit(self, batch: list[_Unit]) -> None:
        try:
            self._follow_database()
            with thread_connection():
                try:
                    outcomes = _run_together(batch)
                except _UnitFailed:  # rolled back: again, each unit in a savepoint of its own
                    outcomes = _run_isolated(batch)
        except BaseException as exc:  # every caller of the batch gets it
            logger.warning("group commit of %d units failed: %s", len(batch), type(exc).__name__)
            for unit in batch:
                unit.done.set_exception(exc)
            return
        for unit, (ok, value) in zip(batch, outcomes, strict=True):
            if ok:
                unit.done.set_result(value)
            else:
                unit.done.set_exception(value)

    def _follow_database(self) -> None:
        """Tests (and a settings reload) point :data:`database` at a new database object:
        close this thread's connection to the previous one first."""
        current = database.obj
        if self._connected_to is not None and self._connected_to is not current:
            self._close()
        self._connected_to = current

    def _close(self) -> None:
        previous, self._connected_to = self._connected_to, None
        if previous is not None and not previous.is_closed():
            previous.close()


class _UnitFailed(Exception):
    """A unit raised in a batch run without savepoints; the batch was rolled back."""


def _run_together(batch: list[_Unit]) -> list[tuple[bool, Any]]:
    """The common case, every unit succeeding: no savepoint statements at all."""
    with database.atomic():
        outcomes = []
        for unit in batch:
            try:
                outcomes.append((True, unit.work()))
            except peewee.OperationalError:
                raise  # the connection or the transaction is broken: the whole batch fails
            except Exception as exc:
                raise _UnitFailed from exc
        return outcomes


def _run_isolated(batch: list[_Unit]) -> list[tuple[bool, Any]]:
    with database.atomic():
        return [_run_in_savepoint(unit.work) for unit in batch]


def _run_in_savepoint(work: Callable[[], Any]) -> tuple[bool, Any]:
    """``(True, result)``, or ``(False, exception)`` with the work's writes rolled back."""
    try:
        with database.atomic():
            return True, work()
    except peewee.OperationalError:
        raise
    except Exception as exc:  # handed to the unit's caller
        return False, exc


_committer = GroupCommitter()


def _reset_after_fork() -> None:
    global _committer
    _committer = GroupCommitter()


os.register_at_fork(after_in_child=_reset_after_fork)


def run_committed(work: Callable[[], T]) -> T:
    """Run ``work`` in this process's group commit (see the module docstring)."""
    return _committer.run(work)
