"""POST /api/chatwoot/set error table, invalid bodies and the 503 module gate (API.md)."""

from __future__ import annotations

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

NOT_FOUND_PREFIX = (
    "Chatwoot account or endpoint not found — verify chatwootBaseUrl ({url}) "
    "and chatwootAccountId ({account_id}). Detail: "
)
INVALID_PREFIX = "Chatwoot rejected the request as invalid. Detail: "
UNAUTHORIZED_PREFIX = "Chatwoot rejected the API token — verify chatwootApiToken. Detail: "
FORBIDDEN_PREFIX = (
    "Chatwoot denied the request — verify the API token has admin scope on account "
    "{account_id}. Detail: "
)
UNREACHABLE_PREFIX = "Chatwoot host unreachable — verify chatwootBaseUrl ({url}). Detail: "
TIMEOUT_PREFIX = "Chatwoot did not answer in time — verify chatwootBaseUrl ({url}). Detail: "
NOT_ALLOWED_PREFIX = "chatwootBaseUrl is not allowed: "
GATE = "integration gateway not configured"
NO_INTEGRATION = "no chatwoot integration for this instance"
PROFILE = r"^/api/v1/profile$"


def assert_error_starts(response: httpx.Response, status: int, prefix: str) -> str:
    message = error_message(response, status)
    assert message.startswith(prefix), message
    assert len(message) > len(prefix), f"no detail after the prefix: {message!r}"
    return message


def post_set(client: TestClient, token: str, body: Any, name: str = "suporte") -> httpx.Response:
    return client.post(f"/api/chatwoot/set/{name}", json=body, headers=auth(token))


def listed(client: TestClient, token: str, name: str = "suporte") -> httpx.Response:
    return client.get(f"/api/chatwoot/list/{name}", headers=auth(token))


def assert_listed_error(client: TestClient, token: str, message: str) -> None:
    """`list` shows the failed integration with the exact message `set` answered."""
    response = listed(client, token)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "error"
    assert body["last_error"] == message
    assert body["bridge_integration_id"].startswith("int_")


def profile_calls(fake: FakeChatwoot) -> int:
    return sum(1 for c in fake.calls if c.method == "GET" and c.path == "/api/v1/profile")


# ---- Chatwoot-caused errors -------------------------------------------------------------------


