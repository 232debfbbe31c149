"""The shared outbound HTTP layer: pooled httpx clients, the connect-time URL guard, retries.

Connect-time guard
    Every new TCP connection resolves the host itself, refuses addresses the URL rule forbids
    (unless private networks are allowed) and connects to the vetted IP, so a DNS answer that
    changed since the URL was checked cannot redirect us to an internal service. TLS still uses
    the hostname (httpcore passes the origin host as SNI and for certificate checks, whatever
    address the TCP stream went to).

    httpx 0.28 has no public parameter for httpcore's network backend, so
    :class:`GuardedTransport` subclasses ``httpx.HTTPTransport`` (keeping httpx's request
    translation and exception mapping) and replaces the ``_pool`` it built with an
    ``httpcore.ConnectionPool`` that has the same settings plus our
    :class:`GuardedNetworkBackend`. That touches one private attribute; the constructor checks
    the attribute is what we expect and fails loudly otherwise, so an httpx upgrade that moves it
    cannot silently drop the guard (the tests also exercise the guard end to end).

    Clients are built with ``trust_env=False``: an environment proxy would connect on our behalf
    and bypass the guard, and ``.netrc`` credentials must not leak to user-supplied hosts.

Retries
    :func:`transient_retry` is the tenacity policy for the few seconds inside one call; longer
    waits belong to Dramatiq's retries.
"""

from __future__ import annotations

import http.cookiejar
import logging
import os
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from importlib import metadata
from typing import Any

import httpcore
import httpx
import tenacity

from app.integrations import latency
from app.integrations.errors import is_transient
from app.integrations.latency import remote_of
from app.integrations.urlguard import (
    Resolver,
    UrlNotAllowed,
    reject_disallowed,
    resolve_host,
)

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "ConnectAddressNotAllowed",
    "GuardedNetworkBackend",
    "GuardedTransport",
    "build_client",
    "close_shared_clients",
    "read_timeout",
    "shared_client",
    "transient_retry",
]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=15.0, pool=5.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


def _version() -> str:
    try:
        return metadata.version("wootbridge")
    except metadata.PackageNotFoundError:
        return "0"


USER_AGENT = f"wootbridge/{_version()}"

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


# --- connect-time guard -------------------------------------------------------------------------


class _GuardRejection(httpcore.ConnectError, UrlNotAllowed):
    """Raised inside httpcore when the guard refuses an address; httpx maps it to ConnectError."""


class ConnectAddressNotAllowed(httpx.ConnectError):
    """httpx-level error: the connect-time guard refused the host's address.

    ``str(exc)`` is the guard's reason; ``errors.error_from_transport`` turns it into
    ``RemoteAddressNotAllowed``.
    """


