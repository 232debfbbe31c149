"""``wootbridge rotate-key`` (app/management/key_rotation.py) on SQLite and PostgreSQL.

Secrets are stored under the test key through the management layer, then rotated to a new key
with the test key in ENCRYPTION_KEYS_OLD; after that the old key is dropped and the app (real
HTTP requests through the ASGI app) must still verify webhooks and list tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
from dataclasses import dataclass, replace
from typing import Any

import pytest
from starlette.datastructures import Secret

from app.config import Settings
from app.management.accounts import create_account
from app.management.instances import (
    CloudSettings,
    GatewaySettings,
    NewInstance,
    create_instance,
)
from app.management.integrations import save_request
from app.management.key_rotation import RowRef, rotate_keys, secret_models
from app.management.provisioning import IntegrationRequest
from app.store import init_store
from app.store.crypto import Cipher, DecryptionError, associated_data, key_id, stored_key_id
from app.store.db import database
from app.store.models import ChatwootIntegration, Instance, get_cipher
from tests.conftest import TEST_KEY, make_client
from tests.processes import run_python

OLD_KEY = base64.b64decode(TEST_KEY)
NEW_KEY = os.urandom(32)
NEW_KID = key_id(NEW_KEY)

Where = tuple[str, str, str]  # (table, row id, field)


def keyed(settings: Settings, current: bytes, *old: bytes) -> Settings:
    def text(key: bytes) -> Secret:
        return Secret(base64.b64encode(key).decode())

    return replace(
        settings,
        encryption_key=text(current),
        encryption_keys_old=tuple(text(key) for key in old),
    )


@dataclass
class Seeded:
    account_token: str
    plaintext: dict[Where, str]
    instance_ids: dict[str, str]  # name -> id
    integration_ids: dict[str, str]  # instance name -> integration id


def _seed() -> Seeded:
    account, account_token = create_account("Acme")
    instance_ids: dict[str, str] = {}
    integration_ids: dict[str, str] = {}
    for n in range(3):
        name = f"cloud{n}"
        cloud = CloudSettings("106540352242922", f"EAAG-{name}-s3cr3t", f"appsecret-{name}")
        created = create_instance(account, NewInstance(name, "cloud", cloud=cloud))
        instance_ids[name] = created.instance.id
    for n in range(2):
        name = f"gw{n}"
        gateway = GatewaySettings("https://gateway.example.com", f"gw-token-{name}-s3cr3t")
        created = create_instance(account, NewInstance(name, "gateway", gateway=gateway))
        instance_ids[name] = created.instance.id
    for name in ("cloud0", "cloud1", "gw0"):
        request = IntegrationRequest("https://chatwoot.example.com", 1, f"cw-{name}-s3cr3t", name)
        integration, _ = save_request(Instance.get_by_id(instance_ids[name]), request)
        integration_ids[name] = integration.id
    signed = ChatwootIntegration.get_by_id(integration_ids["cloud0"])
    signed.set_secret("inbox_secret", "inbox-secret-s3cr3t")
    signed.save()
    return Seeded(account_token, read_all(), instance_ids, integration_ids)


def stored_values() -> dict[Where, str]:
    """Every stored ciphertext, by table/row/field."""
    found: dict[Where, str] = {}
    models = secret_models()
    assert models == [Instance, ChatwootIntegration]
    for model in models:
        fields: frozenset[str] = model.SECRET_FIELDS  # type: ignore[attr-defined]
        rows: list[dict[str, Any]] = list(model.select().dicts())  # type: ignore[arg-type]
        for row in rows:
            for name in sorted(fields):
                if row[name] is not None:
                    found[(model._meta.table_name, str(row["id"]), name)] = row[name]
    return found


def read_all() -> dict[Where, str]:
    """Every secret decrypted with the configured cipher."""
    cipher = get_cipher()
    return {
        where: cipher.decrypt(value, associated_data(*where))
        for where, value in stored_values().items()
    }


@pytest.fixture
def seeded(store_settings: Settings) -> Seeded:
    with database.connection_context():
        return _seed()


def _rotated_values() -> int:
    return sum(stored_key_id(value) == NEW_KID for value in stored_values().values())


def _rotating(store_settings: Settings) -> None:
    """What an operator deploys first: the new key current, the old one still decrypting."""
    init_store(keyed(store_settings, NEW_KEY, OLD_KEY))


def test_rotation_lets_the_old_key_go(store_settings: Settings, seeded: Seeded) -> None:
    values = len(seeded.plaintext)
    assert values == 3 * 3 + 2 + 3 * 2 + 1
    _rotating(store_settings)
    with database.connection_context():
        report = rotate_keys(get_cipher(), batch_size=2)
        stored = stored_values()

    assert report.ok and report.complete, report.unreadable
    assert (report.rows_checked, report.reencrypted, report.already_current) == (8, values, 0)
    assert {stored_key_id(value) for value in stored.values()} == {NEW_KID}
    with pytest.raises(DecryptionError):  # really re-encrypted: the old key alone cannot read
        where, value = next(iter(stored.items()))
        Cipher(OLD_KEY).decrypt(value, associated_data(*where))

    final = keyed(store_settings, NEW_KEY)  # ENCRYPTION_KEYS_OLD emptied
    init_store(final)
    with database.connection_context():
        assert read_all() == seeded.plaintext
        again = rotate_keys(get_cipher())
    assert (again.reencrypted, again.already_current, again.ok) == (0, values, True)
    _app_still_works(final, seeded)


def _app_still_works(settings: Settings, seeded: Seeded) -> None:
    secret = seeded.plaintext
    ins, integ = seeded.instance_ids["cloud0"], seeded.integration_ids["cloud0"]
    with make_client(settings) as client:
        verify = secret[("instance", ins, "cloud_verify_token")]
        handshake = client.get(
            "/webhooks/whatsapp/cloud/cloud0",
            params={"hub.mode": "subscribe", "hub.verify_token": verify, "hub.challenge": "42"},
        )
        assert (handshake.status_code, handshake.text) == (200, "42")

        raw = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
        app_secret = secret[("instance", ins, "cloud_app_secret")]
        signature = "sha256=" + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()
        url = "/webhooks/whatsapp/cloud/cloud0"
        assert client.post(url, content=raw, headers={"X-Hub-Signature-256": signature}).is_success
        forged = client.post(url, content=raw, headers={"X-Hub-Signature-256": "sha256=00"})
        assert forged.status_code == 401

        gateway = {"event": "connection.update", "instanceData": {"token": "gw-token-gw1-s3cr3t"}}
        assert client.post("/webhooks/whatsapp/gateway/gw1", json=gateway).status_code != 401

        path_secret = secret[("chatwoot_integration", integ, "webhook_secret")]
        hook = f"/webhooks/chatwoot/{integ}/{path_secret}"
        assert client.post(hook, json={"event": "conversation_updated"}).status_code == 200

        listed = client.get("/api/chatwoot/list/cloud0", headers={"token": seeded.account_token})
        assert listed.status_code == 200, listed.text
        assert listed.json()["chatwoot_api_token"] == "cw-cloud0-s3cr3t"
        assert listed.json()["webhook_url"].endswith(f"/{integ}/{path_secret}")


class Crash(Exception):
    """Stands for the process being killed mid-run."""


def test_a_crashed_run_is_finished_by_the_next(store_settings: Settings, seeded: Seeded) -> None:
    _rotating(store_settings)
    seen: list[RowRef] = []

    def crash_on_third_row(row: RowRef) -> None:
        seen.append(row)
        if len(seen) == 3:
            raise Crash

    with database.connection_context():
        with pytest.raises(Crash):
            rotate_keys(get_cipher(), batch_size=2, before_write=crash_on_third_row)
        done = _rotated_values()
        assert 0 < done < len(seeded.plaintext)  # half done: the first two rows

        report = rotate_keys(get_cipher(), batch_size=2)
        assert report.ok and report.complete
        assert (report.already_current, report.reencrypted) == (done, len(seeded.plaintext) - done)
        assert {stored_key_id(value) for value in stored_values().values()} == {NEW_KID}

    init_store(keyed(store_settings, NEW_KEY))
    with database.connection_context():
        assert read_all() == seeded.plaintext


def run_cli(
    settings: Settings, *args: str, old: bytes | None = OLD_KEY
) -> subprocess.CompletedProcess[str]:
    env = {
        "DATABASE_URL": settings.database_url,
        "ENCRYPTION_KEY": base64.b64encode(NEW_KEY).decode(),
        "ENCRYPTION_KEYS_OLD": base64.b64encode(old).decode() if old else "",
    }
    return run_python(["-m", "app.cli", "rotate-key", *args], env)


def test_cli_resumes_after_a_row_limit(store_settings: Settings, seeded: Seeded) -> None:
    first = run_cli(store_settings, "--batch-size", "1", "--max-rows", "3")
    assert first.returncode == 0, first.stderr
    with database.connection_context():
        done = _rotated_values()
    assert f"rows checked: 3; values re-encrypted: {done}, already current: 0" in first.stdout
    assert "run again to continue" in first.stdout

    second = run_cli(store_settings)
    assert second.returncode == 0, second.stderr
    rest = len(seeded.plaintext) - done
    assert f"rows checked: 8; values re-encrypted: {rest}, already current: {done}," in (
        second.stdout
    )
    assert "run again" not in second.stdout

    init_store(keyed(store_settings, NEW_KEY))
    with database.connection_context():
        assert read_all() == seeded.plaintext


@pytest.mark.parametrize("writer_key", ["new", "old"])
def test_a_concurrent_write_is_not_lost(
    store_settings: Settings, seeded: Seeded, writer_key: str
) -> None:
    """A ``set`` lands between the rotation's read and its compare-and-set. With ``old`` the
    writer is a process not yet restarted with the new key: its value must be rotated too."""
    _rotating(store_settings)
    target = seeded.instance_ids["cloud1"]
    where: Where = ("instance", target, "cloud_access_token")
    writer = Cipher(NEW_KEY if writer_key == "new" else OLD_KEY)
    writes: list[RowRef] = []

    def concurrent_set(row: RowRef) -> None:
        if row.row_id == target and not writes:
            writes.append(row)
            value = writer.encrypt("EAAG-replaced-by-set", associated_data(*where))
            Instance.update(cloud_access_token=value).where(Instance.id == target).execute()

    with database.connection_context():
        report = rotate_keys(get_cipher(), before_write=concurrent_set)
        assert writes == [RowRef("instance", target)]
        assert report.ok and report.retried == 1
        assert {stored_key_id(value) for value in stored_values().values()} == {NEW_KID}

    init_store(keyed(store_settings, NEW_KEY))
    with database.connection_context():
        expected = {**seeded.plaintext, where: "EAAG-replaced-by-set"}
        assert read_all() == expected


def test_a_value_under_an_unknown_key_fails_without_showing_it(
    store_settings: Settings, seeded: Seeded
) -> None:
    target = seeded.instance_ids["cloud2"]
    where: Where = ("instance", target, "cloud_app_secret")
    stranger = Cipher(os.urandom(32)).encrypt("appsecret-cloud2", associated_data(*where))
    with database.connection_context():
        Instance.update(cloud_app_secret=stranger).where(Instance.id == target).execute()

    result = run_cli(store_settings)

    assert result.returncode == 1, result.stdout
    shown = result.stdout + result.stderr
    assert f"instance/{target}/cloud_app_secret" in result.stderr
    assert "set it in ENCRYPTION_KEYS_OLD" in result.stderr
    assert stranger not in shown and stranger.split(".")[2][:16] not in shown
    assert "appsecret-cloud2" not in shown
    assert f"values re-encrypted: {len(seeded.plaintext) - 1}," in result.stdout  # rest done


def test_an_old_value_without_its_key_configured_fails(
    store_settings: Settings, seeded: Seeded
) -> None:
    result = run_cli(store_settings, old=None)
    assert result.returncode == 1
    assert result.stderr.count("set it in ENCRYPTION_KEYS_OLD") == len(seeded.plaintext)
