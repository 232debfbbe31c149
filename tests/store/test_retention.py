"""Retention (issue 9, DESIGN invariant 11): delivered events' message content is erased after
``RETENTION_DAYS``, from the column and from the database files; ids, keys and outcomes stay.

Events are stored by the real intakes (WhatsApp and Chatwoot) and then marked delivered with an
old ``delivered_at``, as the lanes would have done; the purge runs as the CLI and the workers run
it. SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.config import ConfigError, Settings
from app.integrations.files import Media
from app.management.accounts import create_account
from app.management.instances import CloudSettings, NewInstance, create_instance
from app.management.integrations import save_request
from app.management.provisioning import IntegrationRequest
from app.management.retention import content_stub, purge
from app.relay.inbound.intake import store_inbound
from app.relay.message_map import remember_message
from app.relay.messages import InboundMessage, StatusUpdate, event_from_json
from app.relay.outbound.chatwoot_attachments import OutboundAttachment
from app.relay.outbound.chatwoot_webhook import AgentReply
from app.relay.outbound.intake import store_reply
from app.store import migrate
from app.store.db import database
from app.store.models import (
    EVENT_DELIVERED,
    EVENT_FAILED,
    EVENT_PENDING,
    EVENT_WAITING,
    ChatwootIntegration,
    RelayEvent,
    utcnow,
)
from app.store.redis_client import get_redis, redis_key
from tests.processes import run_python
from workers import relay as relay_workers

PHONE = "5511987654321"
CLOUD = CloudSettings(
    phone_number_id="106540352242922",
    access_token="EAAG-access-token",
    app_secret="app-secret",
    verify_token="verify-token",
)
CHATWOOT = IntegrationRequest(
    base_url="https://chatwoot.example.com", account_id=5, api_token="cw-token", inbox_name="WA"
)


@pytest.fixture
def integration(store_settings: Settings) -> Iterator[ChatwootIntegration]:
    with database.connection_context():
        account, _ = create_account("Acme")
        spec = NewInstance(name="suporte", provider="cloud", cloud=CLOUD)
        created, _ = save_request(create_instance(account, spec).instance, CHATWOOT)
        yield created


def marker() -> str:
    return f"MARKER-{uuid.uuid4().hex}"


def message(message_id: str, text: str, **fields: Any) -> InboundMessage:
    values: dict[str, Any] = {
        "kind": "text",
        "sender_name": f"Ana {text}",
        "chat_aliases": ("US.13491208655302741918",),
        **fields,
    }
    return InboundMessage(
        message_id=message_id, chat_id=PHONE, sender_id=PHONE, text=text, **values
    )


def stored(integration: ChatwootIntegration, event: InboundMessage | StatusUpdate) -> int:
    [row] = store_inbound(integration, [event])
    return row.event_id


def mark(event_id: int, status: str = EVENT_DELIVERED, days_ago: float = 0.0) -> None:
    """What a lane records, ``days_ago`` in the past."""
    when = utcnow() - dt.timedelta(days=days_ago)
    delivered = when if status == EVENT_DELIVERED else None
    RelayEvent.update(
        status=status, attempts=1, delivered_at=delivered, created_at=when, updated_at=when
    ).where(RelayEvent.id == event_id).execute()


def row(event_id: int) -> RelayEvent:
    found: RelayEvent = RelayEvent.get_by_id(event_id)
    return found


def test_old_delivered_events_lose_their_content_and_keep_everything_else(
    integration: ChatwootIntegration,
) -> None:
    secret = marker()
    media = Media(mime_type="image/jpeg", url=f"https://cdn.example/{secret}.jpg", media_id="m1")
    old_text = stored(integration, message("wamid.OLD", secret))
    old_image = stored(integration, message("wamid.IMG", secret, kind="image", media=media))
    recent = stored(integration, message("wamid.NEW", secret))
    failed = stored(integration, message("wamid.FAIL", secret))
    pending = stored(integration, message("wamid.PEND", secret))
    attachment = OutboundAttachment(data_url=f"https://cw.example/{secret}", file_type="image")
    reply = AgentReply(7, 3, PHONE, content=secret, attachments=(attachment,), sender_name=secret)
    assert store_reply(integration, reply)
    reply_id = int(RelayEvent.get(RelayEvent.natural_key == "cw:7").id)
    for event_id in (old_text, old_image, reply_id):
        mark(event_id, days_ago=31)
    mark(recent, days_ago=29)
    mark(failed, EVENT_FAILED, days_ago=90)
    before = {i: row(i) for i in (old_text, old_image, reply_id, recent, failed, pending)}

    result = purge(30)

    assert (result.delivered, result.waiting) == (3, 0)
    for event_id in (old_text, old_image, reply_id):
        after, was = row(event_id), before[event_id]
        for content in (secret, "Ana", "US.1349", "example"):  # text, names, aliases, URLs
            assert content not in after.payload
        assert after.content_erased_at is not None
        kept = ("natural_key", "chat_key", "status", "attempts", "delivered_at", "updated_at")
        assert [getattr(after, f) for f in kept] == [getattr(was, f) for f in kept]
    for event_id in (recent, failed, pending):
        assert row(event_id).payload == before[event_id].payload
        assert row(event_id).content_erased_at is None
    text_stub = event_from_json(row(old_text).payload)
    assert isinstance(text_stub, InboundMessage)
    assert (text_stub.message_id, text_stub.kind, text_stub.chat_id) == ("wamid.OLD", "text", PHONE)
    assert (text_stub.text, text_stub.sender_name, text_stub.chat_aliases) == (None, None, ())
    image_stub = event_from_json(row(old_image).payload)
    assert isinstance(image_stub, InboundMessage) and image_stub.media is None
    reply_stub = AgentReply.from_json(row(reply_id).payload)
    assert (reply_stub.chatwoot_message_id, reply_stub.conversation_id) == (7, 3)
    assert (reply_stub.content, reply_stub.attachments, reply_stub.sender_name) == ("", (), None)


def test_an_erased_event_still_makes_its_redelivered_webhook_a_duplicate(
    integration: ChatwootIntegration,
) -> None:
    event = message("wamid.DUP", marker())
    mark(stored(integration, event), days_ago=40)
    assert purge(30).delivered == 1

    assert store_inbound(integration, [event]) == []
    assert RelayEvent.select().where(RelayEvent.natural_key == event.natural_key).count() == 1


def test_a_second_purge_finds_nothing_and_batches_cover_every_row(
    integration: ChatwootIntegration,
) -> None:
    ids = [stored(integration, message(f"wamid.B{n}", marker())) for n in range(5)]
    for event_id in ids:
        mark(event_id, days_ago=31)
    calls: list[int] = []

    first = purge(30, batch_size=2, keep_alive=lambda: calls.append(1))

    assert first.delivered == 5 and len(calls) >= 3  # 2 + 2 + 1, the lock extended each time
    assert purge(30).delivered == 0
    assert purge(30).reclaimed == "nothing to reclaim"


def test_retention_zero_erases_every_delivered_event_so_far(
    integration: ChatwootIntegration,
) -> None:
    just_now = stored(integration, message("wamid.NOW", marker()))
    mark(just_now, days_ago=0)
    pending = stored(integration, message("wamid.WAIT", marker()))

    assert purge(0).delivered == 1
    assert row(just_now).content_erased_at is not None
    assert row(pending).content_erased_at is None


def test_old_waiting_statuses_are_erased_and_still_apply_when_their_message_appears(
    integration: ChatwootIntegration,
) -> None:
    status = StatusUpdate("wamid.SENT", "failed", PHONE, 1700000000, 131026, "Undeliverable")
    old = stored(integration, status)
    mark(old, EVENT_WAITING, days_ago=31)
    recent = stored(integration, StatusUpdate("wamid.SENT", "read", PHONE))
    mark(recent, EVENT_WAITING, days_ago=1)

    assert purge(30).waiting == 1

    stub = event_from_json(row(old).payload)
    assert stub == StatusUpdate("wamid.SENT", "failed", PHONE, None, 131026, "Undeliverable")
    assert row(old).status == EVENT_WAITING and row(recent).content_erased_at is None
    assert remember_message(integration, "wamid.SENT", 99, 3, "outgoing") == 2
    assert row(old).status == EVENT_PENDING


def test_the_stub_of_an_unreadable_payload_keeps_nothing() -> None:
    assert content_stub('{"secret": "x"}', PHONE) == '{"type": "unknown"}'
    assert content_stub("not json", PHONE) == '{"type": "unknown"}'


def _file_bytes(db_file: Path) -> bytes:
    wal = db_file.with_name(db_file.name + "-wal")
    return db_file.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQLite's files only
def test_sqlite_erased_content_is_in_neither_the_database_nor_the_wal(
    integration: ChatwootIntegration, store_settings: Settings
) -> None:
    db_file = Path(store_settings.database_url.removeprefix("sqlite:///"))
    assert database.execute_sql("PRAGMA secure_delete").fetchone() == (1,)
    secret = marker()
    long_text = secret + " " + "x" * 6000 + secret  # spills into overflow pages
    ids = [stored(integration, message(f"wamid.D{n}", long_text)) for n in range(3)]
    database.execute_sql("PRAGMA wal_checkpoint(PASSIVE)")  # some copies in the main file too
    for event_id in ids:
        mark(event_id, days_ago=31)
    assert secret.encode() in _file_bytes(db_file)  # the test can fail

    assert purge(30).reclaimed == "wal checkpointed"

    assert secret.encode() not in _file_bytes(db_file)
    assert RelayEvent.select().where(RelayEvent.id.in_(ids)).count() == 3


def _last_vacuum() -> dt.datetime | None:
    database.execute_sql("SELECT pg_stat_clear_snapshot()")
    found = database.execute_sql(
        "SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'relay_event'"
    ).fetchone()
    return None if found is None else found[0]


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)  # PostgreSQL's statistics only
def test_postgres_vacuums_the_event_table_after_a_purge(
    integration: ChatwootIntegration, store_settings: Settings
) -> None:
    before = _last_vacuum()
    event_id = stored(integration, message("wamid.PG", marker()))
    mark(event_id, days_ago=31)

    assert purge(30).reclaimed == "vacuumed"

    deadline = time.monotonic() + 5
    while _last_vacuum() == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _last_vacuum() is not None and _last_vacuum() != before
    assert row(event_id).content_erased_at is not None


def test_migrate_adds_the_column_before_the_index_that_names_it(store_settings: Settings) -> None:
    with database.connection_context():
        database.execute_sql("DROP INDEX relayevent_retention")
        database.execute_sql("ALTER TABLE relay_event DROP COLUMN content_erased_at")

    migrate(database.obj)

    with database.connection_context():
        columns = {c.name for c in database.get_columns("relay_event")}
        indexes = {i.name for i in database.get_indexes("relay_event")}
    assert "content_erased_at" in columns and "relayevent_retention" in indexes


def test_workers_purge_once_an_hour_and_one_process_at_a_time(
    integration: ChatwootIntegration,
) -> None:
    client = get_redis()
    client.delete(redis_key("retention:done"))
    held = client.lock(redis_key("retention:lock"), timeout=30)
    mark(stored(integration, message("wamid.W1", marker())), days_ago=31)
    assert held.acquire(blocking=False)
    try:
        assert relay_workers.purge_if_due() is None  # another process is purging
    finally:
        held.release()

    first = relay_workers.purge_if_due()
    mark(stored(integration, message("wamid.W2", marker())), days_ago=31)
    second = relay_workers.purge_if_due()

    assert first is not None and first.delivered == 1
    assert second is None  # purged less than an hour ago
    client.delete(redis_key("retention:done"))
    third = relay_workers.purge_if_due()
    assert third is not None and third.delivered == 1


def test_cli_purge_with_retention_zero_prints_the_counts(
    integration: ChatwootIntegration, store_settings: Settings
) -> None:
    event_id = stored(integration, message("wamid.CLI", marker()))
    mark(event_id, days_ago=0)
    env = {"DATABASE_URL": store_settings.database_url, "RETENTION_DAYS": "0"}
    result = run_python(["-m", "app.cli", "purge"], env)

    assert result.returncode == 0, result.stderr
    assert "erased the content of 1 delivered events and 0 waiting statuses" in result.stdout
    assert row(event_id).content_erased_at is not None


@pytest.mark.parametrize(("value", "days"), [(None, 30), ("0", 0), (" 7 ", 7), ("365", 365)])
def test_retention_days_setting(value: str | None, days: int) -> None:
    environ = {} if value is None else {"RETENTION_DAYS": value}
    assert Settings.from_environ(environ).retention_days == days


@pytest.mark.parametrize("value", ["-1", "thirty", "1.5"])
def test_retention_days_refuses_negative_and_non_integer_values(value: str) -> None:
    with pytest.raises(ConfigError, match="RETENTION_DAYS"):
        Settings.from_environ({"RETENTION_DAYS": value})
