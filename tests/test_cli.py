"""The `wootbridge` command, run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import peewee

from app.store.ids import hash_token

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_migrate_creates_the_tables(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = run_cli("migrate", database_url=url)
    assert result.returncode == 0, result.stderr
    tables = set(peewee.SqliteDatabase(str(tmp_path / "fresh.db")).get_tables())
    assert {"account", "instance", "chatwoot_integration", "relay_event"} <= tables
    assert run_cli("migrate", database_url=url).returncode == 0  # idempotent


def test_account_create_prints_the_token_last_and_stores_only_its_hash(tmp_path: Path) -> None:
    db_file = tmp_path / "accounts.db"
    result = run_cli("account", "create", "Acme Support", database_url=f"sqlite:///{db_file}")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    assert len(token) >= 40
    assert token not in result.stderr
    db = peewee.SqliteDatabase(str(db_file))
    rows = db.execute_sql("SELECT name, token_hash FROM account").fetchall()  # type: ignore[no-untyped-call]
    assert rows == [("Acme Support", hash_token(token))]
    assert token.encode() not in db_file.read_bytes()


def test_migrate_adds_columns_that_newer_models_declare(tmp_path: Path) -> None:
    db_file = tmp_path / "old.db"
    url = f"sqlite:///{db_file}"
    assert run_cli("migrate", database_url=url).returncode == 0
    old = peewee.SqliteDatabase(str(db_file))
    old.execute_sql("ALTER TABLE relay_event DROP COLUMN in_flight")  # type: ignore[no-untyped-call]
    assert "in_flight" not in {c.name for c in old.get_columns("relay_event")}

    result = run_cli("migrate", database_url=url)

    assert result.returncode == 0, result.stderr
    assert "in_flight" in {c.name for c in old.get_columns("relay_event")}
