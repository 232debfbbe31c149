"""API.md Conventions: per-token rate limits with X-RateLimit-* headers; /healthz and /readyz.

The counters live in the real Redis, keyed per one-minute window and token. Every test uses
fresh account tokens, and tests that count start early in a window so it cannot roll over
while they run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from starlette.testclient import TestClient

from app.config import Settings
from tests.api.helpers import auth, cloud_instance_body, gateway_instance_body
from tests.conftest import make_client

LIMIT = 5
NEW_LIMIT = 2
RATE_LIMITED = "Rate limit exceeded. Try again later."
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


@pytest.fixture
def limited(settings: Settings) -> Iterator[TestClient]:
    """A client whose app allows 5 requests/min per token, 2 creates/min."""
    tight = replace(
        settings, rate_limit_per_minute=LIMIT, rate_limit_new_instance_per_minute=NEW_LIMIT
    )
    with make_client(tight) as test_client:
        yield test_client


@pytest.fixture
def fresh_window() -> None:
    """Wait for the next minute if this one ends too soon for the test to finish inside it."""
    into_window = time.time() % 60
    if into_window > 55:
        time.sleep(60 - into_window + 0.1)


def rate_headers(response: httpx.Response) -> tuple[int, int, int]:
    """(limit, remaining, reset) after checking all three are present and reset is sane."""
    for name in RATE_HEADERS:
        assert name in response.headers, f"{name} missing on {response.status_code}"
    limit = int(response.headers["X-RateLimit-Limit"])
    remaining = int(response.headers["X-RateLimit-Remaining"])
    reset = int(response.headers["X-RateLimit-Reset"])
    now = time.time()
    assert now < reset <= now + 60, (reset, now)
    return limit, remaining, reset


def assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json() == {"success": False, "error": {"message": RATE_LIMITED}}
    limit, remaining, _ = rate_headers(response)
    assert remaining == 0
    assert limit in (LIMIT, NEW_LIMIT)


def assert_not_limited(response: httpx.Response) -> None:
    assert response.status_code != 429, response.text
    for name in RATE_HEADERS:
        assert name not in response.headers


def list_instances(client: TestClient, token: str) -> httpx.Response:
    response: httpx.Response = client.get("/api/instance/list", headers=auth(token))
    return response


@pytest.mark.usefixtures("fresh_window")
def test_every_api_response_carries_rate_limit_headers(
    limited: TestClient, account_token: str
) -> None:
    ok = list_instances(limited, account_token)
    not_found = limited.delete("/api/instance/delete/nope", headers=auth(account_token))
    bad_body = limited.post("/api/instance/new", json={}, headers=auth(account_token))
    unknown_token = list_instances(limited, "never-issued-token-" + str(time.time_ns()))

    assert ok.status_code == 200
    assert rate_headers(ok)[:2] == (LIMIT, LIMIT - 1)
    assert not_found.status_code == 404
    assert rate_headers(not_found)[:2] == (LIMIT, LIMIT - 2)
    assert bad_body.status_code == 400
    assert rate_headers(bad_body)[:2] == (NEW_LIMIT, NEW_LIMIT - 1)
    assert unknown_token.status_code == 401
    assert rate_headers(unknown_token)[:2] == (LIMIT, LIMIT - 1)
    resets = {rate_headers(r)[2] for r in (ok, not_found, bad_body)}
    assert len(resets) == 1, "one window, one reset time"


@pytest.mark.usefixtures("fresh_window")
def test_request_over_the_limit_is_429(limited: TestClient, account_token: str) -> None:
    remaining = [rate_headers(list_instances(limited, account_token))[1] for _ in range(LIMIT)]

    over = list_instances(limited, account_token)
    still_over = limited.delete("/api/instance/delete/suporte", headers=auth(account_token))

    assert remaining == [4, 3, 2, 1, 0]
    assert_limited(over)
    assert rate_headers(over)[0] == LIMIT
    assert_limited(still_over)


@pytest.mark.usefixtures("fresh_window")
def test_limit_counts_a_token_whatever_header_carries_it(
    limited: TestClient, account_token: str
) -> None:
    forms = [
        {"headers": {"token": account_token}},
        {"headers": {"Authorization": f"Bearer {account_token}"}},
        {"params": {"token": account_token}},
    ]
    for kwargs in forms + forms[:2]:
        assert limited.get("/api/instance/list", **kwargs).status_code == 200

    assert_limited(limited.get("/api/instance/list", params={"token": account_token}))


@pytest.mark.usefixtures("fresh_window")
def test_limits_are_per_token(
    limited: TestClient, account_token: str, other_account_token: str
) -> None:
    created = limited.post(
        "/api/instance/new", json=cloud_instance_body("suporte"), headers=auth(account_token)
    )
    assert created.status_code == 201, created.text
    instance_token = created.json()["instance"]["token"]
    for _ in range(LIMIT - 1):
        assert list_instances(limited, account_token).status_code == 200
    assert_limited(list_instances(limited, account_token))

    other = list_instances(limited, other_account_token)
    own_instance = list_instances(limited, instance_token)

    assert other.status_code == 200, other.text
    assert rate_headers(other)[:2] == (LIMIT, LIMIT - 1)
    assert own_instance.status_code == 200, own_instance.text
    assert rate_headers(own_instance)[:2] == (LIMIT, LIMIT - 1)
    assert own_instance.json()["message"] == "1 Instance found"


@pytest.mark.usefixtures("fresh_window")
def test_new_instance_has_its_own_smaller_limit(limited: TestClient, account_token: str) -> None:
    first = limited.post(
        "/api/instance/new", json=cloud_instance_body("one"), headers=auth(account_token)
    )
    second = limited.post(
        "/api/instance/new", json=gateway_instance_body("two"), headers=auth(account_token)
    )
    third = limited.post(
        "/api/instance/new", json=cloud_instance_body("three"), headers=auth(account_token)
    )

    assert first.status_code == 201, first.text
    assert rate_headers(first)[:2] == (NEW_LIMIT, NEW_LIMIT - 1)
    assert second.status_code == 201, second.text
    assert rate_headers(second)[:2] == (NEW_LIMIT, 0)
    assert_limited(third)
    assert rate_headers(third)[0] == NEW_LIMIT
    listing = list_instances(limited, account_token)
    assert listing.status_code == 200, "other routes keep the general limit"
    assert rate_headers(listing)[0] == LIMIT
    assert sorted(i["name"] for i in listing.json()["instances"]) == ["one", "two"]


@pytest.mark.usefixtures("fresh_window")
def test_webhooks_and_health_are_not_limited(limited: TestClient, account_token: str) -> None:
    for _ in range(LIMIT + 3):
        health = limited.get("/healthz")
        assert health.status_code == 200
        assert_not_limited(health)
        assert_not_limited(limited.get("/readyz"))
        assert_not_limited(
            limited.post(
                "/webhooks/whatsapp/gateway/suporte",
                json={"event": "message.exchange", "data": {}, "instanceData": {}},
                headers=auth(account_token),
            )
        )
        assert_not_limited(
            limited.get(
                "/webhooks/whatsapp/cloud/suporte",
                params={"hub.mode": "subscribe", "hub.challenge": "1", "token": account_token},
            )
        )

    after = list_instances(limited, account_token)

    assert after.status_code == 200
    assert rate_headers(after)[:2] == (LIMIT, LIMIT - 1), "webhooks must not use up the budget"


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_when_database_and_redis_answer(client: TestClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["database"] == "ok"
    assert body["redis"] == "ok"


def test_readyz_is_503_when_redis_is_unreachable(settings: Settings) -> None:
    with make_client(replace(settings, redis_url="redis://127.0.0.1:1/0")) as down:
        started = time.monotonic()
        response = down.get("/readyz")
        elapsed = time.monotonic() - started
        health = down.get("/healthz")

    assert response.status_code == 503, response.text
    body = response.json()
    assert body["database"] == "ok"
    assert body["redis"] != "ok"
    assert elapsed < 5, "readiness must answer promptly"
    assert health.status_code == 200, "liveness does not depend on Redis"
