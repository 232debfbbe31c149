"""Re-encrypt every stored secret under the current ``ENCRYPTION_KEY`` (``wootbridge rotate-key``).

Safe while the web and worker processes run, and resumable:

* rows are read in small batches ordered by id (keyset pagination, no long transaction);
* each row is rewritten by one ``UPDATE … WHERE id = ? AND <field> = <old ciphertext> …`` in its
  own short transaction, so a value that a concurrent ``set`` replaced meanwhile is never
  overwritten: the update matches nothing, the row is read again and retried;
* values already under the current key id are left alone, so a second run (or a run after an
  interruption) only does what is left.

Values that no configured key decrypts are reported by table, row and field (never the value);
the caller exits non-zero for them. Once a run reports none, the old key can be removed from
``ENCRYPTION_KEYS_OLD``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import peewee

from app.management.lookup_cache import bump_config_version
from app.store.crypto import Cipher, DecryptionError, associated_data, stored_key_id
from app.store.db import database
from app.store.models import ALL_MODELS, SecretFieldsMixin

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 100
MAX_ATTEMPTS_PER_ROW = 5


@dataclass(frozen=True)
class RowRef:
    """A row being rotated (public identifiers only)."""

    table: str
    row_id: str


BeforeWrite = Callable[[RowRef], None]
"""Called after a row's values were read and re-encrypted, just before its compare-and-set.

The seam between read and write: tests use it to make a concurrent write happen exactly there;
an operator tool could use it to throttle or report progress."""


@dataclass
class RotationReport:
    """What a run did. Values are counted per field, rows once each."""

    rows_checked: int = 0
    reencrypted: int = 0
    already_current: int = 0
    retried: int = 0  # compare-and-set lost to a concurrent write; the row was read again
    unreadable: list[str] = field(default_factory=list)  # "table/row/field: reason"
    complete: bool = True  # False when the run stopped at its row limit

    @property
    def ok(self) -> bool:
        return not self.unreadable

    def summary(self) -> str:
        text = (
            f"rows checked: {self.rows_checked}; values re-encrypted: {self.reencrypted}, "
            f"already current: {self.already_current}, changed concurrently and retried: "
            f"{self.retried}, unreadable: {len(self.unreadable)}"
        )
        if not self.complete:
            text += " (stopped at the row limit; run again to continue)"
        return text


@dataclass
class _Plan:
    """One pass over a row's values: what is current, what to write, what cannot be read."""

    current: int = 0
    old: dict[str, str] = field(default_factory=dict)
    new: dict[str, str] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)


def secret_models() -> list[type[peewee.Model]]:
    """Every model with encrypted columns (today ``Instance`` and ``ChatwootIntegration``)."""
    return [
        model
        for model in ALL_MODELS
        if issubclass(model, SecretFieldsMixin) and model.SECRET_FIELDS
    ]


def _secret_fields(model: type[peewee.Model]) -> list[str]:
    if not issubclass(model, SecretFieldsMixin):
        return []
    return sorted(model.SECRET_FIELDS)


