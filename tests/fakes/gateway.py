"""A fake RyzeAPI-compatible WhatsApp gateway: a real HTTP server on 127.0.0.1, for tests.

    with FakeGateway() as gw:
        gw.add_instance("suporte", "gw-token")
        httpx.post(f"{gw.base_url}/api/message/text/suporte", headers={"token": "gw-token"},
                   json={"number": "5511999998888", "message": "oi"})
        assert gw.sent[0].body["message"] == "oi"

It serves the three send endpoints the bridge uses (text, media, reaction) and the chat
endpoints for presence and read receipts (``presences``, ``reads``), checks the
``token`` header and the body shape as RyzeAPI documents them, and answers with RyzeAPI's
envelopes (``tests/fakes/RYZEAPI_NOTES.md``). It also serves inbound media bytes from
``/media/<id>`` (:meth:`FakeGateway.add_media`). A sent media is downloaded from its
``mediaUrl``, as the real gateway does, so a URL the gateway could not fetch fails the send.
Every request is recorded in ``calls`` (the token is never stored), every accepted send in
``sent``. Faults and delays can be injected per method + path regex.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.gateway_samples import webhook_body
from tests.fakes.server import REDACTED, FakeServer, RecordedCall, _Rule

__all__ = ["REDACTED", "FakeGateway", "RecordedCall", "SentMessage", "webhook_body"]

SECRET_HEADERS = ("token", "authorization", "cookie")
MEDIA_TYPES = ("image", "video", "document", "audio")
PRESENCE_STATES = ("typing", "recording", "pause", "paused")
MISSING_TOKEN = "Missing token in header, Authorization header, or query parameter"
_NUMBER = re.compile(
    r"^(\d{8,15}(@s\.whatsapp\.net)?|\d+@(lid|newsletter)|[\d-]+@g\.us|status@broadcast)$"
)
_STATUS_TEXT = {
    400: "Bad Request",
    401: "Invalid token",
    403: "Forbidden",
    404: "Not Found",
    429: "Rate limit exceeded. Try again later.",
    500: "Internal server error",
    503: "Instance is not connected to WhatsApp",
}


@dataclass(frozen=True)
class SentMessage:
    """A send the fake accepted: ``kind`` is ``text``, ``media`` or ``reaction``."""

    instance: str
    kind: str
    number: str
    message_id: str
    body: dict[str, Any]
    media_bytes: bytes | None = None


@dataclass(frozen=True)
class ChatCall:
    """An accepted presence or read-receipt call: the instance, the chat and the body."""

    instance: str
    number: str
    body: dict[str, Any]


class GatewayError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"success": False, "error": {"message": message}}, status)


def _require(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise GatewayError(400, f"{field} is required")
    return value.strip()


def _jid(number: str) -> str:
    return number if "@" in number else f"{number}@s.whatsapp.net"


class FakeGateway(FakeServer):
    """RyzeAPI's send endpoints for configured instances, served by uvicorn in a thread."""

    label = "gateway"
    secret_headers = SECRET_HEADERS

    def __init__(self, port: int = 0, fetch_media: bool = True) -> None:
        super().__init__(port)
        self.fetch_media = fetch_media
        self.sent: list[SentMessage] = []
        self.revoked: list[str] = []  # message ids deleted for everyone (DELETE /api/chat/delete)
        self._tokens: dict[str, str] = {}  # token -> instance
        self._disconnected: set[str] = set()
        self._media: dict[str, tuple[bytes, str]] = {}
        self.presences: list[ChatCall] = []  # accepted POST /api/chat/presence
        self.reads: list[ChatCall] = []  # accepted POST /api/chat/markRead
        sends = {
            "text": self._send_text,
            "media": self._send_media,
            "reaction": self._send_reaction,
        }
        self.app = Starlette(
            routes=[
                *(
                    Route(
                        f"/api/message/{kind}/{{instance}}",
                        self._endpoint(handler),
                        methods=["POST"],
                    )
                    for kind, handler in sends.items()
                ),
                Route(
                    "/api/chat/presence/{instance}",
                    self._endpoint(self._presence),
                    methods=["POST"],
                ),
                Route(
                    "/api/chat/markRead/{instance}",
                    self._endpoint(self._mark_read),
                    methods=["POST"],
                ),
                Route(
                    "/api/chat/delete/{instance}",
                    self._endpoint(self._delete_message),
                    methods=["DELETE"],
                ),
                Route(
                    "/media/{media_id}",
                    self._endpoint(self._serve_media, auth=False),
                    methods=["GET", "HEAD"],
                ),
                Route(
                    "/{path:path}",
                    self._endpoint(self._not_found, auth=False),
                    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                ),
            ]
        )

    # ---- seeding ----
    def add_instance(self, name: str, token: str) -> None:
        with self._lock:
            self._tokens[token] = name

    def set_connected(self, name: str, connected: bool) -> None:
        """A disconnected instance answers sends with 503, as RyzeAPI does."""
        with self._lock:
            (self._disconnected.discard if connected else self._disconnected.add)(name)

    def add_media(self, data: bytes, mimetype: str) -> str:
        """Serve ``data`` at a new ``/media/<id>`` URL (an inbound attachment's ``url``)."""
        media_id = secrets.token_hex(8)
        with self._lock:
            self._media[media_id] = (data, mimetype)
        return f"{self.base_url}/media/{media_id}"

    def webhook_body(
        self, event: str, data: Any, instance: str, token: str | None = None
    ) -> dict[str, Any]:
        """The envelope this gateway would POST; ``token`` defaults to the instance's."""
        if token is None:
            with self._lock:
                token = next(t for t, name in self._tokens.items() if name == instance)
        return webhook_body(event, data, instance, token, self.base_url)

    def sent_to(self, number: str) -> list[SentMessage]:
        with self._lock:
            return [m for m in self.sent if m.number == number]

    # ---- faults ----
    def reset(self) -> None:
        """Forget instances, media, calls, sends and faults; the server keeps running."""
        with self._lock:
            self._tokens.clear()
            self._disconnected.clear()
            self._media.clear()
            self.presences.clear()
            self.reads.clear()
            self.calls.clear()
            self.sent.clear()
            self.revoked.clear()
            self.clear_faults()

    # ---- request pipeline ----
    def _endpoint(
        self, handler: Callable[[Request, Any], Awaitable[Response]], auth: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            method, path = request.method, request.url.path
            raw = await request.body()
            try:
                payload: Any = json.loads(raw) if raw else None
                bad_json = False
            except ValueError:
                payload, bad_json = None, True
            call = self._record(request, payload)
            await self._hold(method, path)
            fault, delay = self._take_rules(method, path)
            try:
                if fault is not None:
                    response = self._fault_response(fault)
                else:
                    response = await self._answer(request, handler, auth, payload, bad_json)
            except Exception:
                call.status = 500
                raise
            if delay is not None:
                await self._sleep(delay.seconds)
            call.status = response.status_code
            return response

        return endpoint

    @staticmethod
    def _fault_response(fault: _Rule) -> Response:
        if fault.body is None:
            return _error(fault.status, _STATUS_TEXT.get(fault.status, "Internal server error"))
        if isinstance(fault.body, bytes | str):
            return Response(fault.body, fault.status)
        return JSONResponse(fault.body, fault.status)

    async def _answer(
        self,
        request: Request,
        handler: Callable[[Request, Any], Awaitable[Response]],
        auth: bool,
        payload: Any,
        bad_json: bool,
    ) -> Response:
        try:
            if auth:
                self._authenticate(request)
                if bad_json or not isinstance(payload, dict):
                    raise GatewayError(400, "Invalid request body")
            return await handler(request, payload)
        except GatewayError as exc:
            return _error(exc.status, exc.message)

    def _authenticate(self, request: Request) -> None:
        """RyzeAPI's order: token present (401), token known (401), instance (404), owner (403)."""
        bearer = request.headers.get("authorization", "")
        token = (
            request.headers.get("token")
            or bearer.removeprefix("Bearer ").strip()
            or request.query_params.get("token")
            or ""
        ).strip()
        if not token:
            raise GatewayError(401, MISSING_TOKEN)
        instance = request.path_params["instance"]
        with self._lock:
            owner = self._tokens.get(token)
            known = instance in self._tokens.values()
            connected = instance not in self._disconnected
        if owner is None:
            raise GatewayError(401, "Invalid token")
        if not known:
            raise GatewayError(404, "Instance not found")
        if owner != instance:
            raise GatewayError(403, "Instance token does not match this instance")
        if not connected:
            raise GatewayError(503, "Instance is not connected to WhatsApp")

    def _record(self, request: Request, payload: Any) -> RecordedCall:
        query = {
            k: (REDACTED if k.lower() == "token" else v) for k, v in request.query_params.items()
        }
        return self._record_call(request, payload, query=query)

    # ---- endpoints ----
    def _number(self, body: dict[str, Any]) -> str:
        number = _require(body, "number")
        if not _NUMBER.match(number):
            raise GatewayError(400, "Invalid number format")
        return number

    def _reply_to(self, body: dict[str, Any]) -> str | None:
        reply = body.get("replyTo")
        if reply is not None and (not isinstance(reply, str) or not reply.strip()):
            raise GatewayError(400, "replyTo must be a message id")
        return reply

    def _accept(
        self,
        request: Request,
        kind: str,
        number: str,
        body: dict[str, Any],
        data: dict[str, Any],
        message: str = "Message sent successfully",
        media_bytes: bytes | None = None,
    ) -> Response:
        message_id = "3EB0" + secrets.token_hex(9).upper()
        instance = request.path_params["instance"]
        with self._lock:
            self.sent.append(
                SentMessage(instance, kind, number, message_id, dict(body), media_bytes)
            )
        chat_type = "group" if number.endswith("@g.us") else "private"
        echo = {
            "messageId": message_id,
            "direction": "outgoing",
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "chat": {"jid": _jid(number), "type": chat_type},
            "sender": {"name": instance},
            **data,
        }
        return JSONResponse({"success": True, "message": message, "status": "sent", "data": echo})

    async def _send_text(self, request: Request, body: dict[str, Any]) -> Response:
        number, text = self._number(body), _require(body, "message")
        reply = self._reply_to(body)
        data: dict[str, Any] = {"messageType": "text", "content": text}
        if reply:
            data["replyTo"] = {"messageId": reply}
        return self._accept(request, "text", number, body, data)

    async def _send_media(self, request: Request, body: dict[str, Any]) -> Response:
        number, reply = self._number(body), self._reply_to(body)
        media_type = body.get("mediaType")
        if media_type not in MEDIA_TYPES:
            raise GatewayError(400, "mediaType must be one of: image, video, document, audio")
        url, b64 = body.get("mediaUrl"), body.get("mediaBase64")
        if bool(url) == bool(b64):
            raise GatewayError(400, "send either mediaUrl or mediaBase64")
        for field, value in (("fileName", body.get("fileName")), ("message", body.get("message"))):
            if value is not None and not isinstance(value, str):
                raise GatewayError(400, f"{field} must be a string")
        data_bytes, mime = await self._media_source(str(url or b64), body.get("mimeType"))
        data: dict[str, Any] = {
            "messageType": media_type,
            "content": body.get("message") or "",
            "mediaUrl": f"https://mmg.whatsapp.net/fake/{secrets.token_hex(6)}",
            "mediaMimeType": mime,
            "mediaSize": len(data_bytes or b""),
        }
        if reply:
            data["replyTo"] = {"messageId": reply}
        return self._accept(request, "media", number, body, data, media_bytes=data_bytes)

    async def _media_source(self, source: str, mime: Any) -> tuple[bytes | None, str]:
        """The bytes behind ``mediaUrl``/``mediaBase64`` and their mime type."""
        default = mime if isinstance(mime, str) and mime else "application/octet-stream"
        if not source.startswith(("http://", "https://")):
            try:
                payload = source.split(",", 1)[-1] if source.startswith("data:") else source
                return base64.b64decode(payload, validate=True), default
            except (binascii.Error, ValueError):
                raise GatewayError(400, "Invalid base64 media") from None
        if not self.fetch_media:
            return None, default
        try:
            async with httpx.AsyncClient(
                timeout=5, follow_redirects=True, trust_env=False
            ) as client:
                response = await client.get(source)
        except httpx.HTTPError:
            raise GatewayError(400, "Failed to download media from URL") from None
        if response.status_code != 200:
            raise GatewayError(400, "Failed to download media from URL")
        header = response.headers.get("content-type", "").split(";")[0].strip()
        return response.content, (mime if isinstance(mime, str) and mime else header or default)

    async def _send_reaction(self, request: Request, body: dict[str, Any]) -> Response:
        number, target = self._number(body), _require(body, "messageId")
        emoji = _require(body, "reaction")
        from_me = body.get("fromMe", False)
        if not isinstance(from_me, bool):
            raise GatewayError(400, "fromMe must be a boolean")
        if number.endswith("@g.us") and not from_me and not body.get("participant"):
            raise GatewayError(400, "missing_participant")
        removed = emoji == "remove"
        data = {
            "messageType": "reaction",
            "content": "" if removed else emoji,
            "replyTo": {"messageId": target},
        }
        message = "Reaction removed successfully" if removed else "Reaction sent successfully"
        return self._accept(request, "reaction", number, body, data, message)

    # ---- chat endpoints: presence and read receipts (docs.ryzeapi.cloud chat/presence, mark-read)
    def _chat_number(self, body: dict[str, Any]) -> str:
        number = body.get("number")
        if not isinstance(number, str) or not number.strip():
            raise GatewayError(400, "Number is required")
        return self._number(body)

    async def _presence(self, request: Request, body: dict[str, Any]) -> Response:
        """``{"number", "state": typing|recording|pause|paused, "duration"?}``."""
        number = self._chat_number(body)
        state = body.get("state")
        if not isinstance(state, str) or not state.strip():
            raise GatewayError(400, "State is required. Use 'typing', 'recording', or 'pause'")
        if state.strip().lower() not in PRESENCE_STATES:
            raise GatewayError(400, "Invalid state. Use 'typing', 'recording', or 'pause'")
        duration = body.get("duration")
        if duration is not None and (not isinstance(duration, int) or isinstance(duration, bool)):
            raise GatewayError(400, "Invalid request body")
        with self._lock:
            self.presences.append(ChatCall(request.path_params["instance"], number, dict(body)))
        return JSONResponse(
            {"success": True, "message": "Presence sent successfully", "chat_jid": _jid(number)}
        )

    async def _mark_read(self, request: Request, body: dict[str, Any]) -> Response:
        """``{"messageId", "number", "sender"?}``; ``sender`` is required in groups."""
        message_id = _require(body, "messageId")
        number = self._chat_number(body)
        if number.endswith("@g.us") and not body.get("sender"):
            raise GatewayError(400, "sender is required for group messages")
        with self._lock:
            self.reads.append(ChatCall(request.path_params["instance"], number, dict(body)))
        return JSONResponse(
            {
                "success": True,
                "message": "Message marked as read successfully",
                "message_id": message_id,
                "chat_jid": _jid(number),
            }
        )

    # ---- deleting a sent message (docs.ryzeapi.cloud chat/delete-message) ----
    async def _delete_message(self, request: Request, body: dict[str, Any]) -> Response:
        """``{"messageId", "deleteForEveryone"?}``: only a message the gateway knows (here: one
        it sent); for everyone it is revoked (recorded in ``revoked``)."""
        message_id = body.get("messageId")
        if not isinstance(message_id, str) or not message_id.strip():
            raise GatewayError(400, "MessageID is required")
        for_everyone = body.get("deleteForEveryone", False)
        if not isinstance(for_everyone, bool):
            raise GatewayError(400, "Invalid request body")
        instance = request.path_params["instance"]
        with self._lock:
            if not any(m.message_id == message_id and m.instance == instance for m in self.sent):
                raise GatewayError(404, "message not found")
            if for_everyone:
                self.revoked.append(message_id)
        return JSONResponse(
            {
                "success": True,
                "message": "Message deleted for everyone" if for_everyone else "Message deleted",
                "data": {
                    "messageId": message_id,
                    "delete_type": "revoke" if for_everyone else "delete_for_me",
                },
            }
        )

    async def _serve_media(self, request: Request, _payload: Any) -> Response:
        with self._lock:
            item = self._media.get(request.path_params["media_id"])
        if item is None:
            return _error(404, "Media not found")
        return Response(item[0], 200, media_type=item[1])

    async def _not_found(self, request: Request, _payload: Any) -> Response:
        return _error(404, "Not Found")
