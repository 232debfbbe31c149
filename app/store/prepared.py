"""Hot statements with their SQL built once.

peewee builds a query's SQL from an expression tree on every execution; for a select of a
whole row by a unique key that costs about twenty times what SQLite takes to answer it, and a
relay worker delivering a reply runs a dozen such statements (measured: a fifth of its CPU).
Here the SQL of a statement on equality conditions is built once per model, fields and
database backend (``param`` and ``quote`` name the backend: tests switch between SQLite and
PostgreSQL in one process), and values are converted as the fields store them
(``db_value``: a foreign key's row becomes its id, a datetime its stored form).

* :func:`get_where` — ``Model.get_or_none`` on equalities;
* :func:`oldest_where` — the first rows by primary key (a lane's next events);
* :func:`values_where` — one field of every matching row;
* :func:`rows_where` — several fields of every matching row, as tuples;
* :func:`exists_where` — whether such a row exists;
* :func:`update_where` — ``UPDATE … SET … WHERE`` equalities, the rows changed;
* :func:`insert_ignore` — one row, nothing when it conflicts with a unique key.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, TypeVar

import peewee

from app.store.db import database

M = TypeVar("M", bound=peewee.Model)
Names = tuple[str, ...]


def get_where(model: type[M], **equal: Any) -> M | None:
    """The first row of ``model`` whose fields equal the given values (field name → value; a
    foreign key takes the related row or its id; ``None`` matches NULL), or ``None``."""
    equal, nulls = _split_nulls(equal)
    sql = _select_sql(model, None, tuple(equal), nulls, _backend(), True)
    row = database.execute_sql(sql, _values(model, equal)).fetchone()
    return None if row is None else _instance(model, row)


def oldest_where(model: type[M], limit: int, **equal: Any) -> list[M]:
    """Up to ``limit`` rows of ``model`` matching ``equal``, lowest primary key first."""
    equal, nulls = _split_nulls(equal)
    sql = _oldest_sql(model, tuple(equal), nulls, _backend())
    cursor = database.execute_sql(sql, [*_values(model, equal), limit])
    return [_instance(model, row) for row in cursor.fetchall()]


def _instance(model: type[M], row: tuple[Any, ...]) -> M:
    """A model instance of a row of every column, built as peewee's own cursor wrapper builds
    one (``__no_default__``, then nothing dirty), without the wrapper: resolving a raw query's
    columns to fields on every call cost more than the query (37 → 14 µs for a ``ChatLink``)."""
    fields = model._meta.sorted_fields
    found = model(
        __no_default__=1,
        **{field.name: field.python_value(value) for field, value in zip(fields, row, strict=True)},
    )
    found._dirty.clear()  # type: ignore[attr-defined]  # as peewee does; not in its stubs
    return found


def values_where(model: type[peewee.Model], column: str, **equal: Any) -> list[Any]:
    """The stored values of field ``column`` in the rows of ``model`` matching ``equal``."""
    return [value for (value,) in rows_where(model, (column,), **equal)]


def rows_where(model: type[peewee.Model], columns: Names, **equal: Any) -> list[tuple[Any, ...]]:
    """The stored values of fields ``columns`` in the rows of ``model`` matching ``equal``."""
    equal, nulls = _split_nulls(equal)
    sql = _select_sql(model, columns, tuple(equal), nulls, _backend(), False)
    converters = [model._meta.fields[column].python_value for column in columns]
    return [
        tuple(convert(value) for convert, value in zip(converters, row, strict=True))
        for row in database.execute_sql(sql, _values(model, equal))
    ]


def exists_where(model: type[peewee.Model], **equal: Any) -> bool:
    """Whether a row of ``model`` has fields equal to the given values."""
    equal, nulls = _split_nulls(equal)
    sql = _select_sql(model, (), tuple(equal), nulls, _backend(), True)
    return database.execute_sql(sql, _values(model, equal)).fetchone() is not None


def update_where(
    model: type[peewee.Model],
    values: Mapping[str, Any],
    *,
    not_above: tuple[str, Any] | None = None,
    **equal: Any,
) -> int:
    """Set ``values`` (field name → plain value) on the rows of ``model`` whose fields equal
    ``equal`` (``None`` matches NULL) and, with ``not_above=(field, value)``, whose ``field``
    is NULL or at most ``value``; how many rows changed."""
    equal, nulls = _split_nulls(equal)
    bound = not_above[0] if not_above is not None else None
    sql = _update_sql(model, tuple(values), tuple(equal), nulls, bound, _backend())
    params = _values(model, values) + _values(model, equal)
    if not_above is not None:
        params += _values(model, dict([not_above]))
    changed: int = database.execute_sql(sql, params).rowcount
    return changed


def insert_ignore(model: type[peewee.Model], **values: Any) -> None:
    """Insert one row (field name → value; the model's defaults fill the other fields, as
    peewee's ``insert`` does), or nothing when it would break a unique key."""
    row = dict(values)
    for field, default in model._meta.defaults.items():
        if field.name not in row:
            row[field.name] = default() if callable(default) else default
    sql = _insert_sql(model, tuple(row), _backend())
    database.execute_sql(sql, _values(model, row))


def quoted(name: str, quote: str | None = None) -> str:
    """``name`` as an identifier of the current backend (``quote``: its quote characters)."""
    marks = quote or database.quote
    return f"{marks[0]}{name}{marks[1]}"


def _backend() -> tuple[str, str]:
    """The current database's parameter mark and identifier quotes (the SQL caches' key)."""
    return database.param, database.quote


def _split_nulls(equal: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The conditions on values, and the names compared with ``None`` (``IS NULL``)."""
    nulls = tuple(name for name, value in equal.items() if value is None)
    if not nulls:
        return equal, nulls
    return {name: value for name, value in equal.items() if value is not None}, nulls


def _values(model: type[peewee.Model], named: Mapping[str, Any]) -> list[Any]:
    fields = model._meta.fields
    return [fields[name].db_value(value) for name, value in named.items()]


def _column(model: type[peewee.Model], name: str, quote: str) -> str:
    return quoted(model._meta.fields[name].column_name, quote)


def _conditions(
    model: type[peewee.Model], names: Names, nulls: Names, param: str, quote: str
) -> str:
    equal = [f"{_column(model, n, quote)} = {param}" for n in names]
    return " AND ".join(equal + [f"{_column(model, n, quote)} IS NULL" for n in nulls])


@lru_cache(maxsize=256)
def _select_sql(
    model: type[peewee.Model],
    selected: Names | None,
    names: Names,
    nulls: Names,
    backend: tuple[str, str],
    first_only: bool,
) -> str:
    """``SELECT <selected> FROM model WHERE a = ? AND … [LIMIT 1]``: ``selected`` None is every
    column, ``()`` the constant 1 (whether a row exists); ``backend`` is (param, quote)."""
    param, quote = backend
    meta = model._meta
    if selected is None:
        what = ", ".join(quoted(field.column_name, quote) for field in meta.sorted_fields)
    else:
        what = ", ".join(_column(model, name, quote) for name in selected) or "1"
    table, where = quoted(meta.table_name, quote), _conditions(model, names, nulls, param, quote)
    limit = " LIMIT 1" if first_only else ""
    return f"SELECT {what} FROM {table} WHERE {where}{limit}"  # noqa: S608


@lru_cache(maxsize=64)
def _oldest_sql(
    model: type[peewee.Model], names: Names, nulls: Names, backend: tuple[str, str]
) -> str:
    param, quote = backend
    key = model._meta.primary_key
    assert isinstance(key, peewee.Field), f"{model.__name__} has no single-column primary key"
    primary_key = quoted(key.column_name, quote)
    select = _select_sql(model, None, names, nulls, backend, False)
    return f"{select} ORDER BY {primary_key} LIMIT {param}"


@lru_cache(maxsize=128)
def _update_sql(
    model: type[peewee.Model],
    names: Names,
    equal: Names,
    nulls: Names,
    not_above: str | None,
    backend: tuple[str, str],
) -> str:
    param, quote = backend
    table = quoted(model._meta.table_name, quote)
    assignments = ", ".join(f"{_column(model, n, quote)} = {param}" for n in names)
    where = _conditions(model, equal, nulls, param, quote)
    if not_above is not None:
        bound = _column(model, not_above, quote)
        where += f" AND ({bound} IS NULL OR {bound} <= {param})"
    return f"UPDATE {table} SET {assignments} WHERE {where}"  # noqa: S608


@lru_cache(maxsize=128)
def _insert_sql(model: type[peewee.Model], names: Names, backend: tuple[str, str]) -> str:
    param, quote = backend
    table = quoted(model._meta.table_name, quote)
    columns = ", ".join(_column(model, n, quote) for n in names)
    marks = ", ".join([param] * len(names))
    return f"INSERT INTO {table} ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING"  # noqa: S608