class KeyRotation:
    """One run of the rotation; see the module docstring. Needs an open connection."""

    def __init__(
        self,
        cipher: Cipher,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_rows: int | None = None,
        before_write: BeforeWrite | None = None,
    ) -> None:
        if batch_size < 1 or (max_rows is not None and max_rows < 0):
            raise ValueError("batch_size must be positive and max_rows not negative")
        self.cipher = cipher
        self.batch_size = batch_size
        self.max_rows = max_rows
        self.before_write = before_write
        self.report = RotationReport()

    def run(self) -> RotationReport:
        for model in secret_models():
            if not self._rotate_table(model):
                self.report.complete = False
                break
        logger.info("key rotation: %s", self.report.summary())
        return self.report

    def _budget(self) -> int:
        if self.max_rows is None:
            return self.batch_size
        return min(self.batch_size, self.max_rows - self.report.rows_checked)

    def _rotate_table(self, model: type[peewee.Model]) -> bool:
        """Rotate every row of ``model``; False when the row limit stopped it first."""
        last_id = ""
        while True:
            budget = self._budget()
            if budget <= 0:
                return not _rows_after(model, last_id)
            batch = _read_batch(model, last_id, budget)
            if not batch:
                return True
            for row in batch:
                self._rotate_row(model, row)
                self.report.rows_checked += 1
            last_id = str(batch[-1]["id"])

    def _rotate_row(self, model: type[peewee.Model], row: Mapping[str, Any]) -> None:
        ref = RowRef(model._meta.table_name, str(row["id"]))
        values: Mapping[str, Any] | None = row
        for _ in range(MAX_ATTEMPTS_PER_ROW):
            if values is None:
                return  # deleted meanwhile: nothing left to rotate
            plan = self._plan(model, ref, values)
            if plan.new and self.before_write is not None:
                self.before_write(ref)
            if not plan.new or _compare_and_set(model, ref.row_id, plan):
                self._record(plan)
                return
            self.report.retried += 1
            values = _read_row(model, ref.row_id)
        self.report.unreadable.append(
            f"{ref.table}/{ref.row_id}: still changing after {MAX_ATTEMPTS_PER_ROW} attempts"
        )

    def _plan(self, model: type[peewee.Model], ref: RowRef, values: Mapping[str, Any]) -> _Plan:
        plan = _Plan()
        for name in _secret_fields(model):
            stored = values.get(name)
            if stored is None:
                continue
            where = f"{ref.table}/{ref.row_id}/{name}"
            try:
                if stored_key_id(stored) == self.cipher.current_key_id:
                    plan.current += 1
                    continue
                aad = associated_data(ref.table, ref.row_id, name)
                plan.new[name] = self.cipher.reencrypt(stored, aad)
                plan.old[name] = stored
            except DecryptionError as exc:
                # the message names a key id at most (a public fingerprint), never the value
                plan.unreadable.append(f"{where}: {exc}")
        return plan

    def _record(self, plan: _Plan) -> None:
        self.report.already_current += plan.current
        self.report.reencrypted += len(plan.new)
        self.report.unreadable.extend(plan.unreadable)


def rotate_keys(
    cipher: Cipher,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_rows: int | None = None,
    before_write: BeforeWrite | None = None,
) -> RotationReport:
    """Run a rotation (see :class:`KeyRotation`) and return its report."""
    rotation = KeyRotation(
        cipher, batch_size=batch_size, max_rows=max_rows, before_write=before_write
    )
    report = rotation.run()
    bump_config_version()  # plaintexts are unchanged, but cached lookups reload anyway
    return report


def _columns(model: type[peewee.Model]) -> list[peewee.Field]:
    fields: dict[str, peewee.Field] = model._meta.fields
    return [fields["id"], *(fields[name] for name in _secret_fields(model))]


def _read_batch(model: type[peewee.Model], after_id: str, size: int) -> list[dict[str, Any]]:
    id_field = model._meta.fields["id"]
    query = model.select(*_columns(model)).where(id_field > after_id).order_by(id_field).limit(size)
    return cast(list[dict[str, Any]], list(query.dicts()))


def _rows_after(model: type[peewee.Model], after_id: str) -> bool:
    return bool(model.select().where(model._meta.fields["id"] > after_id).exists())


def _read_row(model: type[peewee.Model], row_id: str) -> dict[str, Any] | None:
    id_field = model._meta.fields["id"]
    found: dict[str, Any] | None = (
        model.select(*_columns(model)).where(id_field == row_id).dicts().first()
    )
    return found


def _compare_and_set(model: type[peewee.Model], row_id: str, plan: _Plan) -> bool:
    """Write the new ciphertexts only where every old one is still in place (one short
    transaction); False when a concurrent write got there first."""
    fields: dict[str, peewee.Field] = model._meta.fields
    conditions = [fields["id"] == row_id]
    conditions.extend(fields[name] == old for name, old in plan.old.items())
    with database.atomic():
        updated = (
            model.update({fields[name]: new for name, new in plan.new.items()})
            .where(*conditions)
            .execute()
        )
    return int(updated) == 1
