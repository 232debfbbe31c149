"""Baseline: the cheapest Starlette JSON endpoint, served exactly like the real web process."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def accept(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"received": 1})


app = Starlette(routes=[Route("/", accept, methods=["POST"])])
