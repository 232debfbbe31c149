"""A fake Meta Graph API (WhatsApp Cloud) that is a real HTTP server on 127.0.0.1.

    with FakeGraph() as graph:
        graph.add_phone_number("106540352242922", "EAAG-token")
        media_id = graph.add_media(b"\\xff\\xd8...", "image/jpeg")
        httpx.get(f"{graph.base_url}/{media_id}", headers={"Authorization": "Bearer EAAG-token"})

``base_url`` plays ``https://graph.facebook.com/v23.0``. Served, as Meta's v23.0 spec describes:
``GET``/``DELETE /{media-id}``, ``POST /{phone-number-id}/media`` (multipart upload),
``POST /{phone-number-id}/messages`` (body checked against our description of the API,
``contracts/graph.json``, by :mod:`tests.fakes.graph_contract`), and the short-lived download
URL ``GET /{media-id}`` hands out (``/whatsapp_business/attachments/?mid=..&ext=..&hash=..``,
like lookaside.fbsbx.com), which needs the same bearer token. Errors use Graph's envelope
``{"error": {"message", "type", "code", "error_subcode"?, "error_data"?, "fbtrace_id"}}`` and
Meta's HTTP statuses: an unknown or foreign object id is ``400`` code 100 subcode 33 (Graph
never says 404 for it), a bad token ``401`` code 190, an expired or forged download URL ``404``.
``GET /{waba-id}/message_templates`` lists a business account's templates (seeded with
``add_business_account``) a page at a time, as Graph pages an edge: ``limit`` (default 25,
capped by ``max_template_page_size``), ``after`` cursors, and ``paging.next``, the absolute URL
of the next page (absent on the last one). A template message sent from a number of a seeded
business account must name one of its APPROVED templates (else ``132001``).
``limit_throughput(number, n)`` enforces Meta's per-number throughput: a message call that
would be the n+1st in any one-second window is refused with ``130429`` (HTTP 400), as Meta does.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.fakes.chatwoot_schema import parse_multipart
from tests.fakes.graph_contract import BSUID, message_validators
from tests.fakes.graph_contract import DEFAULT_SPEC as DEFAULT_SPEC  # re-exported for tests
from tests.fakes.graph_contract import message_problems as message_problems  # re-exported
from tests.fakes.server import HOST, FakeServer, RecordedCall, _Rule, take_rule, unused_port

VERSION = "v23.0"
DOWNLOAD_PATH = "/whatsapp_business/attachments/"
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
WA_DETAILS = {
    131047: "Message failed to send because more than 24 hours have passed since the "
    "customer last replied to this number.",
    131056: "Too many messages sent from the sender phone number to the same recipient "
    "phone number in a short period of time.",
    130429: "Cloud API message throughput has been reached.",
}
# code -> (HTTP status Meta answers with, message); from Meta's error-codes reference
KNOWN_ERRORS: dict[int, tuple[int, str]] = {
    1: (500, "An unknown error occurred"),
    2: (503, "Service temporarily unavailable"),
    10: (403, "(#10) Application does not have permission for this action"),
    100: (400, "(#100) Invalid parameter"),
    190: (401, "Invalid OAuth access token - Cannot parse access token"),
    2500: (400, "Unknown path components"),
    130429: (400, "(#130429) Rate limit hit"),
    132001: (400, "(#132001) Template name does not exist in the translation"),
    131000: (500, "(#131000) Something went wrong"),
    131026: (400, "(#131026) Message undeliverable"),
    131047: (400, "(#131047) Re-engagement message"),
    131056: (400, "(#131056) (Business Account, Consumer Account) pair rate limit hit"),
}
STATUS_CODES = {400: 100, 401: 190, 403: 10, 429: 130429, 500: 1, 503: 2}


def graph_error(
    code: int, message: str | None = None, *, subcode: int | None = None, details: str | None = None
) -> dict[str, Any]:
    """Graph's error envelope for ``code`` (message and WhatsApp details from the catalogue)."""
    error: dict[str, Any] = {
        "message": message or KNOWN_ERRORS.get(code, (0, f"(#{code}) Error"))[1],
        "type": "GraphMethodException" if subcode == 33 else "OAuthException",
        "code": code,
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    details = details or WA_DETAILS.get(code)
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    error["fbtrace_id"] = secrets.token_urlsafe(8)
    return {"error": error}


def no_such_object(object_id: str, method: str = "get") -> GraphError:
    """What Graph says for an id that does not exist or that this token may not see."""
    return GraphError(
        400,
        graph_error(
            100,
            (
                f"Unsupported {method} request. Object with ID '{object_id}' does not exist, "
                "cannot be loaded due to missing permissions, or does not support this operation."
            ),
            subcode=33,
        ),
    )


def signed_webhook(body: dict[str, Any], app_secret: str) -> tuple[bytes, dict[str, str]]:
    """A webhook body as Meta POSTs it: the raw bytes and its ``X-Hub-Signature-256`` header."""
    raw = json.dumps(body, separators=(",", ":")).encode()
    digest = hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}


