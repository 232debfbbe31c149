"""``GET /``: the status page, a server-rendered shell whose inline script reads the JSON API.

The page holds no data of its own: a person pastes a token, the browser keeps it in
``sessionStorage`` and calls ``/api/...`` with it (header ``token``), so the page sees exactly
what that token may see. The shell renders without JavaScript (heading and explanation). The
Content-Security-Policy allows only this origin plus the page's own inline script and style,
identified by a fresh nonce per response.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parents[1] / "templates"))

REFRESH_SECONDS = 5


def content_security_policy(nonce: str) -> str:
    """Only this origin, and inline code only when it carries ``nonce``."""
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'nonce-{nonce}'",
            f"style-src 'nonce-{nonce}'",
            "img-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


async def status_page(request: Request) -> Response:
    nonce = secrets.token_urlsafe(18)
    response = TEMPLATES.TemplateResponse(
        request, "status.html", {"nonce": nonce, "refresh_seconds": REFRESH_SECONDS}
    )
    response.headers.update(
        {
            "Content-Security-Policy": content_security_policy(nonce),
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
        }
    )
    return response


routes = [Route("/", status_page, methods=["GET"])]
