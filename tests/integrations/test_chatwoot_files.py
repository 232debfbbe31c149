"""fetch_attachment against a small storage host and FakeChatwoot (real HTTP servers)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from app.integrations.chatwoot import ChatwootClient
from app.integrations.chatwoot_files import (
    fetch_attachment,
    filename_from_disposition,
)
from app.integrations.errors import (
    RemoteAddressNotAllowed,
    RemoteBadResponse,
    RemoteNotFound,
    RemoteServerError,
    RemoteTimeout,
    RemoteUnreachable,
)
from app.integrations.files import File
from app.integrations.http import GuardedTransport, build_client
from app.integrations.whatsapp.media import MediaTooLarge
from tests.fakes.chatwoot import FakeChatwoot

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 16
READ_TIMEOUT = 0.5


class StorageHost:
    """Plays Chatwoot's redirect URLs and the storage behind them; counts every hit."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str, str | None]] = {}  # name -> data, type, disp.
        self.failures: dict[str, int] = {}
        self.hits: Counter[str] = Counter()
        self.headers: list[dict[str, str]] = []
        routes = [
            Route("/redirect/{hops:int}/{name}", self._redirect),
            Route("/away/{name}", self._away),
            Route("/to-loopback/{name}", self._to_loopback),
            Route("/loop/{n:int}", self._loop),
            Route("/stream/{size:int}", self._stream),
            Route("/slow/{name}", self._slow),
            Route("/files/{name}", self._file),
        ]
        self._server = uvicorn.Server(
            uvicorn.Config(
                Starlette(routes=routes), lifespan="off", log_level="warning", log_config=None
            )
        )
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> StorageHost:
        self._thread.start()
        while not self._server.started:
            time.sleep(0.002)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def reset(self) -> None:
        self.files.clear()
        self.failures.clear()
        self.hits.clear()
        self.headers.clear()

    async def _redirect(self, request: Request) -> Response:
        """``/redirect/<n>/<name>``: n relative hops (like ActiveStorage), then the file."""
        self.hits["redirect"] += 1
        hops, name = request.path_params["hops"], request.path_params["name"]
        target = f"/redirect/{hops - 1}/{name}" if hops > 1 else f"/files/{name}"
        return RedirectResponse(target, 302)

    async def _away(self, request: Request) -> Response:
        """An absolute redirect to another origin (``localhost`` instead of ``127.0.0.1``)."""
        self.hits["away"] += 1
        return RedirectResponse(f"http://localhost:{self.port}/files/{request.path_params['name']}")

    async def _to_loopback(self, request: Request) -> Response:
        return RedirectResponse(f"{self.url}/files/{request.path_params['name']}", 302)

    async def _loop(self, request: Request) -> Response:
        return RedirectResponse(f"/loop/{request.path_params['n'] + 1}", 302)

    async def _stream(self, request: Request) -> Response:
        """``size`` bytes in 1 KiB chunks, without Content-Length."""

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(request.path_params["size"] // 1024):
                yield b"x" * 1024

        return StreamingResponse(chunks(), media_type="video/mp4")

    async def _slow(self, request: Request) -> Response:
        self.hits["slow"] += 1
        await asyncio.sleep(1.5)
        return Response(b"late", media_type="text/plain")

    async def _file(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.hits[name] += 1
        self.headers.append(dict(request.headers))
        if self.failures.get(name):
            self.failures[name] -= 1
            return Response(b"<html><title>503 Slow Down</title></html>", 503)
        if name not in self.files:
            return Response(b"<Error><Code>NoSuchKey</Code></Error>", 404)
        data, content_type, disposition = self.files[name]
        headers = {"content-disposition": disposition} if disposition else None
        return Response(data, media_type=content_type, headers=headers)


@pytest.fixture(scope="module")
def storage_server() -> Iterator[StorageHost]:
    with StorageHost() as host:
        yield host


@pytest.fixture
def storage(storage_server: StorageHost) -> StorageHost:
    storage_server.reset()
    return storage_server


@pytest.fixture(scope="module")
def http_client() -> Iterator[httpx.Client]:
    client = build_client(allow_private=True)
    client.timeout = httpx.Timeout(2.0, read=READ_TIMEOUT)
    yield client
    client.close()


def fetch(url: str, http: httpx.Client, **options: Any) -> File:
    return fetch_attachment(url, http=http, retry_max_wait=0.01, **options)


# --- redirects ----------------------------------------------------------------------------------


def test_follows_the_redirect_chain(storage: StorageHost, http_client: httpx.Client) -> None:
    storage.files["blob-7f3a"] = (PNG, "image/png", None)
    got = fetch(f"{storage.url}/redirect/3/blob-7f3a", http_client)
    assert got == File(PNG, "image/png", "blob-7f3a.png")
    assert storage.hits["redirect"] == 3 and storage.hits["blob-7f3a"] == 1
    assert "authorization" not in storage.headers[-1] and "cookie" not in storage.headers[-1]
    assert "size=" in repr(got) and "\\x89" not in repr(got)


def test_redirects_are_bounded(storage: StorageHost, http_client: httpx.Client) -> None:
    storage.files["a.png"] = (PNG, "image/png", None)
    assert fetch(f"{storage.url}/redirect/3/a.png", http_client, max_redirects=3).data == PNG
    with pytest.raises(RemoteBadResponse, match="more than 2 redirects"):
        fetch(f"{storage.url}/redirect/3/a.png", http_client, max_redirects=2)
    with pytest.raises(RemoteBadResponse, match="redirects"):
        fetch(f"{storage.url}/loop/0", http_client)


def test_redirect_to_another_origin(storage: StorageHost, http_client: httpx.Client) -> None:
    storage.files["remote.png"] = (PNG, "image/png", None)
    assert fetch(f"{storage.url}/away/remote.png", http_client).data == PNG
    assert storage.headers[-1]["host"] == f"localhost:{storage.port}"


def test_every_hop_goes_through_the_connect_time_guard(storage: StorageHost) -> None:
    """``media.test`` is allowed (its own transport), the loopback hop behind it is not."""
    storage.files["x.png"] = (PNG, "image/png", None)
    allowed = GuardedTransport(allow_private=True, resolver=lambda host, port: ["127.0.0.1"])
    with httpx.Client(
        transport=GuardedTransport(allow_private=False),
        mounts={"all://media.test": allowed},
        trust_env=False,
    ) as client:
        first_hop = f"http://media.test:{storage.port}"
        assert fetch(f"{first_hop}/files/x.png", client).data == PNG
        with pytest.raises(RemoteAddressNotAllowed):
            fetch(f"{first_hop}/to-loopback/x.png", client)
    assert storage.hits["x.png"] == 1  # the forbidden hop never connected
    with build_client(allow_private=False) as guarded, pytest.raises(RemoteAddressNotAllowed):
        fetch(f"{storage.url}/files/x.png", guarded)


# --- names and types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ('inline; filename="foto.png"', "foto.png"),
        ("attachment; filename*=UTF-8''relat%C3%B3rio%20final.pdf", "relatório final.pdf"),
        (
            "inline; filename=\"relatorio.pdf\"; filename*=UTF-8''relat%C3%B3rio.pdf",
            "relatório.pdf",
        ),
        ('attachment; filename="../../etc/passwd"', "passwd.png"),  # + the type's extension
        ("inline", "s3-key-91ab.png"),  # no name: the URL's last segment, with an extension
    ],
)
def test_filename(
    storage: StorageHost, http_client: httpx.Client, disposition: str, expected: str
) -> None:
    storage.files["s3-key-91ab"] = (PNG, "image/png", disposition)
    got = fetch(f"{storage.url}/files/s3-key-91ab", http_client)
    assert got.filename == expected


