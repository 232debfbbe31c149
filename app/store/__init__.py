"""Storage: the database, the models and the cipher for secrets at rest."""

from __future__ import annotations

import peewee

from app.config import Settings
from app.store.crypto import Cipher
from app.store.db import open_database
from app.store.models import ALL_MODELS, configure_cipher


def init_store(settings: Settings) -> peewee.Database:
    """Open the database and configure the cipher from ``settings`` (once per process)."""
    db = open_database(settings.database_url)
    key = settings.current_key()
    configure_cipher(Cipher(key, settings.old_keys()) if key is not None else None)
    return db


def migrate(db: peewee.Database) -> None:
    """Create missing tables and indexes (idempotent; safe to run on every release)."""
    with db.connection_context():
        db.create_tables(ALL_MODELS, safe=True)
