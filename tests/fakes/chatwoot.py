"""A fake Chatwoot that is a real HTTP server on 127.0.0.1, for tests and benchmarks.

    with FakeChatwoot() as cw:
        account_id = cw.add_account()
        token = cw.add_user("Ada", {account_id: "administrator"})
        httpx.get(f"{cw.base_url}/api/v1/profile", headers={"api_access_token": token})

Every request body is validated against Chatwoot's swagger (``schema_errors``), every request is
recorded (``calls``), and faults can be injected per method + path regex (``fail_next``,
``set_delay``). Endpoint behaviour lives in ``chatwoot_api.py`` / ``chatwoot_conversations.py``,
JSON shapes in ``chatwoot_views.py``, body parsing and validation in ``chatwoot_schema.py``.

Manual use: ``python -m tests.fakes.chatwoot --port 3000`` (prints an account id and a token).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.fakes import chatwoot_views as views
from tests.fakes.chatwoot_api import Ctx
from tests.fakes.chatwoot_conversations import ConversationEndpoints
from tests.fakes.chatwoot_schema import (
    FORM_KIND,
    JSON_KIND,
    ParsedBody,
    load_schema_book,
    parse_body,
)
from tests.fakes.chatwoot_views import ApiError
from tests.reference import chatwoot_swagger

DEFAULT_SWAGGER = chatwoot_swagger()
HOST = "127.0.0.1"
REDACTED = "<redacted>"
SECRET_HEADERS = ("api_access_token", "api-access-token", "authorization", "cookie")
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
ACC = "/api/v1/accounts/{account_id:int}"
CONV = ACC + "/conversations/{conversation_id:int}"
BLOB = "/rails/active_storage/{kind}/redirect/{signed_id}/{filename:path}"
# method, path, handler name, scope: "account" (token + membership), "user" (token), "public"
ROUTES: list[tuple[str, str, str, str]] = [
    ("GET", "/api/v1/profile", "get_profile", "user"),
    ("GET", ACC + "/inboxes", "list_inboxes", "account"),
    ("POST", ACC + "/inboxes", "create_inbox", "account"),
    ("GET", ACC + "/inboxes/{id:int}", "show_inbox", "account"),
    ("PATCH", ACC + "/inboxes/{id:int}", "update_inbox", "account"),
    ("POST", ACC + "/contacts", "create_contact", "account"),
    ("GET", ACC + "/contacts/search", "search_contacts", "account"),
    ("GET", ACC + "/contacts/{id:int}", "show_contact", "account"),
    ("GET", ACC + "/contacts/{id:int}/conversations", "contact_conversations", "account"),
    ("POST", ACC + "/contacts/{id:int}/contact_inboxes", "create_contact_inbox", "account"),
    ("POST", ACC + "/contact_inboxes/filter", "filter_contact_inboxes", "account"),
    ("POST", ACC + "/conversations", "create_conversation", "account"),
    ("GET", CONV, "show_conversation", "account"),
    ("POST", CONV + "/toggle_status", "toggle_status", "account"),
    ("GET", CONV + "/messages", "list_messages", "account"),
    ("POST", CONV + "/messages", "create_message", "account"),
    ("PATCH", CONV + "/messages/{id:int}", "update_message", "account"),
    ("GET", BLOB, "serve_blob_redirect", "public"),
    ("GET", "/rails/active_storage/disk/{key}/{filename:path}", "serve_blob", "public"),
]


@dataclass
class RecordedCall:
    """One request as the fake saw it; secret headers are stored as ``<redacted>``.

    ``status`` is 0 while the answer is still being prepared (e.g. during ``set_delay``).
    """

    method: str
    path: str
    query: dict[str, str]
    json: Any | None
    form: dict[str, Any] | None
    status: int
    headers: dict[str, str]


@dataclass
class _Rule:
    """A fault (``status``) or delay (``seconds``) for the next ``remaining`` matches."""

    method: str
    pattern: re.Pattern[str]
    remaining: int | None
    status: int = 0
    body: Any = None
    seconds: float = 0.0

    def take(self, method: str, path: str) -> bool:
        """Consume one use if this rule applies to the request."""
        if self.method not in ("*", method) or not self.pattern.search(path):
            return False
        if self.remaining is not None:
            self.remaining -= 1
        return True


def _recorded_form(parsed: ParsedBody) -> dict[str, Any] | None:
    if parsed.kind != FORM_KIND:
        return None
    form: dict[str, Any] = dict(parsed.form)
    for upload in parsed.files:
        summary = {
            "filename": upload.filename,
            "content_type": upload.content_type,
            "size": len(upload.data),
        }
        if upload.field.endswith("[]") or upload.field in form:
            existing = form.get(upload.field, [])
            form[upload.field] = [
                *(existing if isinstance(existing, list) else [existing]),
                summary,
            ]
        else:
            form[upload.field] = summary
    return form


class FakeChatwoot(ConversationEndpoints):
    """Chatwoot's application API (the parts Wootbridge uses), served by uvicorn in a thread."""

    def __init__(self, swagger_path: str | Path = DEFAULT_SWAGGER, port: int = 0) -> None:
        self._schemas = load_schema_book(str(Path(swagger_path).resolve()))
        self._lock = threading.RLock()
        self._requested_port = port
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.calls: list[RecordedCall] = []
        self.schema_errors: list[str] = []
        self._faults: list[_Rule] = []
        self._delays: list[_Rule] = []
        self._init_state()
        self._tokens: dict[str, int] = {}
        routes = [
            Route(path, self._endpoint(name, scope), methods=[method])
            for method, path, name, scope in ROUTES
        ]
        routes.append(Route("/__fake/stats", self._stats, methods=["GET"]))
        routes.append(
            Route("/{path:path}", self._endpoint("route_not_found", "public"), methods=ALL_METHODS)
        )
        self.app = Starlette(routes=routes)

    async def _stats(self, request: Request) -> JSONResponse:
        """Counters for benchmarks that run the fake in another process (not Chatwoot API)."""
        with self._lock:
            return JSONResponse(
                {
                    "messages": len(self.messages),
                    "contacts": len(self.contacts),
                    "conversations": len(self.conversations),
                    "calls": len(self.calls),
                    "schema_errors": len(self.schema_errors),
                }
            )

    # ---- lifecycle ----
    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeChatwoot is not started")
        return f"http://{HOST}:{self._port}"

    def start(self) -> None:
        """Serve on 127.0.0.1 and return once listening.

        The port is ephemeral unless one was given; a restart after ``stop()`` reuses the same
        port, so stop/start can simulate an outage at an unchanged ``base_url``. State is kept.
        """
        if self._thread is not None:
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, self._requested_port or self._port or 0))
        self._socket, self._port = sock, sock.getsockname()[1]
        # uvicorn only installs signal handlers in the main thread, so none are installed here.
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            log_config=None,
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"fake-chatwoot-{self._port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("fake Chatwoot did not start")
            time.sleep(0.002)

    def stop(self) -> None:
        """Stop serving and join the server thread (pending delayed answers are cut short)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> FakeChatwoot:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @staticmethod
    def unused_url() -> str:
        """A URL on 127.0.0.1 where nothing listens (connection refused)."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
        return f"http://{HOST}:{port}"

    # ---- seeding ----
    def add_account(self, name: str = "Acme") -> int:
        with self._lock:
            account_id = self._next_id("account")
            self.accounts[account_id] = {"id": account_id, "name": name}
            return account_id

    def add_user(self, name: str, roles: dict[int, str], email: str | None = None) -> str:
        """Create a user (``roles``: account id -> "administrator"|"agent"); return its token."""
        with self._lock:
            for account_id, role in roles.items():
                if account_id not in self.accounts or role not in ("administrator", "agent"):
                    raise ValueError(f"bad role {role!r} for account {account_id}")
            user_id = self._next_id("user")
            token = self._token()
            self.users[user_id] = {
                "id": user_id,
                "name": name,
                "email": email or f"user{user_id}@example.test",
                "roles": dict(roles),
                "access_token": token,
                "pubsub_token": self._token(),
            }
            self._tokens[token] = user_id
            return token

    def revoke_token(self, token: str) -> None:
        """The token now answers 401 Invalid Access Token."""
        with self._lock:
            del self._tokens[token]

    def delete_inbox(self, account_id: int, inbox_id: int) -> None:
        """Simulate an admin deleting the inbox: it, its conversations and contact inboxes 404."""
        with self._lock:
            self._remove_inbox(account_id, inbox_id)

    # ---- faults ----
    def fail_next(
        self, method: str, path_pattern: str, status: int, body: Any = None, times: int = 1
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` without processing them."""
        with self._lock:
            self._faults.append(
                _Rule(method.upper(), re.compile(path_pattern), times, status=status, body=body)
            )

    def set_delay(
        self, method: str, path_pattern: str, seconds: float, times: int | None = None
    ) -> None:
        """Process matching requests at once but hold the answer back ``seconds``.

        So a client that times out leaves its effect behind, as a slow real Chatwoot does.
        """
        with self._lock:
            self._delays.append(
                _Rule(method.upper(), re.compile(path_pattern), times, seconds=seconds)
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._delays.clear()

    def reset(self) -> None:
        """Forget all state, calls, schema errors and faults; the server keeps running."""
        with self._lock:
            self._init_state()
            self._tokens = {}
            self.calls.clear()
            self.schema_errors.clear()
            self._faults.clear()
            self._delays.clear()

    def _take(self, rules: list[_Rule], method: str, path: str) -> _Rule | None:
        rule = next((r for r in rules if r.take(method, path)), None)
        rules[:] = [r for r in rules if r.remaining is None or r.remaining > 0]
        return rule

    # ---- request pipeline ----
    def _endpoint(self, name: str, scope: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            method, path = request.method, request.url.path
            parsed = parse_body(request.headers.get("content-type"), await request.body())
            problems = self._schemas.validate(method, path, parsed)
            call = self._record(request, parsed)
            with self._lock:
                self.schema_errors.extend(problems)
                fault = self._take(self._faults, method, path)
                delay = self._take(self._delays, method, path)
            try:
                if fault is not None:
                    response = views.fault_response(fault.status, fault.body)
                else:
                    response = self._answer(request, name, scope, parsed, problems)
            except Exception:
                call.status = 500  # a bug in the fake: Starlette answers 500, logs the traceback
                raise
            if delay is not None:
                await self._sleep(delay.seconds)
            call.status = response.status_code
            return response

        return endpoint

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up when the server is stopping so ``stop()`` stays quick."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            if self._server is None or self._server.should_exit:
                return
            await asyncio.sleep(min(left, 0.05))

    def _answer(
        self, request: Request, name: str, scope: str, parsed: ParsedBody, problems: list[str]
    ) -> Response:
        try:
            with self._lock:
                ctx = self._context(request, scope, parsed)
                if parsed.error:  # ActionDispatch::Http::Parameters::ParseError
                    raise ApiError(400, {"status": 400, "error": "Bad Request"})
                if problems:
                    raise ApiError(
                        422,
                        {
                            "error": "Request does not match Chatwoot's API schema: "
                            + "; ".join(problems)
                        },
                    )
                return views.to_response(getattr(self, name)(ctx))
        except ApiError as exc:
            return views.to_response((exc.status, exc.body))

    def _context(self, request: Request, scope: str, parsed: ParsedBody) -> Ctx:
        """Authenticate like Api::BaseController and Accounts::BaseController."""
        ctx = Ctx(
            user={},
            path=dict(request.path_params),
            query=dict(request.query_params),
            params=copy.deepcopy(parsed.params()),  # stored state must not alias `calls`
            files=parsed.files,
            base_url=self.base_url,
        )
        if scope == "public":
            return ctx
        token = (
            request.headers.get("api_access_token") or request.headers.get("api-access-token") or ""
        ).strip()
        if not token:  # devise: authenticate_user!
            raise ApiError(401, {"errors": [views.SIGN_IN]})
        user_id = self._tokens.get(token)
        if user_id is None:
            raise views.unauthorized(views.INVALID_TOKEN)
        ctx.user = self.users[user_id]
        if scope == "account":
            account_id = ctx.path["account_id"]
            if account_id not in self.accounts:
                raise views.not_found()
            role = ctx.user["roles"].get(account_id)
            if role is None:
                raise views.unauthorized(views.NOT_AUTHORIZED_ACCOUNT)
            ctx.account, ctx.administrator = self.accounts[account_id], role == "administrator"
        return ctx

    def _record(self, request: Request, parsed: ParsedBody) -> RecordedCall:
        headers = {
            k.lower(): (REDACTED if k.lower() in SECRET_HEADERS else v)
            for k, v in request.headers.items()
        }
        call = RecordedCall(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            json=parsed.json if parsed.kind == JSON_KIND else None,
            form=_recorded_form(parsed),
            status=0,
            headers=headers,
        )
        with self._lock:
            self.calls.append(call)
        return call

    # ---- public routes ----
    def serve_blob_redirect(self, ctx: Ctx) -> Response:
        """ActiveStorage's redirect URL: 302 to the blob's disk path."""
        attachment = self.blobs.get(ctx.path["signed_id"])
        if attachment is None or ctx.path["kind"] not in ("blobs", "representations"):
            raise views.not_found()
        return RedirectResponse(
            f"/rails/active_storage/disk/{attachment['key']}/{ctx.path['filename']}", 302
        )

    def serve_blob(self, ctx: Ctx) -> Response:
        attachment = self.blobs.get(ctx.path["key"])
        if attachment is None:
            raise views.not_found()
        return Response(attachment["data"], 200, media_type=attachment["content_type"])

    def route_not_found(self, ctx: Ctx) -> Response:
        raise views.not_found()


def run_forever(port: int = 0) -> None:
    """Serve a seeded fake until Ctrl-C (for benchmarks and manual curl demos)."""
    fake = FakeChatwoot(port=port)
    fake.start()
    account_id = fake.add_account("Acme")
    token = fake.add_user("Admin", {account_id: "administrator"}, email="admin@acme.test")
    print(f"fake Chatwoot listening on {fake.base_url}", flush=True)
    print(f"account id: {account_id}", flush=True)
    print(f"administrator api_access_token: {token}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    run_forever(parser.parse_args(argv).port)


if __name__ == "__main__":
    main()