def test_filename_from_chatwoots_url(storage: StorageHost, http_client: httpx.Client) -> None:
    storage.files["Contrato Março.pdf"] = (b"%PDF-1.7", "application/pdf", None)
    got = fetch(f"{storage.url}/redirect/1/Contrato%20Mar%C3%A7o.pdf", http_client)
    assert (got.data, got.content_type, got.filename) == (
        b"%PDF-1.7",
        "application/pdf",
        "Contrato Março.pdf",
    )


def test_filename_from_disposition_helper() -> None:
    assert filename_from_disposition(None) is None
    assert filename_from_disposition("attachment") is None
    assert filename_from_disposition("attachment; filename*=UTF-8''%E2%82%AC.txt") == "€.txt"


# --- size, missing files, transient failures ----------------------------------------------------


def test_size_bound(storage: StorageHost, http_client: httpx.Client) -> None:
    storage.files["big.png"] = (PNG, "image/png", None)
    with pytest.raises(MediaTooLarge, match="100"):  # announced by Content-Length
        fetch(f"{storage.url}/files/big.png", http_client, max_bytes=100)
    assert fetch(f"{storage.url}/files/big.png", http_client, max_bytes=len(PNG)).data == PNG
    with pytest.raises(MediaTooLarge):  # chunked: counted while streaming
        fetch(f"{storage.url}/stream/65536", http_client, max_bytes=10_000)
    assert len(fetch(f"{storage.url}/stream/65536", http_client).data) == 65536