class GuardedNetworkBackend(httpcore.NetworkBackend):
    """An httpcore backend that vets the resolved addresses before every TCP connect.

    Resolution happens here (not in ``socket.create_connection``) so the address we check is
    the address we connect to. Addresses are tried in resolver order until one connects.
    """

    def __init__(
        self,
        *,
        allow_private: bool,
        inner: httpcore.NetworkBackend | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._inner = inner or httpcore.SyncBackend()
        self._resolver = resolver or resolve_host

    def _addresses(self, host: str, port: int) -> list[str]:
        try:
            addresses = self._resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"host does not resolve ({exc})") from exc
        if not addresses:
            raise httpcore.ConnectError("host does not resolve")
        if not self._allow_private:
            try:
                reject_disallowed(addresses)
            except UrlNotAllowed as exc:
                raise _GuardRejection(str(exc)) from None
        return addresses

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        deadline = None if timeout is None else time.monotonic() + timeout
        last_error: Exception | None = None
        for ip in self._addresses(host, port):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return self._inner.connect_tcp(
                    ip, port, remaining, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None  # _addresses never returns an empty list
        raise last_error

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not used for outbound calls")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connections go through :class:`GuardedNetworkBackend`."""

    def __init__(
        self,
        *,
        allow_private: bool,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
        resolver: Resolver | None = None,
    ) -> None:
        ssl_context = httpx.create_ssl_context(verify=verify)
        super().__init__(verify=ssl_context, limits=limits, trust_env=False)
        if type(getattr(self, "_pool", None)) is not httpcore.ConnectionPool:
            raise RuntimeError(
                "httpx.HTTPTransport no longer keeps an httpcore.ConnectionPool in _pool; "
                "the connect-time URL guard cannot be installed"
            )
        self._pool.close()
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=GuardedNetworkBackend(allow_private=allow_private, resolver=resolver),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """One exchange, its latency observed (to the response head; see ``latency``)."""
        started = time.perf_counter()
        outcome = "transport_error"
        try:
            response = self._guarded_request(request)
            outcome = "ok" if response.status_code < 400 else "http_error"
            return response
        finally:
            latency.observe(remote_of(request), outcome, time.perf_counter() - started)

    def _guarded_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return super().handle_request(request)
        except httpx.ConnectError as exc:
            if isinstance(exc.__cause__, _GuardRejection):
                raise ConnectAddressNotAllowed(str(exc.__cause__), request=request) from (
                    exc.__cause__
                )
            raise


# --- clients ------------------------------------------------------------------------------------


def build_client(
    *,
    allow_private: bool,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    limits: httpx.Limits = DEFAULT_LIMITS,
    verify: ssl.SSLContext | bool = True,
    resolver: Resolver | None = None,
) -> httpx.Client:
    """A new guarded client. Prefer :func:`shared_client`: each client loads the CA bundle."""
    transport = GuardedTransport(
        allow_private=allow_private, verify=verify, limits=limits, resolver=resolver
    )
    return httpx.Client(
        transport=transport,
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
        cookies=NoCookies(),
    )


class NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that keeps nothing. A shared client serves every tenant: a cookie one
    tenant's Chatwoot set (a session) must never ride along on another tenant's requests to
    the same host, and no API this bridge calls needs cookies (tokens go in headers). It also
    spares parsing ``Set-Cookie`` on every response."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        return None


_clients: dict[bool, httpx.Client] = {}
_clients_lock = threading.Lock()


def shared_client(*, allow_private: bool) -> httpx.Client:
    """The process-wide pooled client for this ``allow_private`` value (created on first use)."""
    client = _clients.get(allow_private)
    if client is not None:
        return client
    with _clients_lock:
        client = _clients.get(allow_private)
        if client is None:
            client = build_client(allow_private=allow_private)
            _clients[allow_private] = client
        return client


def close_shared_clients() -> None:
    """Close and forget the shared clients (process shutdown, tests)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


def _forget_clients_after_fork() -> None:
    """In a forked child, drop the parent's clients without closing their shared sockets."""
    global _clients_lock
    _clients.clear()
    _clients_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_clients_after_fork)


# --- retries ------------------------------------------------------------------------------------


def read_timeout(http: httpx.Client, timeout: float | None) -> httpx.Timeout | None:
    """A timeout bounding reading/writing one answer by ``timeout`` seconds (None: the client's)."""
    if timeout is None:
        return None
    return httpx.Timeout(
        connect=http.timeout.connect, read=timeout, write=timeout, pool=http.timeout.pool
    )


def _wait_policy(max_wait: float) -> Callable[[tenacity.RetryCallState], float]:
    """Exponential backoff with jitter, or the remote's ``retry_after`` hint; both capped."""
    step = max_wait / 8

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        hint = getattr(exc, "retry_after", None)
        if isinstance(hint, int | float) and hint >= 0:
            return min(float(hint), max_wait)
        backoff = step * 2.0 ** (state.attempt_number - 1) + random.uniform(0, step)
        return min(backoff, max_wait)

    return wait


def _log_retry(state: tenacity.RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome is not None else None
    wait = state.next_action.sleep if state.next_action is not None else 0.0
    logger.warning("retrying in %.2fs after attempt %d failed: %s", wait, state.attempt_number, exc)


def transient_retry(
    attempts: int = 3,
    max_wait: float = 2.0,
    *,
    retry_if: Callable[[BaseException], bool] = is_transient,
) -> tenacity.Retrying:
    """The in-call retry policy: up to ``attempts`` tries while ``retry_if(exc)`` holds.

    Waits grow exponentially with jitter up to ``max_wait`` seconds, or follow the exception's
    ``retry_after`` (capped by ``max_wait``). The last original exception is re-raised. Use as
    ``transient_retry()(fn, *args)`` or ``for attempt in transient_retry(): with attempt: ...``.
    """
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=_wait_policy(max_wait),
        retry=tenacity.retry_if_exception(retry_if),
        reraise=True,
        before_sleep=_log_retry,
    )
