"""The shared HTTP layer: connect-time guard, shared clients, retry policy, error mapping.

Every request goes to a real HTTP(S) server on 127.0.0.1; nothing of ours is mocked. A resolver
is injected where a test needs a hostname with a chosen DNS answer.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import http.server
import os
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.integrations import http as wb_http
from app.integrations.chatwoot import ChatwootClient
from app.integrations.errors import (
    RemoteAddressNotAllowed,
    RemoteBadResponse,
    RemoteError,
    RemoteForbidden,
    RemoteNotFound,
    RemoteRateLimited,
    RemoteServerError,
    RemoteTimeout,
    RemoteUnauthorized,
    RemoteUnprocessable,
    RemoteUnreachable,
    error_from_response,
    error_from_transport,
    is_safe_to_resend,
    is_transient,
    parse_retry_after,
)
from app.integrations.http import (
    USER_AGENT,
    ConnectAddressNotAllowed,
    build_client,
    close_shared_clients,
    shared_client,
    transient_retry,
)

# --- a tiny scripted HTTP server ----------------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: bytes = b'{"ok": true}'
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


@dataclass
class TinyServer:
    """Answers from ``script`` (then ``default``) and records what it received."""

    httpd: http.server.ThreadingHTTPServer
    scheme: str = "http"
    script: list[Reply] = field(default_factory=list)
    default: Reply = field(default_factory=Reply)
    received: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def next_reply(self) -> Reply:
        return self.script.pop(0) if self.script else self.default


def _handler(server: TinyServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            server.received.append((self.command, self.path, dict(self.headers.items())))
            reply = server.next_reply()
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def _start(server_ssl: ssl.SSLContext | None = None) -> TinyServer:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    httpd.daemon_threads = True
    server = TinyServer(httpd=httpd, scheme="https" if server_ssl else "http")
    httpd.RequestHandlerClass = _handler(server)
    if server_ssl is not None:
        httpd.socket = server_ssl.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    return server


@pytest.fixture
def server() -> Iterator[TinyServer]:
    srv = _start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def private_client() -> Iterator[httpx.Client]:
    client = build_client(allow_private=True)
    yield client
    client.close()


@pytest.fixture
def public_client() -> Iterator[httpx.Client]:
    client = build_client(allow_private=False)
    yield client
    client.close()


# --- connect-time guard -------------------------------------------------------------------------


def test_guard_refuses_a_loopback_server(server: TinyServer, public_client: httpx.Client) -> None:
    with pytest.raises(ConnectAddressNotAllowed) as info:
        public_client.get(server.url + "/api")
    assert str(info.value) == "host resolves to a loopback address (127.0.0.1)"
    assert isinstance(info.value, httpx.ConnectError)
    assert server.received == []


def test_guard_lets_private_through_when_allowed(
    server: TinyServer, private_client: httpx.Client
) -> None:
    resp = private_client.get(server.url + "/api")
    assert resp.status_code == 200
    assert server.received[0][:2] == ("GET", "/api")


def test_guard_rejection_maps_to_remote_address_not_allowed(
    server: TinyServer, public_client: httpx.Client
) -> None:
    client = ChatwootClient(server.url, 1, "tok-secret", http=public_client, retry_max_wait=0.01)
    with pytest.raises(RemoteAddressNotAllowed) as info:
        client.get_profile()
    assert "127.0.0.1" in info.value.detail
    assert not is_transient(info.value)
    assert server.received == []  # not retried, never sent


def test_guard_checks_the_dns_answer_at_connect_time(server: TinyServer) -> None:
    """A name that resolved to a public address at set time but now answers 127.0.0.1."""
    client = build_client(allow_private=False, resolver=lambda host, port: ["127.0.0.1"])
    try:
        with pytest.raises(ConnectAddressNotAllowed, match=r"loopback address \(127\.0\.0\.1\)"):
            client.get(f"http://chatwoot.example.com:{server.port}/")
    finally:
        client.close()
    assert server.received == []


def test_guard_connects_to_the_vetted_ip_with_the_original_host_header(server: TinyServer) -> None:
    seen: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        seen.append((host, port))
        return ["127.0.0.1"]

    client = build_client(allow_private=True, resolver=resolver)
    try:
        resp = client.get(f"http://chatwoot.test:{server.port}/x")
    finally:
        client.close()
    assert resp.status_code == 200
    assert seen == [("chatwoot.test", server.port)]
    assert server.received[0][2]["Host"] == f"chatwoot.test:{server.port}"


def test_guard_tries_the_next_address_when_one_fails(server: TinyServer) -> None:
    # 127.0.0.2 is loopback too, but nothing listens on that (address, port): refused.
    client = build_client(allow_private=True, resolver=lambda h, p: ["127.0.0.2", "127.0.0.1"])
    try:
        assert client.get(f"http://multi.test:{server.port}/").status_code == 200
    finally:
        client.close()


def test_unresolvable_host_is_unreachable() -> None:
    def resolver(host: str, port: int) -> list[str]:
        raise OSError("no such host")

    client = build_client(allow_private=False, resolver=resolver)
    try:
        with pytest.raises(httpx.ConnectError) as info:
            client.get("https://nowhere.invalid/")
    finally:
        client.close()
    error = error_from_transport(info.value)
    assert type(error) is RemoteUnreachable
    assert "host does not resolve" in error.detail
    assert is_transient(error)


def _self_signed(tmp_path: Path, hostname: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for ``hostname`` and a client context trusting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_file, key_file)
    client_ctx = ssl.create_default_context(cafile=str(cert_file))
    return server_ctx, client_ctx


def test_tls_verifies_the_hostname_not_the_ip(tmp_path: Path) -> None:
    server_ctx, client_ctx = _self_signed(tmp_path, "chatwoot.test")
    srv = _start(server_ctx)
    client = build_client(
        allow_private=True, verify=client_ctx, resolver=lambda h, p: ["127.0.0.1"]
    )
    try:
        assert client.get(f"https://chatwoot.test:{srv.port}/").status_code == 200
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get(f"https://other.test:{srv.port}/")
    finally:
        client.close()
        srv.httpd.shutdown()
        srv.httpd.server_close()


# --- shared clients -----------------------------------------------------------------------------


def test_no_cookie_a_remote_sets_is_ever_sent_back(
    server: TinyServer, private_client: httpx.Client
) -> None:
    """One client serves every tenant: a session cookie one tenant's Chatwoot sets must not
    ride along on the next request to that host (another tenant's, with its own token)."""
    server.script.append(
        Reply(
            headers={"Content-Type": "application/json", "Set-Cookie": "_session=tenant-a; Path=/"}
        )
    )
    assert private_client.get(server.url + "/api/v1/profile").status_code == 200
    assert private_client.get(server.url + "/api/v1/profile").status_code == 200
    first, second = (headers for _, _, headers in server.received)
    assert "Cookie" not in first and "Cookie" not in second
    assert len(private_client.cookies.jar) == 0


def test_shared_client_is_reused_per_allow_private_value() -> None:
    close_shared_clients()
    try:
        first = shared_client(allow_private=False)
        assert shared_client(allow_private=False) is first
        other = shared_client(allow_private=True)
        assert other is not first
        assert shared_client(allow_private=True) is other
    finally:
        close_shared_clients()
    assert shared_client(allow_private=False) is not first
    close_shared_clients()


def test_shared_client_is_created_once_under_concurrency() -> None:
    close_shared_clients()
    results: list[httpx.Client] = []
    barrier = threading.Barrier(8)

    def grab() -> None:
        barrier.wait()
        results.append(shared_client(allow_private=True))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(client) for client in results}) == 1
    close_shared_clients()


