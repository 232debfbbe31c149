"""Media download clients against FakeGraph and a small media host, both real HTTP servers."""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from app.integrations.errors import (
    RemoteAddressNotAllowed,
    RemoteBadResponse,
    RemoteError,
    RemoteNotFound,
    RemoteServerError,
    RemoteTimeout,
    RemoteUnauthorized,
    RemoteUnreachable,
)
from app.integrations.files import File, Media, media_extension
from app.integrations.http import build_client
from app.integrations.whatsapp.media import (
    CloudMediaClient,
    GatewayMediaClient,
    MediaTooLarge,
    decode_base64_media,
    media_filename,
)
from tests.fakes.graph import FakeGraph

PHONE_ID = "106540352242922"
TOKEN = "EAAG-secret-token-do-not-leak"
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
READ_TIMEOUT = 0.4


class MediaHost:
    """A plain file host, as a gateway's media URLs point to: no auth, records request headers."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.failures: dict[str, int] = {}
        self.headers: list[dict[str, str]] = []
        routes = [
            Route("/loop/{n:int}", self._loop),
            Route("/stream/{size:int}", self._stream),
            Route("/gone", lambda _r: Response(b"gone", 410)),
            Route("/files/{name}", self._file),
        ]
        self._server = uvicorn.Server(
            uvicorn.Config(
                Starlette(routes=routes), lifespan="off", log_level="warning", log_config=None
            )
        )
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> MediaHost:
        self._thread.start()
        while not self._server.started:
            time.sleep(0.002)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    async def _file(self, request: Request) -> Response:
        self.headers.append(dict(request.headers))
        name = request.path_params["name"]
        if self.failures.get(name):
            self.failures[name] -= 1
            return Response(b"<html><title>502 Bad Gateway</title></html>", 502)
        if name not in self.files:
            return Response(b"not here", 404)
        data, content_type = self.files[name]
        return Response(data, media_type=content_type)

    async def _loop(self, request: Request) -> Response:
        return RedirectResponse(f"/loop/{request.path_params['n'] + 1}", 302)

    async def _stream(self, request: Request) -> Response:
        """``size`` bytes in 1 KiB chunks, chunked (no Content-Length)."""

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(request.path_params["size"] // 1024):
                yield b"x" * 1024

        return StreamingResponse(chunks(), media_type="video/mp4")


@pytest.fixture(scope="module")
def http_client() -> Iterator[httpx.Client]:
    client = build_client(allow_private=True)
    client.timeout = httpx.Timeout(2.0, read=READ_TIMEOUT)
    yield client
    client.close()


@pytest.fixture(scope="module")
def server() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def graph(server: FakeGraph) -> Iterator[FakeGraph]:
    server.reset()
    server.download_redirects = 0
    server.add_phone_number(PHONE_ID, TOKEN)
    yield server
    assert TOKEN not in repr(server.calls)


@pytest.fixture(scope="module")
def host() -> Iterator[MediaHost]:
    with MediaHost() as media_host:
        yield media_host


def cloud(graph: FakeGraph, http: httpx.Client, **options: Any) -> CloudMediaClient:
    options.setdefault("retry_max_wait", 0.01)
    return CloudMediaClient(graph.base_url + "/", TOKEN, http=http, **options)


def gateway(http: httpx.Client, **options: Any) -> GatewayMediaClient:
    return GatewayMediaClient(http=http, retry_max_wait=0.01, **options)


def paths(graph: FakeGraph) -> list[str]:
    return [f"{c.method} {c.path} {c.status}" for c in graph.calls]


def assert_no_token(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), str(exc.__cause__), str(exc.__context__)):
        assert TOKEN not in text


# --- Cloud API ----------------------------------------------------------------------------------


def test_cloud_fetch_by_media_id(graph: FakeGraph, http_client: httpx.Client) -> None:
    media_id = graph.add_media(JPEG, "image/jpeg")
    got = cloud(graph, http_client).fetch(Media(media_id=media_id))
    assert got == File(JPEG, "image/jpeg", f"image-{media_id}.jpg")
    assert paths(graph) == [f"GET /v23.0/{media_id} 200", "GET /whatsapp_business/attachments/ 200"]
    # the bearer went to Graph and to the download URL (the fake answers 401 without it)
    assert all(c.headers["authorization"] == "<redacted>" for c in graph.calls)
    assert graph.calls[0].headers["user-agent"].startswith("wootbridge/")
    assert "size=" in repr(got) and "\\xff" not in repr(got)


def test_cloud_voice_note_and_document_names(graph: FakeGraph, http_client: httpx.Client) -> None:
    client = cloud(graph, http_client)
    voice_id = graph.add_media(b"OggS", "audio/ogg; codecs=opus")
    voice = client.fetch(Media(mime_type="audio/ogg; codecs=opus", media_id=voice_id, voice=True))
    assert (voice.content_type, voice.filename) == (
        "audio/ogg; codecs=opus",
        f"voice-{voice_id}.ogg",
    )
    doc_id = graph.add_media(b"%PDF-1.7", "application/pdf")
    doc = client.fetch(
        Media(mime_type="application/pdf", media_id=doc_id, filename="../Contrato Março.pdf")
    )
    assert (doc.data, doc.filename) == (b"%PDF-1.7", "Contrato Março.pdf")


def test_cloud_uses_the_webhook_url_then_a_fresh_one(
    graph: FakeGraph, http_client: httpx.Client
) -> None:
    media_id = graph.add_media(JPEG, "image/jpeg")
    client = cloud(graph, http_client)
    url = client.media_info(media_id).url
    graph.calls.clear()
    assert client.fetch(Media(media_id=media_id, url=url)).data == JPEG
    assert paths(graph) == ["GET /whatsapp_business/attachments/ 200"]  # no Graph lookup

    graph.expire_media_urls()
    graph.calls.clear()
    assert client.fetch(Media(media_id=media_id, url=url)).data == JPEG
    assert paths(graph) == [
        "GET /whatsapp_business/attachments/ 404",
        f"GET /v23.0/{media_id} 200",
        "GET /whatsapp_business/attachments/ 200",
    ]
    with pytest.raises(RemoteNotFound):  # without an id there is nothing to refresh
        client.fetch(Media(url=url))


@pytest.mark.parametrize("status", [None, 404, 410])
def test_cloud_media_gone(graph: FakeGraph, http_client: httpx.Client, status: int | None) -> None:
    media_id = graph.add_media(JPEG, "image/jpeg")
    if status is None:  # what Graph really answers: 400, code 100, subcode 33
        graph.media.clear()
    else:
        graph.fail_next("GET", rf"/{media_id}$", status)
    with pytest.raises(RemoteNotFound) as caught:
        cloud(graph, http_client).fetch(Media(media_id=media_id))
    assert caught.value.status == (status or 400)
    assert len(graph.calls) == 1  # permanent: not retried
    assert_no_token(caught.value)


def test_cloud_nothing_to_fetch(graph: FakeGraph, http_client: httpx.Client) -> None:
    with pytest.raises(RemoteNotFound):
        cloud(graph, http_client).fetch(Media(mime_type="image/jpeg"))
    with pytest.raises(RemoteNotFound):
        cloud(graph, http_client).media_info("../me")
    assert graph.calls == []


def test_cloud_size_bound(graph: FakeGraph, http_client: httpx.Client) -> None:
    media_id = graph.add_media(JPEG, "image/jpeg")
    client = cloud(graph, http_client, max_bytes=100)
    with pytest.raises(MediaTooLarge) as caught:
        client.fetch(Media(media_id=media_id))
    assert paths(graph) == [f"GET /v23.0/{media_id} 200"]  # Graph's file_size was enough
    assert caught.value.status is None and "100" in str(caught.value)

    url = cloud(graph, http_client).media_info(media_id).url
    with pytest.raises(MediaTooLarge):  # no file_size here: the Content-Length tells
        client.fetch(Media(url=url))
    assert cloud(graph, http_client, max_bytes=len(JPEG)).fetch(Media(url=url)).data == JPEG


def test_cloud_retries_5xx(graph: FakeGraph, http_client: httpx.Client) -> None:
    media_id = graph.add_media(JPEG, "image/jpeg")
    graph.fail_next("GET", rf"/{media_id}$", 500, times=2)
    graph.fail_next("GET", r"/attachments/$", 503)
    assert cloud(graph, http_client).fetch(Media(media_id=media_id)).data == JPEG
    assert [c.status for c in graph.calls] == [500, 500, 200, 503, 200]

    graph.fail_next("GET", rf"/{media_id}$", 500, times=3)
    graph.calls.clear()
    with pytest.raises(RemoteServerError):
        cloud(graph, http_client).fetch(Media(media_id=media_id))
    assert len(graph.calls) == 3


def test_cloud_bad_token_is_not_retried_and_never_shown(
    graph: FakeGraph, http_client: httpx.Client
) -> None:
    media_id = graph.add_media(JPEG, "image/jpeg")
    client = CloudMediaClient(graph.base_url, TOKEN + "-revoked", http=http_client)
    with pytest.raises(RemoteUnauthorized) as caught:
        client.fetch(Media(media_id=media_id))
    assert len(graph.calls) == 1 and TOKEN not in repr(client)
    assert_no_token(caught.value)

    echo = {"error": {"message": f"token {TOKEN} is bad", "type": "OAuthException", "code": 190}}
    graph.fail_next("GET", rf"/{media_id}$", 401, body=echo)
    with pytest.raises(RemoteUnauthorized) as caught:
        cloud(graph, http_client).fetch(Media(media_id=media_id))
    assert "[redacted]" in str(caught.value)
    assert_no_token(caught.value)


def test_cloud_redirects_are_followed_and_bounded(
    graph: FakeGraph, http_client: httpx.Client
) -> None:
    media_id = graph.add_media(JPEG, "image/jpeg")
    graph.download_redirects = 2
    assert cloud(graph, http_client).fetch(Media(media_id=media_id)).data == JPEG
    graph.download_redirects = 50
    with pytest.raises(RemoteBadResponse, match="redirects"):
        cloud(graph, http_client).fetch(Media(media_id=media_id))


def test_cloud_timeout_and_unreachable(graph: FakeGraph, http_client: httpx.Client) -> None:
    media_id = graph.add_media(JPEG, "image/jpeg")
    graph.set_delay("GET", r"/attachments/$", 2.0)
    with pytest.raises(RemoteTimeout) as caught:
        cloud(graph, http_client, timeout=0.2, retry_attempts=2).fetch(Media(media_id=media_id))
    assert_no_token(caught.value)
    graph.clear_faults()

    client = CloudMediaClient(FakeGraph.unused_url(), TOKEN, http=http_client, retry_max_wait=0.01)
    with pytest.raises(RemoteUnreachable) as unreachable:
        client.fetch(Media(media_id=media_id))
    assert_no_token(unreachable.value)


# --- gateway ------------------------------------------------------------------------------------


def test_gateway_base64(http_client: httpx.Client) -> None:
    encoded = base64.b64encode(JPEG).decode()
    got = gateway(http_client).fetch(Media(mime_type="image/jpeg", base64=encoded))
    assert (got.data, got.content_type) == (JPEG, "image/jpeg")
    assert got.filename.startswith("image-") and got.filename.endswith(".jpg")

    data_uri = "data:application/pdf;base64," + base64.b64encode(b"%PDF").decode()
    doc = gateway(http_client).fetch(Media(base64=data_uri, filename="nota"))
    assert (doc.data, doc.content_type, doc.filename) == (b"%PDF", "application/pdf", "nota.pdf")
    with pytest.raises(RemoteBadResponse):
        gateway(http_client).fetch(Media(base64="not base64!!"))
    with pytest.raises(MediaTooLarge):
        gateway(http_client, max_bytes=100).fetch(Media(base64=encoded))


def test_gateway_url(host: MediaHost, http_client: httpx.Client) -> None:
    host.files["a.ogg"] = (b"OggS-voice", "audio/ogg")
    got = gateway(http_client).fetch(
        Media(url=f"{host.url}/files/a.ogg", voice=True, media_id="3EB0ABC")
    )
    assert got == File(b"OggS-voice", "audio/ogg", "voice-3EB0ABC.ogg")
    assert "authorization" not in host.headers[-1]  # nothing of ours goes to media hosts

    with pytest.raises(RemoteNotFound):
        gateway(http_client).fetch(Media(url=f"{host.url}/files/missing.jpg"))
    with pytest.raises(RemoteNotFound) as caught:
        gateway(http_client).fetch(Media(url=f"{host.url}/gone"))
    assert caught.value.status == 410
    with pytest.raises(RemoteNotFound):
        gateway(http_client).fetch(Media(mime_type="image/png"))


def test_gateway_retries_and_bounds(host: MediaHost, http_client: httpx.Client) -> None:
    host.files["b.jpg"] = (JPEG, "image/jpeg")
    host.failures["b.jpg"] = 2
    before = len(host.headers)
    assert gateway(http_client).fetch(Media(url=f"{host.url}/files/b.jpg")).data == JPEG
    assert len(host.headers) - before == 3

    with pytest.raises(MediaTooLarge):  # chunked, no Content-Length: counted while streaming
        gateway(http_client, max_bytes=10_000).fetch(Media(url=f"{host.url}/stream/65536"))
    assert len(gateway(http_client).fetch(Media(url=f"{host.url}/stream/65536")).data) == 65536
    with pytest.raises(RemoteBadResponse, match="redirects"):
        gateway(http_client).fetch(Media(url=f"{host.url}/loop/0"))


def test_gateway_urls_go_through_the_guard(host: MediaHost) -> None:
    with build_client(allow_private=False) as guarded:
        with pytest.raises(RemoteAddressNotAllowed):
            gateway(guarded).fetch(Media(url=f"{host.url}/files/b.jpg"))
        with pytest.raises(RemoteError):
            gateway(guarded).fetch(Media(url="file:///etc/passwd"))


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mime, extension",
    [
        ("audio/ogg", ".ogg"),
        ("audio/ogg; codecs=opus", ".ogg"),
        ("image/jpeg", ".jpg"),
        ("application/pdf", ".pdf"),
        ("video/3gpp", ".3gp"),
        ("", ".bin"),
        ("x/unknown", ".bin"),
    ],
)
def test_media_extension(mime: str, extension: str) -> None:
    assert media_extension(mime) == extension


def test_media_filename() -> None:
    assert media_filename(Media(filename="C:\\docs\\a\x00b.pdf"), "application/pdf") == "ab.pdf"
    assert media_filename(Media(filename="..", media_id="9"), "image/png") == "image-9.png"
    long_name = media_filename(Media(filename="x" * 500 + ".docx"), "application/msword")
    assert len(long_name) <= 180 and long_name.endswith(".docx")
    hashed = media_filename(Media(), "application/zip", b"data")
    assert hashed.startswith("file-") and hashed.endswith(".zip") and len(hashed) == 25


def test_decode_base64_media() -> None:
    assert decode_base64_media("aGk", 10) == (b"hi", None)  # missing padding
    assert decode_base64_media("-_8=", 10) == (b"\xfb\xff", None)  # URL-safe alphabet
    assert decode_base64_media("data:image/gif;base64,R0lG\nODlh", 10)[1] == "image/gif"
