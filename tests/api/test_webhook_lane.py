"""The webhook lane (app/api/webhook_lane.py): webhook POSTs skip the middleware stack yet are
logged, get a request id, have their API errors rendered and an unexpected error answered 500;
everything else goes through the whole application."""

from __future__ import annotations

import logging
from typing import ClassVar

import pytest
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.errors import ApiError
from app.api.webhook_lane import WebhookFirstApp


class Recording:
    """Middleware that notes each path it sees (to tell which requests took the stack)."""

    seen: ClassVar[list[str]] = []

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        Recording.seen.append(f"{scope.get('method')} {scope['path']}")
        await self.app(scope, receive, send)


async def accepted(request: Request) -> Response:
    body = await request.json()
    return JSONResponse({"name": request.path_params["name"], "got": body})


async def refused(request: Request) -> Response:
    raise ApiError(401, "invalid signature")


async def broken(request: Request) -> Response:
    raise RuntimeError("a bug")


async def management(request: Request) -> Response:
    return JSONResponse({"ok": True})


async def handshake(request: Request) -> Response:
    return JSONResponse({"handshake": request.path_params["name"]})


@pytest.fixture
def lane_client() -> TestClient:
    Recording.seen = []
    app = WebhookFirstApp(
        routes=[
            Route("/webhooks/ok/{name}", accepted, methods=["POST"]),
            Route("/webhooks/ok/{name}", handshake, methods=["GET"]),
            Route("/webhooks/refused/{name}", refused, methods=["POST"]),
            Route("/webhooks/broken/{name}", broken, methods=["POST"]),
            Route("/api/thing", management, methods=["POST"]),
        ],
        middleware=[Middleware(Recording)],
    )
    return TestClient(app, raise_server_exceptions=False)


def test_a_webhook_post_skips_the_stack_and_gets_its_path_params(lane_client: TestClient) -> None:
    response = lane_client.post("/webhooks/ok/acme", json={"a": 1})

    assert response.status_code == 200
    assert response.json() == {"name": "acme", "got": {"a": 1}}
    assert response.headers["X-Request-Id"]
    assert Recording.seen == []


def test_everything_else_takes_the_stack(lane_client: TestClient) -> None:
    assert lane_client.get("/webhooks/ok/acme").json() == {"handshake": "acme"}
    assert lane_client.post("/webhooks/nowhere/acme", json={}).status_code == 404
    assert lane_client.put("/webhooks/ok/acme", json={}).status_code == 405
    assert lane_client.post("/api/thing", json={}).json() == {"ok": True}

    assert Recording.seen == [
        "GET /webhooks/ok/acme",
        "POST /webhooks/nowhere/acme",
        "PUT /webhooks/ok/acme",
        "POST /api/thing",
    ]


def test_api_errors_are_rendered_as_everywhere(lane_client: TestClient) -> None:
    response = lane_client.post("/webhooks/refused/acme", json={})

    assert response.status_code == 401
    assert response.json() == {"success": False, "error": {"message": "invalid signature"}}


def test_an_unexpected_error_is_logged_with_the_route_and_answered_500(
    lane_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        response = lane_client.post(
            "/webhooks/broken/acme", json={}, headers={"X-Request-Id": "req-lane-1"}
        )

    assert response.status_code == 500
    assert response.json() == {"success": False, "error": {"message": "internal error"}}
    assert response.headers["X-Request-Id"] == "req-lane-1"
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "unhandled RuntimeError on POST /webhooks/broken/acme"
    ]
    access = [r.getMessage() for r in caplog.records if r.name == "wootbridge.access"]
    assert len(access) == 1 and access[0].startswith("POST /webhooks/broken/acme 500 ")


def test_the_real_app_answers_a_webhook_for_no_instance_through_the_lane(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="wootbridge.access"):
        response = client.post("/webhooks/whatsapp/cloud/nobody", content=b"{}")

    assert response.status_code == 404
    assert response.json() == {"success": False, "error": {"message": "instance not found"}}
    access = [r.getMessage() for r in caplog.records if r.name == "wootbridge.access"]
    assert len(access) == 1 and access[0].startswith("POST /webhooks/whatsapp/cloud/nobody 404 ")
    assert isinstance(client.app, WebhookFirstApp)
    posts = {route.path for route in client.app.webhook_routes.routes}
    assert posts == {
        "/webhooks/whatsapp/cloud/{instance}",
        "/webhooks/whatsapp/gateway/{instance}",
        "/webhooks/whatsapp/gateway/{instance}/{event}",
        "/webhooks/chatwoot/{integration}/{secret}",
    }