def test_forked_child_gets_its_own_shared_client() -> None:
    parent = shared_client(allow_private=True)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report and leave without running any pytest machinery
        fresh = shared_client(allow_private=True) is not parent
        os.write(write_end, b"fresh" if fresh else b"inherited")
        os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 32)
    os.close(read_end)
    os.waitpid(pid, 0)
    assert answer == b"fresh"
    assert shared_client(allow_private=True) is parent
    close_shared_clients()


def test_client_defaults(server: TinyServer) -> None:
    client = shared_client(allow_private=True)
    assert client.timeout == httpx.Timeout(connect=5.0, read=15.0, write=15.0, pool=5.0)
    assert client.follow_redirects is False
    server.script.append(Reply(302, b"", {"Location": "https://elsewhere.example/"}))
    resp = client.get(server.url + "/redirect")
    assert resp.status_code == 302  # not followed
    assert server.received[0][2]["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("wootbridge/")
    close_shared_clients()


# --- retry policy -------------------------------------------------------------------------------


def _get(client: httpx.Client, url: str) -> httpx.Response:
    """One attempt as a client would make it: typed error for anything but 2xx."""
    try:
        resp = client.get(url)
    except httpx.HTTPError as exc:
        raise error_from_transport(exc) from None
    if not resp.is_success:
        raise error_from_response(resp)
    return resp


def test_retry_recovers_from_transient_errors(
    server: TinyServer, private_client: httpx.Client
) -> None:
    server.script += [Reply(503, b"busy"), Reply(502, b"bad gateway")]
    resp = transient_retry(3, 0.01)(_get, private_client, server.url)
    assert resp.status_code == 200
    assert len(server.received) == 3


def test_retry_gives_up_with_the_last_original_error(
    server: TinyServer, private_client: httpx.Client
) -> None:
    server.script += [Reply(500, b"first"), Reply(502, b"second"), Reply(503, b"third")]
    with pytest.raises(RemoteServerError) as info:
        transient_retry(3, 0.01)(_get, private_client, server.url)
    assert (info.value.status, info.value.detail) == (503, "third")
    assert len(server.received) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_permanent_errors_are_not_retried(
    server: TinyServer, private_client: httpx.Client, status: int
) -> None:
    server.default = Reply(status, b'{"error": "no"}')
    with pytest.raises(RemoteError) as info:
        transient_retry(5, 0.01)(_get, private_client, server.url)
    assert info.value.status == status
    assert len(server.received) == 1


def test_connection_refused_is_retried() -> None:
    attempts: list[int] = []
    client = build_client(allow_private=True)

    def call() -> None:
        attempts.append(1)
        try:
            client.get("http://127.0.0.1:9/")  # discard port: nothing listens
        except httpx.HTTPError as exc:
            raise error_from_transport(exc) from None

    try:
        with pytest.raises(RemoteUnreachable) as info:
            transient_retry(3, 0.01)(call)
    finally:
        client.close()
    assert len(attempts) == 3
    assert info.value.unprocessed


def test_retry_after_hint_is_honoured_but_capped(
    server: TinyServer, private_client: httpx.Client
) -> None:
    server.script += [Reply(429, b"Retry later", {"Retry-After": "0.3"})]
    started = time.monotonic()
    transient_retry(3, 1.0)(_get, private_client, server.url)
    assert time.monotonic() - started >= 0.3

    server.script += [Reply(429, b"Retry later", {"Retry-After": "3600"})]
    started = time.monotonic()
    transient_retry(3, 0.05)(_get, private_client, server.url)
    assert time.monotonic() - started < 1.0
    assert len(server.received) == 4


def test_custom_predicate_for_non_idempotent_requests(
    server: TinyServer, private_client: httpx.Client
) -> None:
    server.script += [Reply(500, b"maybe done")]
    with pytest.raises(RemoteServerError):
        transient_retry(3, 0.01, retry_if=is_safe_to_resend)(_get, private_client, server.url)
    assert len(server.received) == 1
    server.script += [Reply(503, b"down"), Reply(429, b"Retry later")]
    transient_retry(3, 0.01, retry_if=is_safe_to_resend)(_get, private_client, server.url)
    assert len(server.received) == 4


# --- error mapping ------------------------------------------------------------------------------


def _response(status: int, body: bytes | str = b"", **headers: str) -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    return httpx.Response(status, content=content, headers=headers)


@pytest.mark.parametrize(
    ("status", "cls", "transient"),
    [
        (400, RemoteUnprocessable, False),
        (401, RemoteUnauthorized, False),
        (403, RemoteForbidden, False),
        (404, RemoteNotFound, False),
        (409, RemoteUnprocessable, False),
        (422, RemoteUnprocessable, False),
        (429, RemoteRateLimited, True),
        (500, RemoteServerError, True),
        (502, RemoteServerError, True),
        (503, RemoteServerError, True),
        (504, RemoteServerError, True),
        (302, RemoteBadResponse, False),
    ],
)
def test_status_mapping(status: int, cls: type[RemoteError], transient: bool) -> None:
    error = error_from_response(_response(status, "x"))
    assert type(error) is cls
    assert error.status == status
    assert is_transient(error) is transient
    assert is_safe_to_resend(error) is (status in (429, 503))


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ('{"error": "Invalid Access Token"}', "Invalid Access Token"),
        ('{"errors": ["Name can\'t be blank", "Too short"]}', "Name can't be blank; Too short"),
        (
            '{"message": "Phone number has already been taken", "attributes": ["phone_number"]}',
            "Phone number has already been taken",
        ),
        ('{"description": "bad", "errors": [{"field": "x", "message": "y"}]}', "bad"),
        ('{"errors": [{"field": "inbox_id", "message": "is missing"}]}', "inbox_id: is missing"),
        ('{"error": {"message": "(#100) Invalid", "code": 100}}', "(#100) Invalid"),
        ("Retry later", "Retry later"),
        ("", "Not Found"),
        ("<html><head><title>404 Not Found</title></head><body>x</body></html>", "404 Not Found"),
        ('{"unexpected": 1}', '{"unexpected": 1}'),
    ],
)
def test_detail_extraction(body: str, detail: str) -> None:
    assert error_from_response(_response(404, body)).detail == detail