def test_base_url_that_is_not_chatwoot_is_400_not_found(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    url = chatwoot.base_url + "/not-chatwoot"

    response = post_set(
        client, account_token, set_body(chatwoot, account_id, cw_token, chatwootBaseUrl=url)
    )

    message = assert_error_starts(
        response, 400, NOT_FOUND_PREFIX.format(url=url, account_id=account_id)
    )
    assert chatwoot.inboxes == {}
    assert_listed_error(client, account_token, message)


def test_account_the_user_does_not_belong_to_is_400_not_found(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token)
    _, cw_token = seed_chatwoot(chatwoot)
    foreign_account = chatwoot.add_account("Someone Else")

    response = post_set(client, account_token, set_body(chatwoot, foreign_account, cw_token))

    message = assert_error_starts(
        response, 400, NOT_FOUND_PREFIX.format(url=chatwoot.base_url, account_id=foreign_account)
    )
    assert chatwoot.inboxes == {}
    assert_listed_error(client, account_token, message)


def test_chatwoot_422_on_inbox_create_is_400_invalid(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    chatwoot.fail_next("POST", rf"^/api/v1/accounts/{account_id}/inboxes$", 422)

    response = post_set(client, account_token, set_body(chatwoot, account_id, cw_token))

    message = assert_error_starts(response, 400, INVALID_PREFIX)
    assert chatwoot.inboxes == {}
    assert_listed_error(client, account_token, message)


def test_unknown_token_is_401(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token)
    account_id, _ = seed_chatwoot(chatwoot)

    response = post_set(
        client, account_token, set_body(chatwoot, account_id, "not-a-chatwoot-token")
    )

    message = assert_error_starts(response, 401, UNAUTHORIZED_PREFIX)
    assert "Invalid Access Token" in message  # the raw Chatwoot text follows `Detail: `
    assert_listed_error(client, account_token, message)


def test_revoked_token_is_401(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    chatwoot.revoke_token(cw_token)

    response = post_set(client, account_token, set_body(chatwoot, account_id, cw_token))

    message = assert_error_starts(response, 401, UNAUTHORIZED_PREFIX)
    assert chatwoot.inboxes == {}
    assert_listed_error(client, account_token, message)


def test_agent_role_is_403(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot, role="agent")

    response = post_set(client, account_token, set_body(chatwoot, account_id, cw_token))

    message = assert_error_starts(response, 403, FORBIDDEN_PREFIX.format(account_id=account_id))
    assert chatwoot.inboxes == {}
    assert not [c for c in chatwoot.calls if c.method == "POST"]
    assert_listed_error(client, account_token, message)


def test_connection_refused_is_502(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    url = FakeChatwoot.unused_url()

    response = post_set(
        client,
        account_token,
        set_body(chatwoot, account_id, cw_token, chatwootBaseUrl=url + "/"),
    )

    # the trailing `/` is removed before the URL is used or shown
    message = assert_error_starts(response, 502, UNREACHABLE_PREFIX.format(url=url))
    assert chatwoot.calls == []
    assert_listed_error(client, account_token, message)


def test_persistent_chatwoot_500_is_502_after_retries(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
    settings: Settings,
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    chatwoot.fail_next("GET", PROFILE, 500, times=50)

    response = post_set(client, account_token, set_body(chatwoot, account_id, cw_token))

    message = assert_error_starts(response, 502, UNREACHABLE_PREFIX.format(url=chatwoot.base_url))
    assert settings.remote_retry_attempts == 3
    assert profile_calls(chatwoot) == settings.remote_retry_attempts  # the retries happened
    assert chatwoot.inboxes == {}
    assert_listed_error(client, account_token, message)


def test_chatwoot_500_once_is_retried_and_succeeds(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    chatwoot.fail_next("GET", PROFILE, 500, times=1)

    response = post_set(client, account_token, set_body(chatwoot, account_id, cw_token))

    assert response.status_code == 201, response.text
    assert profile_calls(chatwoot) == 2
    assert len(chatwoot.inboxes) == 1
    assert listed(client, account_token).json()["status"] == "active"


def test_slow_chatwoot_is_504(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
    settings: Settings,
) -> None:
    """REMOTE_TIMEOUT_SECONDS=2 in the tests: a profile that takes 2.5 s times out each try."""
    assert settings.remote_timeout_seconds == 2
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    chatwoot.set_delay("GET", PROFILE, 2.5)

    started = time.monotonic()
    response = post_set(client, account_token, set_body(chatwoot, account_id, cw_token))
    elapsed = time.monotonic() - started

    message = assert_error_starts(response, 504, TIMEOUT_PREFIX.format(url=chatwoot.base_url))
    assert profile_calls(chatwoot) == settings.remote_retry_attempts
    assert elapsed < 9, f"{elapsed:.1f}s: the remote timeout was not applied"
    assert chatwoot.inboxes == {}
    assert_listed_error(client, account_token, message)


# ---- refused before anything is sent -----------------------------------------------------------


@pytest.fixture
def strict_client(settings: Settings) -> Iterator[TestClient]:
    """A client of an app with ALLOW_PRIVATE_URLS off."""
    with make_client(replace(settings, allow_private_urls=False)) as strict:
        yield strict


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_private_base_url_is_refused_when_private_urls_are_off(
    strict_client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
    host: str,
) -> None:
    create_instance(strict_client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    url = chatwoot.base_url.replace("127.0.0.1", host)

    response = post_set(
        strict_client, account_token, set_body(chatwoot, account_id, cw_token, chatwootBaseUrl=url)
    )

    assert_error_starts(response, 400, NOT_ALLOWED_PREFIX)
    assert chatwoot.calls == []
    assert chatwoot.inboxes == {}


def test_non_http_scheme_is_not_allowed(
    strict_client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(strict_client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)

    response = post_set(
        strict_client,
        account_token,
        set_body(chatwoot, account_id, cw_token, chatwootBaseUrl="ftp://chatwoot.example.com"),
    )

    assert error_message(response, 400) == NOT_ALLOWED_PREFIX + "scheme must be http or https"
    assert chatwoot.calls == []
    assert error_message(listed(strict_client, account_token), 404) == NO_INTEGRATION


def test_set_on_unknown_instance_is_404(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)

    response = post_set(
        client, account_token, set_body(chatwoot, account_id, cw_token), name="ghost"
    )

    assert error_message(response, 404) == "instance not found"
    assert chatwoot.calls == []


# ---- invalid bodies -----------------------------------------------------------------------------

_MISSING = object()

INVALID_BODIES: list[tuple[str, str, Any]] = [
    ("missing base url", "chatwootBaseUrl", _MISSING),
    ("base url number", "chatwootBaseUrl", 123),
    ("base url empty", "chatwootBaseUrl", ""),
    ("base url not a url", "chatwootBaseUrl", "chatwoot.example.com"),
    ("base url list", "chatwootBaseUrl", ["https://chatwoot.example.com"]),
    ("missing account id", "chatwootAccountId", _MISSING),
    ("account id string", "chatwootAccountId", "5"),
    ("account id zero", "chatwootAccountId", 0),
    ("account id negative", "chatwootAccountId", -3),
    ("account id true", "chatwootAccountId", True),
    ("account id float", "chatwootAccountId", 1.5),
    ("missing api token", "chatwootApiToken", _MISSING),
    ("api token number", "chatwootApiToken", 12345),
    ("api token empty", "chatwootApiToken", ""),
    ("signMessages string", "signMessages", "true"),
    ("ignoreGroups number", "ignoreGroups", 1),
    ("startAsPending string", "startAsPending", "yes"),
    ("reopenResolved number", "reopenResolved", 0),
    ("inboxName number", "inboxName", 42),
]


@pytest.mark.parametrize(
    ("field", "value"),
    [pytest.param(field, value, id=case) for case, field, value in INVALID_BODIES],
)
def test_invalid_body_is_400_and_changes_nothing(
    client: TestClient,
    account_token: str,
    chatwoot: FakeChatwoot,
    worker: Worker,
    field: str,
    value: Any,
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    body = set_body(chatwoot, account_id, cw_token)
    if value is _MISSING:
        del body[field]
    else:
        body[field] = value

    response = post_set(client, account_token, body)

    assert_error_starts(response, 400, f"invalid body: {field}: ")
    assert error_message(listed(client, account_token), 404) == NO_INTEGRATION
    assert chatwoot.calls == []


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[1, 2]", b'"a string"'],
    ids=["empty", "not-json", "array", "string"],
)
def test_body_that_is_not_a_json_object_is_400(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker, raw: bytes
) -> None:
    create_instance(client, account_token)

    response = client.post(
        "/api/chatwoot/set/suporte",
        content=raw,
        headers={**auth(account_token), "content-type": "application/json"},
    )

    assert_error_starts(response, 400, "invalid body: ")
    assert error_message(listed(client, account_token), 404) == NO_INTEGRATION
    assert chatwoot.calls == []


def test_invalid_repeat_set_keeps_the_working_integration(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, worker: Worker
) -> None:
    create_instance(client, account_token)
    account_id, cw_token = seed_chatwoot(chatwoot)
    first = post_set(client, account_token, set_body(chatwoot, account_id, cw_token))
    assert first.status_code == 201, first.text
    before = listed(client, account_token).json()
    calls_before = len(chatwoot.calls)

    response = post_set(
        client, account_token, set_body(chatwoot, account_id, cw_token, chatwootAccountId=0)
    )

    assert_error_starts(response, 400, "invalid body: chatwootAccountId: ")
    after = listed(client, account_token).json()
    for key in (
        "status",
        "bridge_integration_id",
        "chatwoot_account_id",
        "chatwoot_inbox_id",
        "chatwoot_api_token",
        "webhook_url",
        "last_error",
    ):
        assert after[key] == before[key], key
    # only list's live checks reached Chatwoot; nothing was provisioned
    assert all(c.method == "GET" for c in chatwoot.calls[calls_before:])


# ---- the module gate ----------------------------------------------------------------------------

CHATWOOT_ROUTES = [
    ("POST", "/api/chatwoot/set/{name}"),
    ("GET", "/api/chatwoot/list/{name}"),
    ("DELETE", "/api/chatwoot/delete/{name}"),
    ("POST", "/api/chatwoot/pause/{name}"),
    ("POST", "/api/chatwoot/resume/{name}"),
]


def assert_gated(gated: TestClient, tokens: dict[str, str | None], names: list[str]) -> None:
    for method, template in CHATWOOT_ROUTES:
        for name in names:
            for label, token in tokens.items():
                headers = auth(token) if token is not None else {}
                response = gated.request(
                    method,
                    template.format(name=name),
                    headers=headers,
                    json={"chatwootBaseUrl": "https://chatwoot.example.com"},
                )
                where = f"{method} {template.format(name=name)} with {label}"
                assert response.status_code == 503, f"{where}: {response.text}"
                assert response.json() == {
                    "success": False,
                    "error": {"message": GATE},
                }, where


def test_module_switched_off_answers_503_everywhere(
    settings: Settings, account_token: str, other_account_token: str, chatwoot: FakeChatwoot
) -> None:
    with make_client(settings) as setup:
        instance_token = create_instance(setup, account_token)

    with make_client(replace(settings, chatwoot_enabled=False)) as gated:
        assert_gated(
            gated,
            {
                "no token": None,
                "account token": account_token,
                "instance token": instance_token,
                "other account token": other_account_token,
                "unknown token": "no-such-token",
            },
            ["suporte", "ghost"],
        )
        # the rest of the API is not affected
        response = gated.get("/api/instance/list", headers=auth(account_token))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True
        assert [i["name"] for i in body["instances"]] == ["suporte"]
    assert chatwoot.calls == []


def test_module_without_encryption_key_answers_503_everywhere(
    settings: Settings, account_token: str, chatwoot: FakeChatwoot
) -> None:
    with make_client(settings) as setup:
        create_instance(setup, account_token)

    with make_client(replace(settings, encryption_key=None)) as gated:
        assert_gated(
            gated,
            {"no token": None, "account token": account_token, "unknown token": "nope"},
            ["suporte", "ghost"],
        )
    assert chatwoot.calls == []
