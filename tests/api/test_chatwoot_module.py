"""The Chatwoot module of API.md: 202 provisioning, repeat set, tenancy, list, delete,
pause/resume. Driven through the HTTP API, a real worker and the fake Chatwoot."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from app.config import Settings
from tests.api.helpers import auth, create_instance, error_message, seed_chatwoot, set_body
from tests.conftest import make_client
from tests.fakes.chatwoot import FakeChatwoot

NO_INTEGRATION = "no chatwoot integration for this instance"
NO_INTEGRATION_TO_DELETE = "no chatwoot integration to delete"
INSTANCE_NOT_FOUND = "instance not found"
WRONG_INSTANCE = "Instance token does not match this instance"
MISSING_TOKEN = "Missing token in header, Authorization header, or query parameter"
UNAUTHORIZED_PREFIX = "Chatwoot rejected the API token — verify chatwootApiToken. Detail: "
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
PROFILE = r"^/api/v1/profile$"


def do_set(client: TestClient, token: str, body: Any, name: str = "suporte") -> dict[str, Any]:
    response = client.post(f"/api/chatwoot/set/{name}", json=body, headers=auth(token))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def get_list(client: TestClient, token: str, name: str = "suporte") -> dict[str, Any]:
    response = client.get(f"/api/chatwoot/list/{name}", headers=auth(token))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def inbox_calls(fake: FakeChatwoot, method: str) -> list[str]:
    """Paths of inbox create (POST) / update (PATCH) calls the fake received."""
    pattern = re.compile(r"^/api/v1/accounts/\d+/inboxes(/\d+)?$")
    return [c.path for c in fake.calls if c.method == method and pattern.match(c.path)]


def foreign_inbox(fake: FakeChatwoot, account_id: int, name: str) -> dict[str, Any]:
    """An inbox someone else made in the account (through Chatwoot's own API)."""
    other_admin = fake.add_user("Other Admin", {account_id: "administrator"})
    response = httpx.post(
        f"{fake.base_url}/api/v1/accounts/{account_id}/inboxes",
        json={"name": name, "channel": {"type": "api", "webhook_url": "https://other.example"}},
        headers={"api_access_token": other_admin},
    )
    assert response.status_code == 200, response.text
    inbox: dict[str, Any] = dict(fake.inboxes[response.json()["id"]])
    return inbox


# ---- 202: the wait ran out ----------------------------------------------------------------------


@pytest.fixture
def impatient_client(settings: Settings) -> Iterator[TestClient]:
    with make_client(replace(settings, set_wait_seconds=0.3)) as impatient:
        yield impatient


def test_set_answers_202_when_the_wait_runs_out_and_the_job_goes_on(
    impatient_client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(impatient_client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    chatwoot.set_delay("GET", PROFILE, 1.5, times=1)

    started = time.monotonic()
    response = impatient_client.post(
        "/api/chatwoot/set/suporte",
        json=set_body(chatwoot, account_id, cw_token),
        headers=auth(account_token),
    )

    assert time.monotonic() - started < 1.4
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["instance"] == "suporte"
    assert body["status"] == "provisioning"
    assert body["message"] == "chatwoot integration is being provisioned"
    integration_id = body["bridge_integration_id"]
    assert integration_id.startswith("int_")
    # while the first job runs, list says so
    assert get_list(impatient_client, account_token)["status"] == "provisioning"

    deadline = time.monotonic() + 10
    listed = get_list(impatient_client, account_token)
    while listed["status"] == "provisioning" and time.monotonic() < deadline:
        time.sleep(0.1)
        listed = get_list(impatient_client, account_token)
    assert listed["status"] == "active", listed
    assert listed["bridge_integration_id"] == integration_id
    assert listed["last_error"] == ""
    [inbox] = chatwoot.inboxes.values()
    assert listed["chatwoot_inbox_id"] == inbox["id"]


# ---- repeat set ---------------------------------------------------------------------------------


def test_repeat_set_updates_the_same_inbox(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    first = do_set(client, account_token, set_body(chatwoot, account_id, cw_token))
    before = get_list(client, account_token)

    second = do_set(
        client,
        account_token,
        set_body(chatwoot, account_id, cw_token, inboxName="WhatsApp - Renamed", ignoreGroups=True),
    )

    assert second["status"] == "active"
    assert second["message"] == "chatwoot integration activated"
    assert second["bridge_integration_id"] == first["bridge_integration_id"]
    [inbox] = chatwoot.inboxes.values()
    assert inbox["id"] == before["chatwoot_inbox_id"]
    assert inbox["name"] == "WhatsApp - Renamed"
    assert inbox["webhook_url"] == before["webhook_url"]
    assert len(inbox_calls(chatwoot, "POST")) == 1
    assert inbox_calls(chatwoot, "PATCH") == [
        f"/api/v1/accounts/{account_id}/inboxes/{inbox['id']}"
    ]
    after = get_list(client, account_token)
    assert after["bridge_integration_id"] == before["bridge_integration_id"]
    assert after["webhook_url"] == before["webhook_url"]
    assert after["chatwoot_inbox_id"] == inbox["id"]
    assert after["chatwoot_inbox_name"] == "WhatsApp - Renamed"
    assert after["ignore_groups"] is True
    assert after["status"] == "active"


def test_repeat_set_after_the_inbox_was_deleted_creates_a_new_one(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    first = do_set(client, account_token, set_body(chatwoot, account_id, cw_token))
    old_inbox_id = get_list(client, account_token)["chatwoot_inbox_id"]
    webhook = get_list(client, account_token)["webhook_url"]
    chatwoot.delete_inbox(account_id, old_inbox_id)

    second = do_set(client, account_token, set_body(chatwoot, account_id, cw_token))

    assert second["status"] == "active"
    assert second["bridge_integration_id"] == first["bridge_integration_id"]
    [inbox] = chatwoot.inboxes.values()
    assert inbox["id"] != old_inbox_id
    assert inbox["webhook_url"] == webhook
    listed = get_list(client, account_token)
    assert listed["chatwoot_inbox_id"] == inbox["id"]
    assert listed["status"] == "active"
    assert listed["last_error"] == ""


def test_set_never_finds_an_inbox_by_name(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    theirs = foreign_inbox(chatwoot, account_id, "WhatsApp - Orion")

    do_set(client, account_token, set_body(chatwoot, account_id, cw_token))
    ours_id = get_list(client, account_token)["chatwoot_inbox_id"]
    assert ours_id != theirs["id"]
    # a repeat set, including one after our inbox is gone, still leaves theirs alone
    do_set(client, account_token, set_body(chatwoot, account_id, cw_token))
    chatwoot.delete_inbox(account_id, ours_id)
    do_set(client, account_token, set_body(chatwoot, account_id, cw_token))

    new_id = get_list(client, account_token)["chatwoot_inbox_id"]
    assert new_id not in (theirs["id"], ours_id)
    assert chatwoot.inboxes[theirs["id"]] == theirs
    assert not [p for p in inbox_calls(chatwoot, "PATCH") if p.endswith(f"/{theirs['id']}")]


# ---- tenancy and authentication -----------------------------------------------------------------

ROUTES = [
    ("POST", "/api/chatwoot/set/{name}"),
    ("GET", "/api/chatwoot/list/{name}"),
    ("DELETE", "/api/chatwoot/delete/{name}"),
    ("POST", "/api/chatwoot/pause/{name}"),
    ("POST", "/api/chatwoot/resume/{name}"),
]


def call(
    client: TestClient,
    method: str,
    template: str,
    name: str,
    headers: dict[str, str],
    body: Any = None,
) -> httpx.Response:
    return client.request(method, template.format(name=name), headers=headers, json=body)


def test_other_account_cannot_see_or_touch_the_integration(
    client: TestClient,
    account_token: str,
    other_account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    body = set_body(chatwoot, account_id, cw_token)
    do_set(client, account_token, body)
    before = get_list(client, account_token)
    calls_before = len(chatwoot.calls)

    for method, template in ROUTES:
        response = call(client, method, template, "suporte", auth(other_account_token), body)
        assert error_message(response, 404) == INSTANCE_NOT_FOUND, (method, template)

    assert len(chatwoot.calls) == calls_before
    after = get_list(client, account_token)
    assert after["status"] == "active"
    assert after["chatwoot_inbox_id"] == before["chatwoot_inbox_id"]
    assert len(chatwoot.inboxes) == 1


def test_instance_token_of_another_instance_is_403(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token, "suporte")
    vendas_token = create_instance(client, account_token, "vendas")
    account_id, cw_token = seed_chatwoot(chatwoot)
    body = set_body(chatwoot, account_id, cw_token)
    do_set(client, account_token, body)

    for method, template in ROUTES:
        response = call(client, method, template, "suporte", auth(vendas_token), body)
        assert error_message(response, 403) == WRONG_INSTANCE, (method, template)
    assert get_list(client, account_token)["status"] == "active"
    assert len(chatwoot.inboxes) == 1


def test_instance_token_works_on_its_own_routes(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    instance_token = create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    headers = auth(instance_token)

    created = do_set(client, instance_token, set_body(chatwoot, account_id, cw_token))
    assert created["status"] == "active"
    assert (
        get_list(client, instance_token)["bridge_integration_id"]
        == (created["bridge_integration_id"])
    )
    paused = client.post("/api/chatwoot/pause/suporte", headers=headers)
    assert paused.status_code == 200, paused.text
    assert paused.json() == {"instance": "suporte", "status": "paused"}
    resumed = client.post("/api/chatwoot/resume/suporte", headers=headers)
    assert resumed.json() == {"instance": "suporte", "status": "active"}
    deleted = client.delete("/api/chatwoot/delete/suporte", headers=headers)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"message": "chatwoot integration deactivated"}


@pytest.mark.parametrize(("method", "template"), ROUTES)
def test_missing_and_unknown_tokens_are_401(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, method: str, template: str
) -> None:
    create_instance(client, account_token)

    missing = call(client, method, template, "suporte", {})
    assert error_message(missing, 401) == MISSING_TOKEN
    unknown = call(client, method, template, "suporte", auth("not-a-token"))
    assert error_message(unknown, 401) == "Invalid token"
    bad_bearer = call(client, method, template, "suporte", {"Authorization": "Bearer nope"})
    assert error_message(bad_bearer, 401) == "Invalid token"
    assert chatwoot.calls == []


def test_bearer_header_and_query_token_are_accepted(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    do_set(client, account_token, set_body(chatwoot, account_id, cw_token))

    bearer = client.get(
        "/api/chatwoot/list/suporte", headers={"Authorization": f"Bearer {account_token}"}
    )
    assert bearer.status_code == 200, bearer.text
    assert bearer.json()["instance_name"] == "suporte"
    query = client.get("/api/chatwoot/list/suporte", params={"token": account_token})
    assert query.status_code == 200, query.text
    assert query.json()["instance_name"] == "suporte"
    paused = client.post(
        "/api/chatwoot/pause/suporte", headers={"Authorization": f"Bearer {account_token}"}
    )
    assert paused.json() == {"instance": "suporte", "status": "paused"}


# ---- list ---------------------------------------------------------------------------------------


def test_list_shows_everything_stored(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    created = do_set(
        client,
        account_token,
        set_body(chatwoot, account_id, cw_token, signMessages=True, reopenResolved=False),
    )

    listed = get_list(client, account_token)

    [inbox] = chatwoot.inboxes.values()
    integration_id = created["bridge_integration_id"]
    assert listed["instance_name"] == "suporte"
    assert listed["status"] == "active"
    assert listed["bridge_integration_id"] == integration_id
    assert listed["chatwoot_base_url"] == chatwoot.base_url  # trailing `/` removed
    assert listed["chatwoot_account_id"] == account_id
    assert listed["chatwoot_api_token"] == cw_token  # plaintext, as RyzeAPI's newer docs say
    assert listed["chatwoot_inbox_id"] == inbox["id"]
    assert listed["chatwoot_inbox_name"] == "WhatsApp - Orion"
    assert listed["last_error"] == ""
    assert RFC3339_UTC.match(listed["created_at"]), listed["created_at"]
    assert listed["sign_messages"] is True
    for flag in ("ignore_groups", "start_as_pending", "reopen_resolved"):
        assert flag in listed, flag
        assert listed[flag] is False, flag
    assert listed["webhook_url"].startswith(
        f"https://bridge.example.com/webhooks/chatwoot/{integration_id}/"
    )
    secret = listed["webhook_url"].rsplit("/", 1)[1]
    assert len(secret) >= 16
    assert listed["webhook_url"] == inbox["webhook_url"]
    relay = listed["relay"]
    assert relay["pending"] == 0
    assert relay["delivered"] == 0
    assert relay["failed"] == 0
    assert "last_delivered_at" in relay
    assert not relay["last_delivered_at"]


def test_list_inbox_name_defaults_and_alias(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token, "suporte")
    create_instance(client, account_token, "vendas")
    account_id, cw_token = seed_chatwoot(chatwoot)
    body = set_body(chatwoot, account_id, cw_token)
    del body["inboxName"]
    do_set(client, account_token, body, name="suporte")
    do_set(
        client,
        account_token,
        {**body, "chatwootInboxName": "Vendas WA", "chatwootSignMessages": True},
        name="vendas",
    )

    assert get_list(client, account_token, "suporte")["chatwoot_inbox_name"] == "suporte"
    vendas = get_list(client, account_token, "vendas")
    assert vendas["chatwoot_inbox_name"] == "Vendas WA"
    assert sorted(i["name"] for i in chatwoot.inboxes.values()) == ["Vendas WA", "suporte"]


def test_list_errors(client: TestClient, account_token: str, chatwoot: FakeChatwoot) -> None:
    create_instance(client, account_token)

    no_integration = client.get("/api/chatwoot/list/suporte", headers=auth(account_token))
    assert error_message(no_integration, 404) == NO_INTEGRATION
    unknown = client.get("/api/chatwoot/list/ghost", headers=auth(account_token))
    assert error_message(unknown, 404) == INSTANCE_NOT_FOUND


def test_list_live_check_reports_a_deleted_inbox(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    do_set(client, account_token, set_body(chatwoot, account_id, cw_token))
    inbox_id = get_list(client, account_token)["chatwoot_inbox_id"]
    chatwoot.delete_inbox(account_id, inbox_id)

    listed = get_list(client, account_token)

    assert listed["status"] == "error"
    assert "inbox" in listed["last_error"].lower()
    assert str(inbox_id) in listed["last_error"]
    assert listed["chatwoot_inbox_id"] == inbox_id  # stored data otherwise


def test_list_live_check_reports_a_revoked_token(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    do_set(client, account_token, set_body(chatwoot, account_id, cw_token))
    chatwoot.revoke_token(cw_token)

    listed = get_list(client, account_token)

    assert listed["status"] == "error"
    assert listed["last_error"].startswith(UNAUTHORIZED_PREFIX), listed["last_error"]
    assert "Invalid Access Token" in listed["last_error"]


def test_list_with_a_slow_chatwoot_answers_in_time_with_stored_data(
    settings: Settings, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    with make_client(replace(settings, live_check_seconds=0.5)) as client:
        create_instance(client, account_token)
        account_id, cw_token = seed_chatwoot(chatwoot)
        do_set(client, account_token, set_body(chatwoot, account_id, cw_token))
        [inbox_id] = chatwoot.inboxes
        chatwoot.set_delay("GET", rf"^/api/v1/accounts/{account_id}/inboxes/{inbox_id}$", 5)

        started = time.monotonic()
        listed = get_list(client, account_token)
        elapsed = time.monotonic() - started

    assert elapsed < 1.5, f"list took {elapsed:.2f}s"
    assert listed["status"] == "active"
    assert listed["last_error"] == ""
    assert listed["chatwoot_inbox_id"] == inbox_id
    # the live check did try
    assert any(c.path.endswith(f"/inboxes/{inbox_id}") for c in chatwoot.calls)


# ---- delete -------------------------------------------------------------------------------------


def test_delete_deactivates_and_keeps_the_inbox(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    first = do_set(client, account_token, set_body(chatwoot, account_id, cw_token))
    [inbox] = chatwoot.inboxes.values()

    deleted = client.delete("/api/chatwoot/delete/suporte", headers=auth(account_token))

    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"message": "chatwoot integration deactivated"}
    assert chatwoot.inboxes == {inbox["id"]: inbox}
    assert not [c for c in chatwoot.calls if c.method == "DELETE"]
    again = client.delete("/api/chatwoot/delete/suporte", headers=auth(account_token))
    assert error_message(again, 404) == NO_INTEGRATION_TO_DELETE
    listed = client.get("/api/chatwoot/list/suporte", headers=auth(account_token))
    assert error_message(listed, 404) == NO_INTEGRATION
    unknown = client.delete("/api/chatwoot/delete/ghost", headers=auth(account_token))
    assert error_message(unknown, 404) == INSTANCE_NOT_FOUND

    # a set after delete starts a new integration
    second = do_set(client, account_token, set_body(chatwoot, account_id, cw_token))
    assert second["status"] == "active"
    assert second["bridge_integration_id"] != first["bridge_integration_id"]
    relisted = get_list(client, account_token)
    assert relisted["bridge_integration_id"] == second["bridge_integration_id"]
    assert relisted["status"] == "active"
    assert relisted["webhook_url"].startswith(
        f"https://bridge.example.com/webhooks/chatwoot/{second['bridge_integration_id']}/"
    )
    assert inbox["id"] in chatwoot.inboxes


# ---- pause / resume -----------------------------------------------------------------------------


def test_pause_and_resume(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    do_set(client, account_token, set_body(chatwoot, account_id, cw_token))

    paused = client.post("/api/chatwoot/pause/suporte", headers=auth(account_token))
    assert paused.status_code == 200, paused.text
    assert paused.json() == {"instance": "suporte", "status": "paused"}
    listed = get_list(client, account_token)
    assert listed["status"] == "paused"
    assert listed["last_error"] == ""

    resumed = client.post("/api/chatwoot/resume/suporte", headers=auth(account_token))
    assert resumed.status_code == 200, resumed.text
    assert resumed.json() == {"instance": "suporte", "status": "active"}
    assert get_list(client, account_token)["status"] == "active"


@pytest.mark.parametrize("action", ["pause", "resume"])
def test_pause_and_resume_without_integration_are_404(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, action: str
) -> None:
    create_instance(client, account_token)

    response = client.post(f"/api/chatwoot/{action}/suporte", headers=auth(account_token))
    assert error_message(response, 404) == NO_INTEGRATION
    unknown = client.post(f"/api/chatwoot/{action}/ghost", headers=auth(account_token))
    assert error_message(unknown, 404) == INSTANCE_NOT_FOUND