def status_webhook(
    phone_number_id: str,
    message_id: str,
    recipient_id: str,
    status: str,
    *,
    error_code: int | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    """A ``statuses[]`` webhook body (shape of tests/data/whatsapp_cloud/status_*.json)."""
    entry: dict[str, Any] = {
        "id": message_id,
        "status": status,
        "recipient_id": recipient_id,
        "timestamp": str(timestamp or int(time.time())),
    }
    if error_code is not None:
        title = KNOWN_ERRORS.get(error_code, (0, "Error"))[1].split(") ", 1)[-1]
        entry["errors"] = [
            {
                "code": error_code,
                "title": title,
                "message": title,
                "error_data": {"details": WA_DETAILS.get(error_code, title)},
            }
        ]
    value = {
        "messaging_product": "whatsapp",
        "statuses": [entry],
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "419561257915477", "changes": [{"value": value, "field": "messages"}]}],
    }


# ---- the server ----


class GraphError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status, self.body = status, body


@dataclass
class StoredMedia:
    media_id: str
    data: bytes
    mime_type: str
    phone_number_id: str | None = None  # owner; None: any registered token may read it

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class SentMessage:
    """A message Graph accepted. ``to`` is where it went (``to`` or ``recipient``);
    ``dropped``: answered 200 but never delivered, as Meta does with a BSUID in ``to``."""

    phone_number_id: str
    message_id: str
    to: str
    body: dict[str, Any]
    dropped: bool = False


@dataclass
class BusinessAccount:
    waba_id: str
    access_token: str
    templates: list[dict[str, Any]]
    phone_numbers: tuple[str, ...] = ()


