"""A fake Chatwoot that is a real HTTP server on 127.0.0.1, for tests and benchmarks.

    with FakeChatwoot() as cw:
        account_id = cw.add_account()
        token = cw.add_user("Ada", {account_id: "administrator"})
        httpx.get(f"{cw.base_url}/api/v1/profile", headers={"api_access_token": token})

Every request body is validated against our description of Chatwoot's API
(``contracts/chatwoot.json``; ``schema_errors``), every request is recorded (``calls``), and
faults can be injected per method + path regex (``fail_next``, ``set_delay``). Endpoint
behaviour lives in ``chatwoot_api.py`` / ``chatwoot_conversations.py``, JSON shapes in
``chatwoot_views.py``, body parsing and validation in ``chatwoot_schema.py``.

Manual use: ``python -m tests.fakes.chatwoot --port 3000`` (prints an account id and a token).
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from tests.fakes.contracts import contract_path
from tests.fakes.server import FakeServer
from tests.fakes.server import RecordedCall as RecordedCall  # re-exported for tests

DEFAULT_SWAGGER = contract_path("chatwoot")  # our description of Chatwoot's API, not the swagger
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
    ("PUT", ACC + "/contacts/{id:int}", "update_contact", "account"),
    ("GET", ACC + "/contacts/{id:int}/conversations", "contact_conversations", "account"),
    ("POST", ACC + "/contacts/{id:int}/contact_inboxes", "create_contact_inbox", "account"),
    ("POST", ACC + "/contact_inboxes/filter", "filter_contact_inboxes", "account"),
    ("POST", ACC + "/conversations", "create_conversation", "account"),
    ("GET", CONV, "show_conversation", "account"),
    ("POST", CONV + "/toggle_status", "toggle_status", "account"),
    ("GET", CONV + "/messages", "list_messages", "account"),
    ("POST", CONV + "/messages", "create_message", "account"),
    ("PATCH", CONV + "/messages/{id:int}", "update_message", "account"),
    (
        "POST",
        "/public/api/v1/inboxes/{inbox_identifier}/contacts/{contact_identifier}"
        "/conversations/{conversation_id:int}/toggle_typing",
        "public_toggle_typing",
        "public",
    ),
    ("GET", BLOB, "serve_blob_redirect", "public"),
    ("GET", "/rails/active_storage/disk/{key}/{filename:path}", "serve_blob", "public"),
]


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


class FakeChatwoot(ConversationEndpoints, FakeServer):
    """Chatwoot's application API (the parts Wootbridge uses), served by uvicorn in a thread."""

    label = "Chatwoot"
    secret_headers = SECRET_HEADERS

    def __init__(self, swagger_path: str | Path = DEFAULT_SWAGGER, port: int = 0) -> None:
        FakeServer.__init__(self, port)
        self._schemas = load_schema_book(str(Path(swagger_path).resolve()))
        self.schema_errors: list[str] = []
        self._init_state()
        self._tokens: dict[str, int] = {}
        routes = [
            Route(path, self._endpoint(name, scope), methods=[method])
            for method, path, name, scope in ROUTES
        ]
        routes.append(Route("/__fake/stats", self._stats, methods=["GET"]))
        routes.append(Route("/__fake/messages", self._messages_record, methods=["GET"]))
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

    async def _messages_record(self, request: Request) -> JSONResponse:
        """Every message as [conversation id, message id, content], for benchmark checks."""
        with self._lock:
            rows = [
                [m["conversation_id"], m["id"], m.get("content")] for m in self.messages.values()
            ]
        return JSONResponse(rows)

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
    def reset(self) -> None:
        """Forget all state, calls, schema errors and faults; the server keeps running."""
        with self._lock:
            self._init_state()
            self._tokens = {}
            self.calls.clear()
            self.schema_errors.clear()
            self._faults.clear()
            self._delays.clear()
            self._holds.clear()

    # ---- request pipeline ----
    def _endpoint(self, name: str, scope: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            method, path = request.method, request.url.path
            parsed = parse_body(request.headers.get("content-type"), await request.body())
            problems = self._schemas.validate(method, path, parsed)
            call = self._record(request, parsed)
            await self._hold(method, path)
            with self._lock:
                self.schema_errors.extend(problems)
                fault, delay = self._take_rules(method, path)
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
        json = parsed.json if parsed.kind == JSON_KIND else None
        return self._record_call(request, json, _recorded_form(parsed))

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
