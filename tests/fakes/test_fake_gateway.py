"""Tests of the fake RyzeAPI gateway itself, over real HTTP with httpx."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.relay.inbound.gateway_webhook import envelope_token, parse_gateway_webhook
from app.relay.messages import InboundMessage
from tests.fakes import gateway_samples as gs
from tests.fakes.gateway import REDACTED, FakeGateway

TOKEN = "gw-token-suporte"
OTHER_TOKEN = "gw-token-vendas"
TEXT = "/api/message/text/suporte"
MEDIA = "/api/message/media/suporte"
REACTION = "/api/message/reaction/suporte"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeGateway]:
    with FakeGateway() as fake:
        yield fake


@pytest.fixture
def gw(server: FakeGateway) -> FakeGateway:
    server.reset()
    server.add_instance("suporte", TOKEN)
    server.add_instance("vendas", OTHER_TOKEN)
    return server


@pytest.fixture
def client(gw: FakeGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.base_url, headers={"token": TOKEN}, timeout=5) as c:
        yield c


def error_of(response: httpx.Response) -> str:
    body = response.json()
    assert body["success"] is False
    assert set(body) == {"success", "error"}
    message: str = body["error"]["message"]
    return message


# ---- sends ----
def test_send_text_answers_with_a_new_message_id(gw: FakeGateway, client: httpx.Client) -> None:
    response = client.post(TEXT, json={"number": gs.CUSTOMER, "message": "Olá!"})
    assert response.status_code == 200
    body = response.json()
    assert (body["success"], body["message"], body["status"]) == (
        True,
        "Message sent successfully",
        "sent",
    )
    data = body["data"]
    assert data["messageId"].startswith("3EB0") and len(data["messageId"]) == 22
    assert (data["messageType"], data["content"], data["direction"]) == ("text", "Olá!", "outgoing")
    assert data["chat"]["jid"] == f"{gs.CUSTOMER}@s.whatsapp.net"
    assert "replyTo" not in data
    (sent,) = gw.sent
    assert (sent.instance, sent.kind, sent.number, sent.message_id) == (
        "suporte",
        "text",
        gs.CUSTOMER,
        data["messageId"],
    )
    assert sent.body == {"number": gs.CUSTOMER, "message": "Olá!"}


def test_message_ids_are_unique(gw: FakeGateway, client: httpx.Client) -> None:
    ids = {
        client.post(TEXT, json={"number": gs.CUSTOMER, "message": str(i)}).json()["data"][
            "messageId"
        ]
        for i in range(5)
    }
    assert len(ids) == 5
    assert [m.body["message"] for m in gw.sent_to(gs.CUSTOMER)] == ["0", "1", "2", "3", "4"]


def test_send_text_reply_and_group(gw: FakeGateway, client: httpx.Client) -> None:
    response = client.post(
        TEXT, json={"number": gs.GROUP, "message": "ok", "replyTo": "wamid.customer.1"}
    )
    data = response.json()["data"]
    assert data["replyTo"] == {"messageId": "wamid.customer.1"}
    assert data["chat"] == {"jid": gs.GROUP, "type": "group"}


@pytest.mark.parametrize(
    "body, message",
    [
        ({"message": "x"}, "number is required"),
        ({"number": "", "message": "x"}, "number is required"),
        ({"number": gs.CUSTOMER}, "message is required"),
        ({"number": gs.CUSTOMER, "message": 5}, "message is required"),
        ({"number": "abc", "message": "x"}, "Invalid number format"),
        ({"number": gs.CUSTOMER, "message": "x", "replyTo": 7}, "replyTo must be a message id"),
        ([1, 2], "Invalid request body"),
    ],
)
def test_send_text_validation(
    gw: FakeGateway, client: httpx.Client, body: Any, message: str
) -> None:
    response = client.post(TEXT, json=body)
    assert (response.status_code, error_of(response)) == (400, message)
    assert gw.sent == []


def test_malformed_json_is_400(gw: FakeGateway, client: httpx.Client) -> None:
    response = client.post(TEXT, content=b"{nope", headers={"content-type": "application/json"})
    assert (response.status_code, error_of(response)) == (400, "Invalid request body")
    assert gw.calls[-1].json is None and gw.calls[-1].status == 400


def test_send_media_downloads_the_url(gw: FakeGateway, client: httpx.Client) -> None:
    url = gw.add_media(b"%PDF-1.7 contract", "application/pdf")
    response = client.post(
        MEDIA,
        json={
            "number": gs.CUSTOMER,
            "mediaType": "document",
            "mediaUrl": url,
            "message": "Segue o contrato",
            "fileName": "Contrato.pdf",
        },
    )
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["messageType"], data["content"]) == ("document", "Segue o contrato")
    assert (data["mediaMimeType"], data["mediaSize"]) == ("application/pdf", 17)
    (sent,) = gw.sent
    assert (sent.kind, sent.media_bytes) == ("media", b"%PDF-1.7 contract")
    assert sent.body["fileName"] == "Contrato.pdf"


def test_send_media_from_base64(gw: FakeGateway, client: httpx.Client) -> None:
    encoded = base64.b64encode(b"\x89PNG fake").decode()
    response = client.post(
        MEDIA,
        json={
            "number": gs.CUSTOMER,
            "mediaType": "image",
            "mediaBase64": encoded,
            "mimeType": "image/png",
        },
    )
    assert response.status_code == 200
    assert gw.sent[0].media_bytes == b"\x89PNG fake"
    assert response.json()["data"]["mediaMimeType"] == "image/png"


@pytest.mark.parametrize(
    "body, message",
    [
        (
            {"mediaType": "gif", "mediaUrl": "https://x/y"},
            "mediaType must be one of: image, video, document, audio",
        ),
        ({"mediaType": "image"}, "send either mediaUrl or mediaBase64"),
        (
            {"mediaType": "image", "mediaUrl": "https://x/y", "mediaBase64": "aGk="},
            "send either mediaUrl or mediaBase64",
        ),
        ({"mediaType": "image", "mediaBase64": "%%%"}, "Invalid base64 media"),
        (
            {"mediaType": "document", "mediaBase64": "aGk=", "fileName": 3},
            "fileName must be a string",
        ),
    ],
)
def test_send_media_validation(
    gw: FakeGateway, client: httpx.Client, body: dict[str, Any], message: str
) -> None:
    response = client.post(MEDIA, json={"number": gs.CUSTOMER, **body})
    assert (response.status_code, error_of(response)) == (400, message)
    assert gw.sent == []


def test_send_media_whose_url_cannot_be_fetched(gw: FakeGateway, client: httpx.Client) -> None:
    for url in (f"{gw.base_url}/media/missing", FakeGateway.unused_url() + "/a.jpg"):
        response = client.post(
            MEDIA, json={"number": gs.CUSTOMER, "mediaType": "image", "mediaUrl": url}
        )
        assert (response.status_code, error_of(response)) == (
            400,
            "Failed to download media from URL",
        )
    assert gw.sent == []


def test_send_reaction_and_removal(gw: FakeGateway, client: httpx.Client) -> None:
    response = client.post(
        REACTION,
        json={"number": gs.CUSTOMER, "messageId": "wamid.c.1", "reaction": "👍", "fromMe": False},
    )
    body = response.json()
    assert (response.status_code, body["message"]) == (200, "Reaction sent successfully")
    assert (body["data"]["content"], body["data"]["replyTo"]) == ("👍", {"messageId": "wamid.c.1"})
    removed = client.post(
        REACTION, json={"number": gs.CUSTOMER, "messageId": "wamid.c.1", "reaction": "remove"}
    ).json()
    assert (removed["message"], removed["data"]["content"]) == ("Reaction removed successfully", "")
    assert [m.kind for m in gw.sent] == ["reaction", "reaction"]


def test_group_reaction_needs_participant(gw: FakeGateway, client: httpx.Client) -> None:
    body = {"number": gs.GROUP, "messageId": "wamid.c.1", "reaction": "👍", "fromMe": False}
    response = client.post(REACTION, json=body)
    assert (response.status_code, error_of(response)) == (400, "missing_participant")
    ok = client.post(REACTION, json={**body, "participant": "5521987654321@s.whatsapp.net"})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "body, message",
    [
        ({"reaction": "👍"}, "messageId is required"),
        ({"messageId": "wamid.c.1"}, "reaction is required"),
        ({"messageId": "wamid.c.1", "reaction": "👍", "fromMe": "no"}, "fromMe must be a boolean"),
    ],
)
def test_send_reaction_validation(client: httpx.Client, body: dict[str, Any], message: str) -> None:
    response = client.post(REACTION, json={"number": gs.CUSTOMER, **body})
    assert (response.status_code, error_of(response)) == (400, message)


# ---- authentication ----
@pytest.mark.parametrize(
    "headers, path, status, message",
    [
        ({}, TEXT, 401, "Missing token in header, Authorization header, or query parameter"),
        ({"token": "wrong"}, TEXT, 401, "Invalid token"),
        ({"token": TOKEN}, "/api/message/text/ghost", 404, "Instance not found"),
        ({"token": OTHER_TOKEN}, TEXT, 403, "Instance token does not match this instance"),
    ],
)
def test_token_checks(
    gw: FakeGateway, headers: dict[str, str], path: str, status: int, message: str
) -> None:
    response = httpx.post(
        gw.base_url + path, headers=headers, json={"number": gs.CUSTOMER, "message": "x"}
    )
    assert (response.status_code, error_of(response)) == (status, message)
    assert gw.sent == []


def test_bearer_token_is_accepted_and_never_recorded(gw: FakeGateway) -> None:
    response = httpx.post(
        gw.base_url + TEXT,
        headers={"authorization": f"Bearer {TOKEN}"},
        json={"number": gs.CUSTOMER, "message": "x"},
    )
    assert response.status_code == 200
    httpx.post(
        gw.base_url + TEXT, headers={"token": TOKEN}, json={"number": gs.CUSTOMER, "message": "y"}
    )
    httpx.post(gw.base_url + TEXT + f"?token={TOKEN}", json={"number": gs.CUSTOMER, "message": "z"})
    assert len(gw.sent) == 3
    assert gw.calls[0].headers["authorization"] == REDACTED
    assert gw.calls[1].headers["token"] == REDACTED
    assert gw.calls[2].query["token"] == REDACTED
    assert all(TOKEN not in repr(call) for call in gw.calls)


def test_disconnected_instance_is_503(gw: FakeGateway, client: httpx.Client) -> None:
    gw.set_connected("suporte", False)
    response = client.post(TEXT, json={"number": gs.CUSTOMER, "message": "x"})
    assert (response.status_code, error_of(response)) == (
        503,
        "Instance is not connected to WhatsApp",
    )
    gw.set_connected("suporte", True)
    assert client.post(TEXT, json={"number": gs.CUSTOMER, "message": "x"}).status_code == 200


def test_unknown_route_is_404(client: httpx.Client) -> None:
    response = client.post("/api/message/poll/suporte", json={})
    assert (response.status_code, error_of(response)) == (404, "Not Found")


# ---- media for inbound tests ----
def test_media_is_served_by_id(gw: FakeGateway) -> None:
    url = gw.add_media(b"OggS voice", "audio/ogg")
    response = httpx.get(url)
    assert (response.status_code, response.content) == (200, b"OggS voice")
    assert response.headers["content-type"] == "audio/ogg"
    assert httpx.get(f"{gw.base_url}/media/unknown").status_code == 404


# ---- faults ----
def test_fail_next_answers_a_ryzeapi_error_then_recovers(
    gw: FakeGateway, client: httpx.Client
) -> None:
    gw.fail_next("POST", r"/api/message/text/", 503, times=2)
    payload = {"number": gs.CUSTOMER, "message": "x"}
    for _ in range(2):
        response = client.post(TEXT, json=payload)
        assert (response.status_code, error_of(response)) == (
            503,
            "Instance is not connected to WhatsApp",
        )
    assert client.post(TEXT, json=payload).status_code == 200
    assert [c.status for c in gw.calls] == [503, 503, 200]
    assert len(gw.sent) == 1  # faulted requests are not processed


def test_fail_next_with_custom_body_and_method_filter(
    gw: FakeGateway, client: httpx.Client
) -> None:
    gw.fail_next("GET", r"/media/", 500, body={"oops": True})
    assert client.post(TEXT, json={"number": gs.CUSTOMER, "message": "x"}).status_code == 200
    response = httpx.get(gw.add_media(b"x", "image/png"))
    assert (response.status_code, response.json()) == (500, {"oops": True})


def test_set_delay_holds_the_answer_but_processes_the_send(gw: FakeGateway) -> None:
    gw.set_delay("POST", r"/text/", 1.0, times=1)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            gw.base_url + TEXT,
            headers={"token": TOKEN},
            timeout=0.1,
            json={"number": gs.CUSTOMER, "message": "slow"},
        )
    deadline = time.monotonic() + 2
    while not gw.sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [m.body["message"] for m in gw.sent] == ["slow"]  # the effect is left behind
    start = time.monotonic()
    assert (
        httpx.post(
            gw.base_url + TEXT,
            headers={"token": TOKEN},
            json={"number": gs.CUSTOMER, "message": "fast"},
        ).status_code
        == 200
    )
    assert time.monotonic() - start < 0.8


def test_unused_url_refuses_connections() -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(FakeGateway.unused_url())


def test_restart_keeps_port_and_state() -> None:
    fake = FakeGateway()
    fake.start()
    try:
        fake.add_instance("suporte", TOKEN)
        url = fake.base_url
        fake.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.get(url + "/media/x")
        fake.start()
        assert fake.base_url == url
        response = httpx.post(
            url + TEXT, headers={"token": TOKEN}, json={"number": gs.CUSTOMER, "message": "back"}
        )
        assert response.status_code == 200
    finally:
        fake.stop()


def test_concurrent_sends_are_all_recorded(gw: FakeGateway) -> None:
    def send(i: int) -> None:
        httpx.post(
            gw.base_url + TEXT,
            headers={"token": TOKEN},
            json={"number": gs.CUSTOMER, "message": str(i)},
        )

    threads = [threading.Thread(target=send, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(int(m.body["message"]) for m in gw.sent) == list(range(10))
    assert len({m.message_id for m in gw.sent}) == 10


# ---- webhook envelopes ----
def test_webhook_body_round_trips_through_the_parser(gw: FakeGateway) -> None:
    body = gw.webhook_body("message.exchange", gs.text_data(text="oi"), "suporte")
    assert body["instanceData"] == {"baseUrl": gw.base_url, "instance": "suporte", "token": TOKEN}
    assert envelope_token(body) == TOKEN
    (event,) = parse_gateway_webhook(body, "message.exchange").events
    assert isinstance(event, InboundMessage) and event.text == "oi"
    explicit = gw.webhook_body("message.status", gs.status_data(), "suporte", token="other")
    assert envelope_token(explicit) == "other"


def test_inbound_media_url_from_the_fake_is_downloadable(gw: FakeGateway) -> None:
    url = gw.add_media(b"\xff\xd8 jpeg", "image/jpeg")
    body = gw.webhook_body("message.exchange", gs.image_data(s3_url=url, url=None), "suporte")
    (event,) = parse_gateway_webhook(body, None).events
    assert isinstance(event, InboundMessage) and event.media is not None
    assert event.media.url == url
    assert httpx.get(event.media.url).content == b"\xff\xd8 jpeg"
