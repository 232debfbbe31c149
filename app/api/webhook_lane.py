"""The webhook lane: webhook POSTs reach their endpoint through one thin layer, not eight.

Webhooks are nearly all of the web process's traffic (every customer message, status tick and
agent reply arrives as one), and their senders back off when we are slow. The management
middleware does nothing for them — the module gate and the rate limits apply to ``/api/``
only — yet Starlette's stack (server-error and exception middleware, our four, the router over
every route, the request/response wrapper) costs a coroutine layer per request and a wrapper
per ``send``: measured, 14 % of the web process's CPU per webhook. Here a webhook POST is
matched against the webhook routes alone and runs in :class:`WebhookRoutes`, which does for it
exactly what the layers that apply do — the access log's line and request id
(:class:`~app.api.middleware.AccessLog`) and the last-resort 500
(:class:`~app.api.middleware.CatchUnexpected`) — with
:class:`~app.api.errors.ApiError` rendered as everywhere else, and no wrapper around ``send``:
the endpoint's response is finished (request id, status noted) before it is sent. Every other
request goes through the whole application unchanged (a GET of a webhook path too: its 405,
the subscription handshake).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Receive, Scope, Send

from app.api.errors import ApiError, handle_api_error, handle_unexpected
from app.api.middleware import REQUEST_ID_HEADER, log_access, request_id_of
from app.logs import log_context

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
    """ASGI: the endpoint of the webhook route :meth:`match` found for this request, logged
    and guarded as the access log and the last-resort 500 do for every other request."""

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
        started = time.perf_counter()
        request_id = request_id_of(Headers(scope=scope))
        status = 500
        with log_context(request_id=request_id):
            try:
                response = await self._respond(Request(scope, receive, send))
                response.headers[REQUEST_ID_HEADER] = request_id
                status = response.status_code
                await response(scope, receive, send)
            finally:
                log_access(scope, status, started)

    @staticmethod
    async def _respond(request: Request) -> Response:
        try:
            response: Response = await request.scope["endpoint"](request)
        except ApiError as exc:
            return await handle_api_error(request, exc)
        except Exception as exc:
            return await handle_unexpected(request, exc)
        return response


class WebhookFirstApp(Starlette):
    """The application; webhook POSTs take the lane before its middleware stack."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.webhook_routes = WebhookRoutes(webhook_posts(self.routes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith(WEBHOOK_PREFIX)
            and self.webhook_routes.match(scope)
        ):
            scope["app"] = self
            await self.webhook_routes(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
