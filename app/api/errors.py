"""API errors carry their HTTP status and API.md's literal message; one handler renders them."""

from __future__ import annotations

import logging
import re

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Scope

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered as ``{"success": false, "error": {"message": ...}}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"success": False, "error": {"message": message}}, status_code=status, headers=headers
    )


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.headers)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
    return error_response(exc.status_code, message, dict(exc.headers or {}))


INTERNAL_ERROR = "internal error"
NO_ROUTE = "(no route)"


SECRET_PATH_PARAMS = frozenset({"secret"})
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def route_template(scope: Scope) -> str:
    """The matched route's path for logs, never the raw path: the route template with each
    parameter filled in only when it is plain text (an instance name, an integration id), never
    for the Chatwoot webhook's ``{secret}``. Raw paths carry secrets and arbitrary client text
    (newlines included); unmatched paths are logged as ``(no route)``."""
    template = getattr(scope.get("route"), "path", None)
    if not isinstance(template, str):
        return NO_ROUTE
    params = scope.get("path_params") or {}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        value = params.get(name)
        if name in SECRET_PATH_PARAMS or not isinstance(value, str):
            return match.group(0)
        return value if _PLAIN_SEGMENT.fullmatch(value) else match.group(0)

    return _PARAM.sub(fill, template)


def log_unexpected(scope: Scope, exc: BaseException) -> None:
    logger.error(
        "unhandled %s on %s %s",
        type(exc).__name__,
        scope.get("method", "?"),
        route_template(scope),
        exc_info=exc,
    )


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    log_unexpected(request.scope, exc)
    return error_response(500, INTERNAL_ERROR)


def invalid_body(field: str, problem: str) -> ApiError:
    return ApiError(400, f"invalid body: {field}: {problem}")


INSTANCE_NOT_FOUND = "instance not found"
NO_INTEGRATION = "no chatwoot integration for this instance"
