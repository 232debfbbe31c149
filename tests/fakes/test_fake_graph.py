"""Tests of the fake Graph API itself, over real HTTP with httpx."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.graph import FakeGraph, signed_webhook, status_webhook
from tests.fakes.graph_contract import message_problems
from tests.reference import whatsapp_cloud_dir

PHONE_ID = "106540352242922"
TOKEN = "EAAG-fake-token-1"
OTHER_PHONE_ID = "106540352242999"
OTHER_TOKEN = "EAAG-fake-token-2"
REFERENCE = whatsapp_cloud_dir()
REQUESTS = REFERENCE / "2026" / "requests"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def graph(server: FakeGraph) -> FakeGraph:
    server.reset()
    server.url_ttl = 300.0
    server.download_redirects = 0
    server.add_phone_number(PHONE_ID, TOKEN)
    server.add_phone_number(OTHER_PHONE_ID, OTHER_TOKEN)
    return server


@pytest.fixture
def api(graph: FakeGraph) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=graph.base_url, headers=headers, timeout=5) as client:
        yield client


def error_of(resp: httpx.Response) -> dict[str, Any]:
    body = resp.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert {"message", "type", "code", "fbtrace_id"} <= set(error)
    return error


def text_message(to: str = "16505551234", body: str = "hello") -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": body},
    }


# --- media --------------------------------------------------------------------------------------


def test_media_metadata_and_download(graph: FakeGraph, api: httpx.Client) -> None:
    data = b"\xff\xd8\xff-jpeg-bytes"
    media_id = graph.add_media(data, "image/jpeg")
    info = api.get(f"/{media_id}").json()
    assert info["id"] == media_id and info["messaging_product"] == "whatsapp"
    assert info["mime_type"] == "image/jpeg"
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert info["file_size"] == str(len(data))  # a string, as in the spec
    assert info["url"].startswith(graph.origin + "/whatsapp_business/attachments/?mid=")

    download = api.get(info["url"])
    assert download.status_code == 200
    assert download.content == data and download.headers["content-type"] == "image/jpeg"
    # the URL alone is not enough: Meta wants the bearer on the download too
    anonymous = httpx.get(info["url"])
    assert anonymous.status_code == 401 and error_of(anonymous)["code"] == 190


def test_bad_tokens_and_foreign_media(graph: FakeGraph, api: httpx.Client) -> None:
    own = graph.add_media(b"x", "audio/ogg", phone_number_id=PHONE_ID)
    foreign = graph.add_media(b"y", "audio/ogg", phone_number_id=OTHER_PHONE_ID)
    bad = httpx.get(f"{graph.base_url}/{own}", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and error_of(bad)["type"] == "OAuthException"
    assert error_of(bad)["code"] == 190
    assert api.get(f"/{own}").status_code == 200
    refused = api.get(f"/{foreign}")
    assert refused.status_code == 400  # Graph never says 404 for an object id
    assert (error_of(refused)["code"], error_of(refused)["error_subcode"]) == (100, 33)
    assert api.get(f"/{own}", params={"phone_number_id": OTHER_PHONE_ID}).status_code == 400


def test_expired_forged_and_deleted_urls(graph: FakeGraph, api: httpx.Client) -> None:
    media_id = graph.add_media(b"abc", "application/pdf")
    url = api.get(f"/{media_id}").json()["url"]
    assert api.get(url.replace("hash=", "hash=0")).status_code == 404
    graph.expire_media_urls()
    assert api.get(url).status_code == 404
    graph.url_ttl = -1
    assert api.get(api.get(f"/{media_id}").json()["url"]).status_code == 404
    graph.url_ttl = 300
    fresh = api.get(f"/{media_id}").json()["url"]
    assert api.delete(f"/{media_id}").json() == {"success": True}
    assert api.get(fresh).status_code == 404
    gone = api.get(f"/{media_id}")
    assert gone.status_code == 400 and error_of(gone)["error_subcode"] == 33


def test_download_redirects(graph: FakeGraph, api: httpx.Client) -> None:
    graph.download_redirects = 2
    media_id = graph.add_media(b"video", "video/mp4")
    url = api.get(f"/{media_id}").json()["url"]
    first = api.get(url)
    assert first.status_code == 302 and "hop=1" in first.headers["location"]
    followed = api.get(url, follow_redirects=True)
    assert followed.content == b"video" and len(followed.history) == 2


def test_upload_media(graph: FakeGraph, api: httpx.Client) -> None:
    resp = api.post(
        f"/{PHONE_ID}/media",
        data={"messaging_product": "whatsapp", "type": "audio/ogg"},
        files={"file": ("note.ogg", b"OggS-bytes", "audio/ogg")},
    )
    assert resp.status_code == 200
    media_id = resp.json()["id"]
    assert graph.media[media_id].data == b"OggS-bytes"
    assert graph.media[media_id].phone_number_id == PHONE_ID
    info = api.get(f"/{media_id}").json()
    assert (info["mime_type"], info["file_size"]) == ("audio/ogg", "10")
    call = graph.calls[0]
    assert call.form == {
        "messaging_product": "whatsapp",
        "type": "audio/ogg",
        "file": {"filename": "note.ogg", "content_type": "audio/ogg", "size": 10},
    }
    assert call.headers["authorization"] == "<redacted>"
    assert TOKEN not in repr(graph.calls)

    missing = api.post(f"/{PHONE_ID}/media", files={"file": ("a.ogg", b"x", "audio/ogg")})
    assert missing.status_code == 400 and "messaging_product" in error_of(missing)["message"]
    foreign = api.post(
        f"/{OTHER_PHONE_ID}/media",
        data={"messaging_product": "whatsapp"},
        files={"file": ("a.ogg", b"x", "audio/ogg")},
    )
    assert foreign.status_code == 400 and error_of(foreign)["error_subcode"] == 33


# --- messages -----------------------------------------------------------------------------------


def test_send_text(graph: FakeGraph, api: httpx.Client) -> None:
    graph.set_wa_id("+55 11 98765-4321", "551187654321")
    resp = api.post(f"/{PHONE_ID}/messages", json=text_message("5511987654321"))
    assert resp.status_code == 200
    body = resp.json()
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": "5511987654321", "wa_id": "551187654321"}]
    message_id = body["messages"][0]["id"]
    assert message_id.startswith("wamid.")
    [sent] = graph.sent
    assert (sent.phone_number_id, sent.message_id, sent.to) == (
        PHONE_ID,
        message_id,
        "5511987654321",
    )
    assert sent.body == text_message("5511987654321")
    again = api.post(f"/{PHONE_ID}/messages", json=text_message("5511987654321"))
    assert again.json()["messages"][0]["id"] != message_id
    assert graph.schema_errors == []


def test_send_needs_own_number(graph: FakeGraph, api: httpx.Client) -> None:
    resp = api.post(f"/{OTHER_PHONE_ID}/messages", json=text_message())
    assert resp.status_code == 400 and error_of(resp)["error_subcode"] == 33
    assert graph.sent == []


@pytest.mark.parametrize(
    "body, problem",
    [
        ({"messaging_product": "whatsapp", "to": "1", "type": "text"}, "'text' is a required"),
        ({**text_message(), "text": {"body": "x", "bold": True}}, "text: Additional properties"),
        ({**text_message(), "type": "hologram"}, "unsupported message type 'hologram'"),
        (
            {"messaging_product": "whatsapp", "to": "1", "type": "image", "image": {}},
            "image: {} is not valid",
        ),
        ({**text_message(), "to": 5511}, "to: 5511 is not of type 'string'"),
    ],
)
def test_send_rejects_what_the_spec_forbids(
    graph: FakeGraph, api: httpx.Client, body: dict[str, Any], problem: str
) -> None:
    resp = api.post(f"/{PHONE_ID}/messages", json=body)
    assert resp.status_code == 400
    error = error_of(resp)
    assert error["code"] == 100 and problem in error["error_data"]["details"]
    assert any(problem in p for p in graph.schema_errors)
    assert graph.sent == []


def test_send_accepts_media_location_contacts_reaction(graph: FakeGraph, api: httpx.Client) -> None:
    base = {"messaging_product": "whatsapp", "to": "16505551234"}
    bodies: list[dict[str, Any]] = [
        {**base, "type": "image", "image": {"id": "123", "caption": "look"}},
        {
            **base,
            "type": "document",
            "document": {"link": "https://x.test/a.pdf", "filename": "a.pdf"},
        },
        {**base, "type": "audio", "audio": {"id": "456"}, "context": {"message_id": "wamid.1"}},
        {**base, "type": "location", "location": {"latitude": -23.5, "longitude": -46.6}},
        {**base, "type": "reaction", "reaction": {"message_id": "wamid.1", "emoji": "👍"}},
        {
            **base,
            "type": "contacts",
            "contacts": [{"name": {"formatted_name": "Ada"}, "phones": [{"phone": "+1 650"}]}],
        },
    ]
    for body in bodies:
        assert api.post(f"/{PHONE_ID}/messages", json=body).status_code == 200, body
    assert [s.body["type"] for s in graph.sent] == [b["type"] for b in bodies]
    assert graph.schema_errors == []


@pytest.mark.parametrize("name", sorted(p.name for p in REQUESTS.glob("*.json")))
def test_the_bridges_2026_request_bodies_are_accepted(
    graph: FakeGraph, api: httpx.Client, name: str
) -> None:
    """Text to a BSUID in ``recipient``, a read receipt with a typing indicator, a template."""
    body = json.loads((REQUESTS / name).read_text())
    assert message_problems(body) == []
    resp = api.post(f"/{PHONE_ID}/messages", json=body)
    assert resp.status_code == 200, resp.text
    assert graph.schema_errors == []


@pytest.mark.parametrize(
    "body, problem",
    [
        (
            {"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}},
            "'to' (a phone number or group id) or 'recipient'",
        ),
        (
            {**text_message(), "to": None, "recipient": "16505551234"},
            "recipient: '16505551234' does not match",
        ),
        (
            {
                "messaging_product": "whatsapp",
                "recipient_type": "group",
                "recipient": "US.13491208655302741918",
                "text": {"body": "x"},
            },
            "'to' (a phone number or group id) or 'recipient'",
        ),
        (
            {
                "messaging_product": "whatsapp",
                "status": "read",
                "message_id": "wamid.X",
                "typing_indicator": {"type": "audio"},
            },
            "typing_indicator/type: 'text' was expected",
        ),
        (
            {
                **text_message(),
                "type": "template",
                "template": {"name": "t", "language": {"code": "en"}, "components": [{}]},
            },
            "template/components/0: {} is not valid",
        ),
    ],
)
def test_addresses_receipts_and_templates_are_checked(body: dict[str, Any], problem: str) -> None:
    body = {k: v for k, v in body.items() if v is not None}
    problems = message_problems(body)
    assert any(problem in p for p in problems), problems


def test_read_receipt(graph: FakeGraph, api: httpx.Client) -> None:
    body = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.X"}
    assert api.post(f"/{PHONE_ID}/messages", json=body).json() == {"success": True}
    assert graph.read_receipts == [body] and graph.sent == []


# --- faults -------------------------------------------------------------------------------------


def test_fail_next_default_envelopes(graph: FakeGraph, api: httpx.Client) -> None:
    media_id = graph.add_media(b"x", "image/png")
    graph.fail_next("GET", rf"/{media_id}$", 401)
    graph.fail_next("GET", rf"/{media_id}$", 503)
    graph.fail_next("GET", rf"/{media_id}$", 429)
    expected = [(401, 190), (503, 2), (429, 130429)]
    for status, code in expected:
        resp = api.get(f"/{media_id}")
        assert (resp.status_code, error_of(resp)["code"]) == (status, code)
    assert api.get(f"/{media_id}").status_code == 200
    assert [c.status for c in graph.calls] == [401, 503, 429, 200]


def test_fail_next_with_code_times_and_verbatim_body(graph: FakeGraph, api: httpx.Client) -> None:
    graph.fail_next("POST", r"/messages$", 400, body=131056, times=2)
    for _ in range(2):
        resp = api.post(f"/{PHONE_ID}/messages", json=text_message())
        error = error_of(resp)
        assert (resp.status_code, error["code"]) == (400, 131056)
        assert "pair rate limit" in error["message"] and error["error_data"]["details"]
    assert api.post(f"/{PHONE_ID}/messages", json=text_message()).status_code == 200
    assert len(graph.sent) == 1  # faults are answered without processing

    graph.fail_next("POST", r"/messages$", 500, body={"custom": True})
    resp = api.post(f"/{PHONE_ID}/messages", json=text_message())
    assert (resp.status_code, resp.json()) == (500, {"custom": True})


def test_fail_recipient(graph: FakeGraph, api: httpx.Client) -> None:
    graph.fail_recipient("+1 650-555-0000", 400, body=131047)
    blocked = api.post(f"/{PHONE_ID}/messages", json=text_message("16505550000"))
    assert blocked.status_code == 400 and error_of(blocked)["code"] == 131047
    other = api.post(f"/{PHONE_ID}/messages", json=text_message("16505551111"))
    assert other.status_code == 200
    retried = api.post(f"/{PHONE_ID}/messages", json=text_message("16505550000"))
    assert retried.status_code == 200
    assert [s.to for s in graph.sent] == ["16505551111", "16505550000"]


def test_delay_processes_but_answers_late(graph: FakeGraph, api: httpx.Client) -> None:
    graph.set_delay("POST", r"/messages$", 1.0, times=1)
    with pytest.raises(httpx.ReadTimeout):
        api.post(f"/{PHONE_ID}/messages", json=text_message(), timeout=0.2)
    assert len(graph.sent) == 1  # the send happened; only the answer was slow
    assert api.post(f"/{PHONE_ID}/messages", json=text_message(), timeout=0.5).status_code == 200


def test_unknown_path_and_unused_url(graph: FakeGraph, api: httpx.Client) -> None:
    resp = api.get(f"/{PHONE_ID}/nothing/here")
    assert resp.status_code == 400 and error_of(resp)["code"] == 2500
    with pytest.raises(httpx.ConnectError):
        httpx.get(FakeGraph.unused_url() + "/123")


def test_restart_keeps_port_and_state() -> None:
    with FakeGraph() as fake:
        fake.add_phone_number(PHONE_ID, TOKEN)
        media_id = fake.add_media(b"z", "image/gif")
        before = fake.base_url
        fake.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{before}/{media_id}")
        fake.start()
        assert fake.base_url == before
        resp = httpx.get(f"{before}/{media_id}", headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.json()["mime_type"] == "image/gif"


# --- webhook helpers ----------------------------------------------------------------------------


def test_signed_webhook() -> None:
    body = json.loads((REFERENCE / "inbound_text.json").read_text())
    raw, headers = signed_webhook(body, "app-secret")
    assert json.loads(raw) == body
    expected = hmac.new(b"app-secret", raw, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature-256"] == f"sha256={expected}"
    assert headers["Content-Type"] == "application/json"
    assert signed_webhook(body, "other")[1] != headers


def test_status_webhook_matches_reference_shape() -> None:
    reference = json.loads((REFERENCE / "status_failed_131047.json").read_text())
    built = status_webhook(
        "106540352242922",
        "wamid.EXAMPLE_BUSINESS_MSG_0001",
        "16505551234",
        "failed",
        error_code=131047,
        timestamp=1750025300,
    )
    ref_status = reference["entry"][0]["changes"][0]["value"]["statuses"][0]
    status = built["entry"][0]["changes"][0]["value"]["statuses"][0]
    assert {k: status[k] for k in ("id", "status", "timestamp", "recipient_id")} == {
        k: ref_status[k] for k in ("id", "status", "timestamp", "recipient_id")
    }
    assert status["errors"][0]["code"] == 131047
    assert status["errors"][0]["title"] == ref_status["errors"][0]["title"]
    assert built["entry"][0]["changes"][0]["field"] == "messages"
    assert built["object"] == reference["object"]


def test_the_sent_record_lists_accepted_messages_in_order(
    graph: FakeGraph, api: httpx.Client
) -> None:
    """What a benchmark running the fake in another process reads back: recipient and text of
    each accepted message, in the order accepted; a refused one is not in it."""
    assert api.post(f"/{PHONE_ID}/messages", json=text_message("16505550001", "one")).is_success
    assert api.post(f"/{PHONE_ID}/messages", json={"to": "1"}).status_code == 400
    assert api.post(f"/{PHONE_ID}/messages", json=text_message("16505550002", "two")).is_success
    image = text_message("16505550001") | {"type": "image", "image": {"id": "123"}}
    del image["text"]
    assert api.post(f"/{PHONE_ID}/messages", json=image).is_success

    record = httpx.get(f"{graph.origin}/__fake/sent").json()

    assert record == [["16505550001", "one"], ["16505550002", "two"], ["16505550001", None]]
