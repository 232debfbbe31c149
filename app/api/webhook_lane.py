"""The webhook lane: webhook POSTs reach their endpoint through two thin layers, not eight.

Webhooks are nearly all of the web process's traffic (every customer message, status tick and
agent reply arrives as one), and their senders back off when we are slow. The management
middleware does nothing for them — the module gate and the rate limits apply to ``/api/``
only — yet Starlette's stack (server-error and exception middleware, our four, the router over
every route, the request/response wrapper) costs a coroutine layer per request and a wrapper
per ``send``: measured, 14 % of the web process's CPU per webhook. Here a webhook POST is
matched against the webhook routes alone and runs under exactly the layers that apply to it —
the access log (request id, one line) and the last-resort 500 — with
:class:`~app.api.errors.ApiError` rendered as everywhere else. Every other request goes
through the whole application unchanged (a GET of a webhook path too: its 405, the
subscription handshake).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Receive, Scope, Send

from app.api.errors import ApiError, handle_api_error
from app.api.middleware import AccessLog, CatchUnexpected

WEBHOOK_PREFIX = "/webhooks/"


def webhook_posts(routes: Sequence[BaseRoute]) -> list[Route]:
    """The POST routes under :data:`WEBHOOK_PREFIX` among ``routes``."""
    return [
        route
        for route in routes
        if isinstance(route, Route)
        and route.path.startswith(WEBHOOK_PREFIX)
        and "POST" in (route.methods or ())
    ]


class WebhookRoutes:
    """ASGI: the endpoint of the webhook route :meth:`match` found for this request."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = list(routes)

    def match(self, scope: Scope) -> bool:
        """Fill in ``scope``'s route and path parameters if a webhook POST route matches."""
        for route in self.routes:
            matched, child = route.matches(scope)
            if matched is Match.FULL:
                scope.update(child)
                scope["route"] = route
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await scope["endpoint"](request)
        except ApiError as exc:
            response = await handle_api_error(request, exc)
        await response(scope, receive, send)


class WebhookFirstApp(Starlette):
    """The application; webhook POSTs take the lane before its middleware stack."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.webhook_routes = WebhookRoutes(webhook_posts(self.routes))
        self.webhook_lane = AccessLog(CatchUnexpected(self.webhook_routes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith(WEBHOOK_PREFIX)
            and self.webhook_routes.match(scope)
        ):
            scope["app"] = self
            await self.webhook_lane(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
