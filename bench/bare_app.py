"""Baseline: the cheapest Starlette JSON endpoint, served exactly like the real web process.
It accepts a POST on any path, so it receives the very requests sent to the bridge."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def accept(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"received": 1})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/healthz", healthz, methods=["GET"]),
        Route("/{path:path}", accept, methods=["POST"]),
    ]
)