def _cursor(offset: int) -> str:
    """Graph's cursors are opaque base64 strings; these encode the position."""
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _cursor_offset(after: str | None) -> int:
    """Where the page after the cursor ``after`` starts (0 without one)."""
    if not after:
        return 0
    try:
        text = base64.urlsafe_b64decode(after.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise GraphError(400, graph_error(100, "(#100) Invalid cursor")) from None
    if not text.startswith("offset:") or not text[7:].isdigit():
        raise GraphError(400, graph_error(100, "(#100) Invalid cursor"))
    return int(text[7:]) + 1


@dataclass
class _Request:
    path: dict[str, str]
    query: dict[str, str]
    token: str
    content_type: str
    body: bytes


def _digits(number: str) -> str:
    return re.sub(r"\D", "", number)


class FakeGraph(FakeServer):
    """The Graph endpoints a WhatsApp Cloud integration uses, served by uvicorn in a thread."""

    label = "Graph"
    # fail_next's ``body``: None for Graph's default envelope for the status, an int for that
    # error code's envelope (e.g. 131056, 130429), or a dict/str sent as is (fault_response).

    def __init__(self, spec_path: str | Path = DEFAULT_SPEC, port: int = 0) -> None:
        self.spec_path = str(Path(spec_path).resolve())
        message_validators(self.spec_path)  # fail early on a broken spec
        super().__init__(port)
        self.url_ttl = 300.0
        self.download_redirects = 0
        self.reset()
        v = VERSION
        routes = [
            Route(f"/{v}/{{object_id}}", self._endpoint(self.get_media), methods=["GET"]),
            Route(f"/{v}/{{object_id}}", self._endpoint(self.delete_media), methods=["DELETE"]),
            Route(f"/{v}/{{object_id}}/media", self._endpoint(self.upload_media), methods=["POST"]),
            Route(
                f"/{v}/{{object_id}}/messages", self._endpoint(self.send_message), methods=["POST"]
            ),
            Route(
                f"/{v}/{{object_id}}/message_templates",
                self._endpoint(self.list_templates),
                methods=["GET"],
            ),
            Route(DOWNLOAD_PATH, self._endpoint(self.download), methods=["GET"]),
            Route("/__fake/sent", self._sent_record, methods=["GET"]),
            Route("/{rest:path}", self._endpoint(self.unknown_path), methods=ALL_METHODS),
        ]
        self.app = Starlette(routes=routes)

    # ---- lifecycle (FakeServer's: a restart keeps the port and the state) ----
    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``, only while serving (unlike the other fakes)."""
        if self._thread is None:
            raise RuntimeError("FakeGraph is not started")
        return f"http://{HOST}:{self._port}"

    @property
    def base_url(self) -> str:
        """Plays ``https://graph.facebook.com/v23.0``."""
        return f"{self.origin}/{VERSION}"

    @staticmethod
    def unused_url() -> str:
        """A base URL (with the version) on 127.0.0.1 where nothing listens."""
        return f"http://{HOST}:{unused_port()}/{VERSION}"

    # ---- seeding and faults ----
    def reset(self) -> None:
        """Forget numbers, media, sent messages, calls and faults; the server keeps running."""
        with self._lock:
            self.phone_numbers: dict[str, str] = {}  # phone number id -> access token
            self.media: dict[str, StoredMedia] = {}
            self.sent: list[SentMessage] = []
            self.read_receipts: list[dict[str, Any]] = []
            self.calls: list[RecordedCall] = []
            self.schema_errors: list[str] = []
            self._wa_ids: dict[str, str] = {}
            self._faults: list[_Rule] = []
            self._delays: list[_Rule] = []
            self._holds: list[_Rule] = []
            self._recipient_faults: list[_Rule] = []
            self._url_key = os.urandom(16)
            self.business_accounts: dict[str, BusinessAccount] = {}
            self.max_template_page_size = 25
            self._throughput: dict[str, int] = {}  # phone number id -> messages per second
            self.message_times: dict[str, list[float]] = {}  # accepted calls, monotonic time
            self.throttled: list[tuple[str, float]] = []  # (number, time) answered 130429

    def add_phone_number(self, phone_number_id: str, access_token: str) -> None:
        with self._lock:
            self.phone_numbers[phone_number_id] = access_token

    def add_business_account(
        self,
        waba_id: str,
        access_token: str,
        templates: list[dict[str, Any]],
        phone_number_ids: tuple[str, ...] = (),
    ) -> None:
        """A WhatsApp Business Account whose ``templates`` (Meta's shape) ``access_token`` may
        list; ``phone_number_ids`` are its numbers, whose template sends are checked."""
        with self._lock:
            self.business_accounts[waba_id] = BusinessAccount(
                waba_id, access_token, copy.deepcopy(templates), tuple(phone_number_ids)
            )

    def add_media(self, data: bytes, mime_type: str, phone_number_id: str | None = None) -> str:
        """Store media (as an inbound message would); return its id."""
        with self._lock:
            media_id = str(secrets.randbelow(9 * 10**15) + 10**15)
            self.media[media_id] = StoredMedia(media_id, data, mime_type, phone_number_id)
            return media_id

    def set_wa_id(self, number: str, wa_id: str) -> None:
        """Answer ``wa_id`` for sends to ``number`` (e.g. a Brazilian number without the 9)."""
        with self._lock:
            self._wa_ids[_digits(number)] = wa_id

    def expire_media_urls(self) -> None:
        """Every download URL handed out so far now answers 404, as after its 5 minutes."""
        with self._lock:
            self._url_key = os.urandom(16)

    def fail_recipient(self, to: str, status: int, body: Any = None, times: int = 1) -> None:
        """Like :meth:`fail_next` for sends whose ``to`` has the digits of ``to``."""
        with self._lock:
            pattern = re.compile(f"^{re.escape(_digits(to))}$")
            self._recipient_faults.append(_Rule("POST", pattern, times, status=status, body=body))

    def clear_faults(self) -> None:
        with self._lock:
            super().clear_faults()
            self._recipient_faults.clear()

    def limit_throughput(self, phone_number_id: str, messages_per_second: int) -> None:
        """Enforce Meta's throughput on the number: a ``POST /{id}/messages`` (any message,
        read receipts included, as Meta counts them) that would make more than
        ``messages_per_second`` accepted calls in any one-second window (sliding, by the time
        the fake handles it) is refused with 130429 and recorded in :attr:`throttled`."""
        with self._lock:
            self._throughput[phone_number_id] = messages_per_second

    def _over_throughput(self, phone_number_id: str) -> bool:
        """Record one message call now; True when it is over the number's limit (not counted)."""
        now = time.monotonic()
        times = self.message_times.setdefault(phone_number_id, [])
        limit = self._throughput.get(phone_number_id)
        if limit is not None:
            recent = sum(1 for t in reversed(times[-limit:]) if now - t < 1.0)
            if recent >= limit:
                return True
        times.append(now)
        return False

    # ---- request pipeline ----
    def _endpoint(self, handler: Callable[[_Request], Response]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            method, path = request.method, request.url.path
            body = await request.body()
            call = self._record(request, body)
            await self._hold(method, path)
            fault, delay = self._take_rules(method, path)
            if fault is not None:
                response = fault_response(fault.status, fault.body)
            else:
                auth = request.headers.get("authorization", "")
                ctx = _Request(
                    dict(request.path_params),
                    dict(request.query_params),
                    auth[7:].strip() if auth[:7].lower() == "bearer " else "",
                    request.headers.get("content-type", ""),
                    body,
                )
                try:
                    with self._lock:
                        response = handler(ctx)
                except GraphError as exc:
                    response = JSONResponse(exc.body, exc.status)
            if delay is not None:
                await self._sleep(delay.seconds)
            call.status = response.status_code
            return response

        return endpoint

    def _record(self, request: Request, body: bytes) -> RecordedCall:
        ctype = request.headers.get("content-type", "")
        data: Any = None
        form: dict[str, Any] | None = None
        if ctype.startswith("application/json"):
            try:
                data = json.loads(body)
            except ValueError:
                data = None
        elif ctype.startswith("multipart/form-data"):
            form = _form_summary(body, ctype)
        return self._record_call(request, data, form)

    def _authorize(self, ctx: _Request, phone_number_id: str | None = None) -> None:
        """401 for a missing or unknown token; 400/100/33 when it may not use this number."""
        if ctx.token not in self.phone_numbers.values():
            raise GraphError(
                401,
                graph_error(
                    190,
                    None if ctx.token else "An access token is required to request this resource.",
                ),
            )
        if phone_number_id is not None and self.phone_numbers.get(phone_number_id) != ctx.token:
            raise no_such_object(phone_number_id, "post")

    def _media(self, ctx: _Request, media_id: str, method: str = "get") -> StoredMedia:
        self._authorize(ctx)
        media = self.media.get(media_id)
        owner = None if media is None else media.phone_number_id
        if media is None or (owner is not None and self.phone_numbers.get(owner) != ctx.token):
            raise no_such_object(media_id, method)
        return media

    def _signature(self, media_id: str, expires: int) -> str:
        message = f"{media_id}:{expires}".encode()
        return hmac.new(self._url_key, message, hashlib.sha256).hexdigest()[:32]

    # ---- endpoints ----
    def get_media(self, ctx: _Request) -> Response:
        media = self._media(ctx, ctx.path["object_id"])
        wanted = ctx.query.get("phone_number_id")  # "only if the media belongs to this number"
        if wanted and media.phone_number_id not in (None, wanted):
            raise no_such_object(media.media_id)
        expires = int(time.time() + self.url_ttl)
        query = urlencode(
            {
                "mid": media.media_id,
                "ext": expires,
                "hash": self._signature(media.media_id, expires),
            }
        )
        return JSONResponse(
            {
                "url": f"{self.origin}{DOWNLOAD_PATH}?{query}",
                "mime_type": media.mime_type,
                "sha256": media.sha256,
                "file_size": str(len(media.data)),
                "id": media.media_id,
                "messaging_product": "whatsapp",
            }
        )

    def delete_media(self, ctx: _Request) -> Response:
        del self.media[self._media(ctx, ctx.path["object_id"], "delete").media_id]
        return JSONResponse({"success": True})

    def download(self, ctx: _Request) -> Response:
        self._authorize(ctx)
        media_id, expires = ctx.query.get("mid", ""), ctx.query.get("ext", "")
        media = self.media.get(media_id)
        valid = expires.isdigit() and hmac.compare_digest(
            self._signature(media_id, int(expires or 0)), ctx.query.get("hash", "")
        )
        if media is None or not valid or int(expires) < time.time():
            return Response(b"", 404)
        hop = int(ctx.query["hop"]) if ctx.query.get("hop", "").isdigit() else 0
        if hop < self.download_redirects:
            query = urlencode({**ctx.query, "hop": hop + 1})
            return RedirectResponse(f"{DOWNLOAD_PATH}?{query}", 302)
        return Response(media.data, 200, media_type=media.mime_type)

    def upload_media(self, ctx: _Request) -> Response:
        phone_number_id = ctx.path["object_id"]
        self._authorize(ctx, phone_number_id)
        try:
            fields, files = parse_multipart(ctx.body, ctx.content_type)
        except ValueError:
            fields, files = {}, []
        upload = next((f for f in files if f.field == "file"), None)
        if fields.get("messaging_product") != "whatsapp":
            raise GraphError(
                400, graph_error(100, "(#100) The parameter messaging_product is required.")
            )
        if upload is None:
            raise GraphError(400, graph_error(100, "(#100) The parameter file is required."))
        mime_type = str(fields.get("type") or upload.content_type)
        return JSONResponse({"id": self.add_media(upload.data, mime_type, phone_number_id)})

    async def _sent_record(self, request: Request) -> JSONResponse:
        """Every message accepted, as ``[to, text body or null]`` in the order accepted; for
        benchmarks that run the fake in another process (not Graph API)."""
        with self._lock:
            rows = [[s.to, (s.body.get("text") or {}).get("body")] for s in self.sent]
        return JSONResponse(rows)

    def send_message(self, ctx: _Request) -> Response:
        phone_number_id = ctx.path["object_id"]
        self._authorize(ctx, phone_number_id)
        if self._over_throughput(phone_number_id):
            self.throttled.append((phone_number_id, time.monotonic()))
            raise GraphError(400, graph_error(130429))
        body: Any = None
        try:
            body = json.loads(ctx.body) if "json" in ctx.content_type else None
        except ValueError:
            body = None
        problems = message_problems(body, self.spec_path)
        if problems:
            self.schema_errors.extend(problems)
            raise GraphError(400, graph_error(100, details="; ".join(problems)))
        if body.get("status") == "read":
            self.read_receipts.append(copy.deepcopy(body))
            return JSONResponse({"success": True})
        if body.get("type") == "template":
            self._check_template(phone_number_id, body["template"])
        # Meta: ``to`` wins when both are given; a BSUID in ``to`` is accepted and dropped
        to = str(body["to"] if "to" in body else body["recipient"])
        fault = take_rule(self._recipient_faults, "POST", _digits(to) or to)
        if fault is not None:
            return fault_response(fault.status, fault.body)
        message_id = "wamid." + secrets.token_urlsafe(36)
        dropped = "to" in body and BSUID.fullmatch(to.strip()) is not None
        sent = SentMessage(phone_number_id, message_id, to, copy.deepcopy(body), dropped)
        self.sent.append(sent)
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [self._contact_of(body, to)],
                "messages": [{"id": message_id}],
            }
        )

    def _contact_of(self, body: dict[str, Any], to: str) -> dict[str, str]:
        """``contacts[0]`` of the answer: ``wa_id`` for a number, ``user_id`` for a BSUID."""
        if "to" not in body:
            return {"input": to, "user_id": to}
        return {"input": to, "wa_id": self._wa_ids.get(_digits(to), _digits(to))}

    @property
    def delivered(self) -> list[SentMessage]:
        """The sent messages that would reach someone (not silently dropped)."""
        return [s for s in self.sent if not s.dropped]

    def list_templates(self, ctx: _Request) -> Response:
        """``GET /{waba-id}/message_templates``: one page of the account's templates."""
        waba_id = ctx.path["object_id"]
        self._authorize_any(ctx)
        account = self.business_accounts.get(waba_id)
        if account is None or account.access_token != ctx.token:
            raise no_such_object(waba_id)
        limit = int(ctx.query["limit"]) if ctx.query.get("limit", "").isdigit() else 25
        size = max(1, min(limit, self.max_template_page_size))
        start = _cursor_offset(ctx.query.get("after"))
        page = account.templates[start : start + size]
        body: dict[str, Any] = {"data": copy.deepcopy(page)}
        if page:
            body["paging"] = {
                "cursors": {"before": _cursor(start), "after": _cursor(start + len(page) - 1)}
            }
        if start + size < len(account.templates):
            query = urlencode({"limit": size, "after": _cursor(start + size - 1)})
            body["paging"]["next"] = f"{self.base_url}/{waba_id}/message_templates?{query}"
        return JSONResponse(body)

    def _authorize_any(self, ctx: _Request) -> None:
        """401 for a missing or unknown token (a number's or a business account's)."""
        known = {a.access_token for a in self.business_accounts.values()}
        if ctx.token not in known and ctx.token not in self.phone_numbers.values():
            raise GraphError(401, graph_error(190))

    def _check_template(self, phone_number_id: str, template: dict[str, Any]) -> None:
        """132001 when the number's business account has no such APPROVED template."""
        account = next(
            (a for a in self.business_accounts.values() if phone_number_id in a.phone_numbers),
            None,
        )
        if account is None:
            return
        name, code = template.get("name"), (template.get("language") or {}).get("code")
        if not any(
            t.get("name") == name and t.get("language") == code and t.get("status") == "APPROVED"
            for t in account.templates
        ):
            details = f"template name ({name}) does not exist in {code}"
            raise GraphError(400, graph_error(132001, details=details))

    def unknown_path(self, ctx: _Request) -> Response:
        raise GraphError(400, graph_error(2500, f"Unknown path components: /{ctx.path['rest']}"))


def _form_summary(body: bytes, content_type: str) -> dict[str, Any]:
    try:
        fields, files = parse_multipart(body, content_type)
    except ValueError:
        return {}
    for upload in files:
        fields[upload.field] = {
            "filename": upload.filename,
            "content_type": upload.content_type,
            "size": len(upload.data),
        }
    return fields


def fault_response(status: int, body: Any) -> Response:
    """An injected answer: Graph's envelope for the status or code, or ``body`` as given."""
    if body is None:
        code = STATUS_CODES.get(status, 1)
        body = graph_error(100, subcode=33) if status == 404 else graph_error(code)
    elif isinstance(body, int):
        body = graph_error(body)
    if isinstance(body, str | bytes):
        return Response(body, status, media_type="text/plain")
    return JSONResponse(body, status)
