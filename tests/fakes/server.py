"""What the fake HTTP servers share: a uvicorn lifecycle, fault/delay rules and call recording.

A :class:`FakeServer` subclass builds a Starlette ``app`` and sets ``label`` (used in messages and
the thread name) and ``secret_headers`` (recorded as ``<redacted>``). It serves on 127.0.0.1 in a
daemon thread; a restart after ``stop()`` reuses the port, so stop/start can simulate an outage
at an unchanged URL while the state is kept.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request

HOST = "127.0.0.1"
REDACTED = "<redacted>"


@dataclass
class RecordedCall:
    """One request as the fake saw it; secret headers are stored as ``<redacted>``.

    ``status`` is 0 while the answer is still being prepared (e.g. during ``set_delay``);
    ``received_at`` is when the request arrived (``time.monotonic()``).
    """

    method: str
    path: str
    query: dict[str, str]
    json: Any | None
    form: dict[str, Any] | None
    status: int
    headers: dict[str, str]
    received_at: float = field(default_factory=time.monotonic)


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


def take_rule(rules: list[_Rule], method: str, path: str) -> _Rule | None:
    """The first rule matching the request (one use consumed); used-up rules are dropped."""
    rule = next((r for r in rules if r.take(method, path)), None)
    rules[:] = [r for r in rules if r.remaining is None or r.remaining > 0]
    return rule


def unused_port() -> int:
    """A port on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class FakeServer:
    """A Starlette ``app`` served by uvicorn in a daemon thread, with faults and recorded calls."""

    label = "server"
    secret_headers: tuple[str, ...] = ("authorization", "cookie")
    app: Starlette

    def __init__(self, port: int = 0) -> None:
        self._lock = threading.RLock()
        self._requested_port = port
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.calls: list[RecordedCall] = []
        self._faults: list[_Rule] = []
        self._delays: list[_Rule] = []
        self._holds: list[_Rule] = []

    # ---- lifecycle ----
    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``; known once started (and kept after ``stop()``)."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://{HOST}:{self._port}"

    @property
    def base_url(self) -> str:
        return self.origin

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
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"fake-{self.label.lower()}-{self._port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"fake {self.label} did not start")
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

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @staticmethod
    def unused_url() -> str:
        """A URL on 127.0.0.1 where nothing listens (connection refused)."""
        return f"http://{HOST}:{unused_port()}"

    # ---- faults ----
    def fail_next(
        self, method: str, path_pattern: str, status: int, body: Any = None, times: int = 1
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` without processing them.

        ``body`` None means the fake's own error envelope for that status.
        """
        with self._lock:
            self._faults.append(
                _Rule(method.upper(), re.compile(path_pattern), times, status=status, body=body)
            )

    def set_delay(
        self, method: str, path_pattern: str, seconds: float, times: int | None = None
    ) -> None:
        """Process matching requests at once but hold the answer back ``seconds``.

        So a client that times out leaves its effect behind, as a slow real server does.
        """
        with self._lock:
            self._delays.append(
                _Rule(method.upper(), re.compile(path_pattern), times, seconds=seconds)
            )

    def hold_next(self, method: str, path_pattern: str, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` matching requests ``seconds`` before processing them.

        So a request can take effect after one sent later (a slow network or a busy server).
        """
        with self._lock:
            self._holds.append(
                _Rule(method.upper(), re.compile(path_pattern), times, seconds=seconds)
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._delays.clear()
            self._holds.clear()

    # ---- request pipeline helpers ----
    def _take_rules(self, method: str, path: str) -> tuple[_Rule | None, _Rule | None]:
        """The fault and the delay (each possibly None) that apply to this request."""
        with self._lock:
            return (
                take_rule(self._faults, method, path),
                take_rule(self._delays, method, path),
            )

    async def _hold(self, method: str, path: str) -> None:
        """Wait before processing the request when :meth:`hold_next` says so."""
        with self._lock:
            hold = take_rule(self._holds, method, path)
        if hold is not None:
            await self._sleep(hold.seconds)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up when the server is stopping so ``stop()`` stays quick."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            if self._server is None or self._server.should_exit:
                return
            await asyncio.sleep(min(left, 0.05))

    def _redacted_headers(self, request: Request) -> dict[str, str]:
        return {
            k.lower(): (REDACTED if k.lower() in self.secret_headers else v)
            for k, v in request.headers.items()
        }

    def _record_call(
        self,
        request: Request,
        json: Any | None,
        form: dict[str, Any] | None = None,
        query: dict[str, str] | None = None,
    ) -> RecordedCall:
        """Append a call (status 0 until answered) with secret headers redacted."""
        call = RecordedCall(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params) if query is None else query,
            json=json,
            form=form,
            status=0,
            headers=self._redacted_headers(request),
        )
        with self._lock:
            self.calls.append(call)
        return call
