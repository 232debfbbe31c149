"""Storage: the database, the models and the cipher for secrets at rest."""

from __future__ import annotations

import logging

import peewee
from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run_migrations

from app.config import Settings
from app.store.counters import backfill_counters
from app.store.crypto import Cipher
from app.store.db import open_database
from app.store.models import ALL_MODELS, configure_cipher

logger = logging.getLogger(__name__)


def init_store(settings: Settings) -> peewee.Database:
    """Open the database and configure the cipher from ``settings`` (once per process)."""
    db = open_database(settings.database_url)
    key = settings.current_key()
    configure_cipher(Cipher(key, settings.old_keys()) if key is not None else None)
    return db


def migrate(db: peewee.Database) -> None:
    """Create missing tables and indexes, and add columns that newer models declare
    (idempotent; run on every release). New columns must be nullable or have a default."""
    with db.connection_context():
        # columns first: an index created with the tables may name a column added just now
        _add_missing_columns(db)
        db.create_tables(ALL_MODELS, safe=True)
        _drop_retired_indexes(db)
        backfill_counters()


RETIRED_INDEXES = (
    "relay_event_integration_id",
    "chat_alias_integration_id",
    "chat_link_integration_id",
    "message_map_integration_id",
    "relay_event_integration_id_message_id",
)
"""Indexes earlier releases created and the models no longer declare: each was the foreign
key's own index on ``integration_id``, a prefix of a composite index of the same table, which
serves every lookup (and the cascade on delete) it served, while costing each insert one more
B-tree: on ``relay_event``, 15 % of SQLite's CPU per stored row (31 → 27 µs, batches of 25
inserts with the table's other indexes, measured). ``relay_event_integration_id_message_id``
held every event by its WhatsApp id, while only statuses waiting for their message are looked
up by it: the partial ``relayevent_waiting_message`` replaced it."""


def _drop_retired_indexes(db: peewee.Database) -> None:
    for name in RETIRED_INDEXES:
        db.execute_sql(f'DROP INDEX IF EXISTS "{name}"')  # type: ignore[no-untyped-call]


def _add_missing_columns(db: peewee.Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    operations = []
    tables = set(db.get_tables())
    for model in ALL_MODELS:
        table = model._meta.table_name
        if table not in tables:
            continue  # created whole by create_tables
        existing = {column.name for column in db.get_columns(table)}
        for field in model._meta.sorted_fields:
            if field.column_name not in existing:
                logger.info("adding column %s.%s", table, field.column_name)
                operations.append(migrator.add_column(table, field.column_name, field))
    if operations:
        with db.atomic():
            run_migrations(*operations)
