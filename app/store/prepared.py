"""Hot lookups with their SQL built once.

peewee builds a query's SQL from an expression tree on every execution; for a select of a
whole row by a unique key that costs about twenty times what SQLite takes to answer it
(measured in the intake and the relay drains). :func:`get_where` is ``Model.get_or_none`` on
equality conditions whose SQL is built once per model, fields and database backend.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, TypeVar

import peewee

from app.store.db import database

M = TypeVar("M", bound=peewee.Model)


def get_where(model: type[M], **equal: Any) -> M | None:
    """The first row of ``model`` whose fields equal the given values (field name → value; a
    foreign key takes the related row or its id), or ``None``."""
    names = tuple(equal)
    sql = _select_sql(model, names, database.param, database.quote)
    fields = model._meta.fields
    params = [fields[name].db_value(equal[name]) for name in names]
    for row in model.raw(sql, *params):
        found: M = row
        return found
    return None


@lru_cache(maxsize=128)
def _select_sql(model: type[peewee.Model], names: tuple[str, ...], param: str, quote: str) -> str:
    """``SELECT <every column> FROM model WHERE a = ? AND … LIMIT 1`` for this backend
    (``param`` and ``quote`` name it: tests switch between SQLite and PostgreSQL in one
    process)."""

    def quoted(name: str) -> str:
        return f"{quote[0]}{name}{quote[1]}"

    meta = model._meta
    columns = ", ".join(quoted(field.column_name) for field in meta.sorted_fields)
    conditions = " AND ".join(f"{quoted(meta.fields[n].column_name)} = {param}" for n in names)
    return f"SELECT {columns} FROM {quoted(meta.table_name)} WHERE {conditions} LIMIT 1"  # noqa: S608