def test_missing_file(storage: StorageHost, http_client: httpx.Client) -> None:
    with pytest.raises(RemoteNotFound) as caught:
        fetch(f"{storage.url}/redirect/2/gone.png", http_client)
    assert caught.value.status == 404 and "NoSuchKey" in str(caught.value)
    assert storage.hits["gone.png"] == 1  # permanent: not retried


def test_transient_failures_are_retried(storage: StorageHost, http_client: httpx.Client) -> None:
    storage.files["flaky.png"] = (PNG, "image/png", None)
    storage.failures["flaky.png"] = 2
    assert fetch(f"{storage.url}/redirect/1/flaky.png", http_client).data == PNG
    assert storage.hits["flaky.png"] == 3 and storage.hits["redirect"] == 3  # whole chain again

    storage.failures["flaky.png"] = 5
    with pytest.raises(RemoteServerError) as caught:
        fetch(f"{storage.url}/files/flaky.png", http_client, retry_attempts=2)
    assert caught.value.status == 503 and storage.hits["flaky.png"] == 5


def test_timeout_and_unreachable(storage: StorageHost, http_client: httpx.Client) -> None:
    with pytest.raises(RemoteTimeout):
        fetch(f"{storage.url}/slow/x", http_client, timeout=0.2, retry_attempts=2)
    assert storage.hits["slow"] == 2
    with pytest.raises(RemoteUnreachable):
        fetch(f"{FakeChatwoot.unused_url()}/files/x.png", http_client)


# --- against FakeChatwoot's ActiveStorage URLs --------------------------------------------------


def test_an_attachment_of_fake_chatwoot(chatwoot: FakeChatwoot, http_client: httpx.Client) -> None:
    account_id = chatwoot.add_account("Acme")
    token = chatwoot.add_user("Ada", {account_id: "administrator"})
    client = ChatwootClient(chatwoot.base_url, account_id, token, http=http_client)
    inbox_id = int(client.create_api_inbox("WhatsApp", "https://bridge.example/wh")["id"])
    contact = client.create_contact(inbox_id, "5511999990000", "Maria", "+5511999990000")
    contact_id = int(contact["contact"]["id"])
    conversation = client.create_conversation(inbox_id, contact_id, "5511999990000")
    message = client.create_message(
        int(conversation["id"]),
        content="segue o boleto",
        message_type="outgoing",
        attachments=[File(b"%PDF-1.4\r\n\x00\xff", "application/pdf", "boleto.pdf")],
    )
    data_url = message["attachments"][0]["data_url"]
    assert "/rails/active_storage/blobs/redirect/" in data_url

    got = fetch(data_url, http_client)
    assert got == File(b"%PDF-1.4\r\n\x00\xff", "application/pdf", "boleto.pdf")