def test_detail_is_truncated_and_redacted() -> None:
    error = error_from_response(_response(422, "tok-SECRET " + "x" * 2000), secrets=["tok-SECRET"])
    assert len(error.detail) <= 500
    assert "tok-SECRET" not in error.detail
    assert error.detail.startswith("[redacted] xxx")
    assert "tok-SECRET" not in str(error) + repr(error)


def test_str_and_repr() -> None:
    error = error_from_response(_response(401, '{"error": "Invalid Access Token"}'))
    assert str(error) == "remote rejected the credentials (HTTP 401): Invalid Access Token"
    assert repr(error) == "RemoteUnauthorized(status=401, detail='Invalid Access Token')"


def test_retry_after_parsing() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=60), True)
    hint = parse_retry_after(later)
    assert hint is not None and 50 < hint <= 60
    error = error_from_response(_response(429, "Retry later", **{"Retry-After": "7"}))
    assert isinstance(error, RemoteRateLimited) and error.retry_after == 7.0


def test_transport_error_mapping() -> None:
    request = httpx.Request("GET", "https://chatwoot.example.com/")
    cases: list[tuple[httpx.HTTPError, type[RemoteError], bool]] = [
        (httpx.ConnectError("refused", request=request), RemoteUnreachable, True),
        (httpx.ConnectTimeout("slow", request=request), RemoteTimeout, True),
        (httpx.PoolTimeout("pool", request=request), RemoteTimeout, True),
        (httpx.ReadTimeout("slow", request=request), RemoteTimeout, False),
        (httpx.WriteTimeout("slow", request=request), RemoteTimeout, False),
        (httpx.RemoteProtocolError("closed", request=request), RemoteUnreachable, False),
        (httpx.ReadError("reset", request=request), RemoteUnreachable, False),
        (httpx.UnsupportedProtocol("ftp", request=request), RemoteAddressNotAllowed, False),
    ]
    for exc, cls, unprocessed in cases:
        error = error_from_transport(exc)
        assert type(error) is cls, exc
        assert error.unprocessed is unprocessed, exc
        assert error.status is None


def test_errors_survive_pickling() -> None:
    import pickle

    error = error_from_response(_response(429, "Retry later", **{"Retry-After": "2"}))
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object
    assert (type(copy), copy.status, copy.detail, copy.retry_after, copy.unprocessed) == (
        RemoteRateLimited,
        429,
        "Retry later",
        2.0,
        True,
    )


def test_default_limits() -> None:
    assert wb_http.DEFAULT_LIMITS.max_connections == 100
    assert wb_http.DEFAULT_LIMITS.max_keepalive_connections == 20
