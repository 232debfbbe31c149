"""Every index earns its keep: none repeats the start of another index of its table (each costs
every insert a B-tree), the ones earlier releases made that way are dropped on migrate, and the
lookups they served — the cascade from a deleted integration to its rows — still use an index."""

from __future__ import annotations

import re

import pytest

from app.config import Settings
from app.store import RETIRED_INDEXES, migrate
from app.store.db import database
from app.store.models import ALL_MODELS, ChatwootIntegration
from tests.store.test_query_plans import integration, plan  # noqa: F401 (fixture)

OWNERS = ("relay_event", "chat_alias", "chat_link", "message_map")


def _indexes() -> dict[str, list[tuple[str, tuple[str, ...], bool, bool]]]:
    """Per table: (name, columns, unique, partial) of each index the database holds."""
    found = {}
    for model in ALL_MODELS:
        table = model._meta.table_name
        found[table] = [
            (i.name, tuple(i.columns), bool(i.unique), " WHERE " in (i.sql or "").upper())
            for i in database.get_indexes(table)
        ]
    return found


def test_no_index_repeats_the_start_of_another(store_settings: Settings) -> None:
    """As the models create them (no migration step dropping any afterwards)."""
    redundant = []
    with database.connection_context():
        database.drop_tables(list(reversed(ALL_MODELS)))
        database.create_tables(ALL_MODELS)
        for table, indexes in _indexes().items():
            for name, columns, unique, partial in indexes:
                if unique or partial:
                    continue  # a constraint, or an index of other rows: not a mere prefix
                redundant += [
                    f"{table}.{name} starts {other}"
                    for other, longer, _, other_partial in indexes
                    if other != name and not other_partial and longer[: len(columns)] == columns
                ]
    assert redundant == []


RETIRED_COLUMNS = {"relay_event_integration_id_message_id": ("integration_id", "message_id")}


def test_migrate_drops_the_indexes_earlier_releases_made(store_settings: Settings) -> None:
    with database.connection_context():
        tables = [model._meta.table_name for model in ALL_MODELS]
        for name in RETIRED_INDEXES:  # peewee's names: <table>_<column>[_<column>]
            table = max((t for t in tables if name.startswith(f"{t}_")), key=len)
            columns = RETIRED_COLUMNS.get(name, (name.removeprefix(f"{table}_"),))
            listed = ", ".join(f'"{column}"' for column in columns)
            database.execute_sql(f'CREATE INDEX "{name}" ON "{table}" ({listed})')
        assert set(RETIRED_INDEXES) <= _names()
    migrate(database.obj)
    migrate(database.obj)  # and again: nothing left to drop
    with database.connection_context():
        assert not set(RETIRED_INDEXES) & _names()


def _names() -> set[str]:
    return {name for indexes in _indexes().values() for name, *_ in indexes}


@pytest.mark.parametrize("table", OWNERS)
def test_the_cascade_from_an_integration_finds_its_rows_by_index(
    integration: ChatwootIntegration,  # noqa: F811 (the fixture)
    table: str,
) -> None:
    """What ``ON DELETE CASCADE`` runs for a deleted integration, per table of its rows."""
    sql = f'DELETE FROM "{table}" WHERE "integration_id" = {database.param}'  # noqa: S608
    lines = plan(sql, (integration.id,))
    scans = [
        line
        for line in lines
        if re.search(rf"\bSCAN {table}\b(?!.*INDEX)", line) or f"Seq Scan on {table}" in line
    ]
    assert lines and scans == []
