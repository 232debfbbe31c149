"""The `wootbridge` command, run as a real subprocess."""

from __future__ import annotations

import subprocess
from pathlib import Path

import peewee
from starlette.testclient import TestClient

from app.config import Settings
from app.store.db import database
from app.store.ids import hash_token
from app.store.models import EVENT_DELIVERED, EVENT_FAILED, EVENT_PENDING, RelayEvent
from tests.api.failed_helpers import add_event, seed_integration
from tests.api.helpers import create_instance
from tests.processes import run_python


def run_cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    return run_python(["-m", "app.cli", *args], {"DATABASE_URL": database_url})


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


def test_migrate_creates_a_new_index_on_an_existing_database(tmp_path: Path) -> None:
    db_file = tmp_path / "old.db"
    url = f"sqlite:///{db_file}"
    assert run_cli("migrate", database_url=url).returncode == 0
    old = peewee.SqliteDatabase(str(db_file))
    old.execute_sql("DROP INDEX relay_event_integration_id_status_id")  # type: ignore[no-untyped-call]
    assert "relay_event_integration_id_status_id" not in {
        i.name for i in old.get_indexes("relay_event")
    }

    result = run_cli("migrate", database_url=url)

    assert result.returncode == 0, result.stderr
    assert "relay_event_integration_id_status_id" in {
        i.name for i in old.get_indexes("relay_event")
    }


def statuses(*event_ids: int) -> list[str]:
    with database.connection_context():
        rows = RelayEvent.select().where(RelayEvent.id.in_(event_ids)).order_by(RelayEvent.id)
        return [str(row.status) for row in rows]


def test_failed_prints_a_table_newest_first(
    client: TestClient, account_token: str, settings: Settings
) -> None:
    create_instance(client, account_token, "suporte")
    integration_id = seed_integration("suporte")
    older = add_event(integration_id, 1, last_error="media unavailable: gone", attempts=3)
    newer = add_event(integration_id, 2, direction="outbound", chat_key="US.1349120865530274")
    add_event(integration_id, 3, status=EVENT_DELIVERED)

    result = run_cli("failed", "suporte", database_url=settings.database_url)

    assert result.returncode == 0, result.stderr
    header, first, second = result.stdout.splitlines()
    assert header.split() == [
        "ID",
        "DIRECTION",
        "CHAT",
        "KIND",
        "ATTEMPTS",
        "LAST",
        "ATTEMPT",
        "REASON",
    ]
    assert first.split()[:5] == [str(newer), "outbound", "US.1349120865530274", "text", "1"]
    assert first.endswith("reason 2")
    assert second.split()[:5] == [str(older), "inbound", "+5511987654321", "text", "3"]
    assert second.endswith("media unavailable: gone")
    assert "2 failed events" in result.stderr

    inbound = run_cli(
        "failed",
        "suporte",
        "--direction",
        "inbound",
        "--limit",
        "1",
        database_url=settings.database_url,
    )
    assert inbound.returncode == 0, inbound.stderr
    assert [line.split()[0] for line in inbound.stdout.splitlines()[1:]] == [str(older)]
    paged = run_cli("failed", "suporte", "--limit", "1", database_url=settings.database_url)
    assert f"more: --before {newer}" in paged.stderr
    missing = run_cli("failed", "nobody", database_url=settings.database_url)
    assert (missing.returncode, missing.stderr.strip()) == (1, "instance not found")
    bad = run_cli("failed", "suporte", "--limit", "500", database_url=settings.database_url)
    assert bad.returncode == 2 and "must be an integer from 1 to 200" in bad.stderr


def test_retry_marks_failed_events_pending(
    client: TestClient, account_token: str, settings: Settings
) -> None:
    create_instance(client, account_token, "suporte")
    integration_id = seed_integration("suporte")
    first, second, third = (add_event(integration_id, n) for n in range(3))
    delivered = add_event(integration_id, 3, status=EVENT_DELIVERED)

    by_ids = run_cli(
        "retry", "suporte", str(first), str(delivered), "424242", database_url=settings.database_url
    )

    assert by_ids.returncode == 0, by_ids.stderr
    assert by_ids.stdout.startswith("1 events back to pending")
    assert f"skipped (unknown or not failed): {delivered} 424242" in by_ids.stderr
    assert statuses(first, second, third) == [EVENT_PENDING, EVENT_FAILED, EVENT_FAILED]

    everything = run_cli("retry", "suporte", database_url=settings.database_url)

    assert everything.returncode == 0, everything.stderr
    assert everything.stdout.startswith("2 events back to pending")
    assert statuses(first, second, third, delivered) == [EVENT_PENDING] * 3 + [EVENT_DELIVERED]
    missing = run_cli("retry", "suporte-x", database_url=settings.database_url)
    assert (missing.returncode, missing.stderr.strip()) == (1, "instance not found")
