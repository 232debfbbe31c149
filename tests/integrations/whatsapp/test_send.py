"""CloudSender against FakeGraph and GatewaySender against FakeGateway (real HTTP servers)."""

from __future__ import annotations

import base64
import pickle
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.integrations.http import build_client
from app.integrations.whatsapp.cloud_send import CloudSender
from app.integrations.whatsapp.gateway_send import GatewaySender
from app.integrations.whatsapp.hints import WINDOW_CLOSED_HINT
from app.integrations.whatsapp.send import (
    OutgoingMedia,
    SendAuthFailure,
    SendFailure,
    SendOutcomeUnknown,
    SendResult,
    SendRetryLater,
)
from tests.fakes.gateway import FakeGateway
from tests.fakes.graph import FakeGraph, graph_error

PHONE_ID = "106540352242922"
TOKEN = "EAAG-cloud-secret-do-not-leak"
TO = "5511999998888"
OTHER = "5521988887777"
INSTANCE = "suporte"
GW_TOKEN = "gw-secret-do-not-leak"
READ_TIMEOUT = 0.5
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8 + b"\r\n--boundary--\r\n\x00"
MESSAGES = r"/messages$"
UPLOADS = r"/media$"


@pytest.fixture(scope="module")
def http_client() -> Iterator[httpx.Client]:
    client = build_client(allow_private=True)
    client.timeout = httpx.Timeout(2.0, read=READ_TIMEOUT)
    yield client
    client.close()


@pytest.fixture(scope="module")
def graph_server() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def graph(graph_server: FakeGraph) -> Iterator[FakeGraph]:
    graph_server.reset()
    graph_server.add_phone_number(PHONE_ID, TOKEN)
    yield graph_server
    assert graph_server.schema_errors == []
    assert TOKEN not in repr(graph_server.calls)


@pytest.fixture(scope="module")
def gateway_server() -> Iterator[FakeGateway]:
    with FakeGateway() as fake:
        yield fake


@pytest.fixture
def gw(gateway_server: FakeGateway) -> Iterator[FakeGateway]:
    gateway_server.reset()
    gateway_server.add_instance(INSTANCE, GW_TOKEN)
    yield gateway_server
    assert GW_TOKEN not in repr(gateway_server.calls)


def cloud(graph: FakeGraph, http: httpx.Client, **options: Any) -> CloudSender:
    options.setdefault("retry_max_wait", 0.01)
    token = options.pop("token", TOKEN)
    phone_id = options.pop("phone_id", PHONE_ID)
    return CloudSender(graph.base_url + "/", phone_id, token, http=http, **options)


def gateway(url: str, http: httpx.Client, **options: Any) -> GatewaySender:
    options.setdefault("retry_max_wait", 0.01)
    token = options.pop("token", GW_TOKEN)
    instance = options.pop("instance", INSTANCE)
    return GatewaySender(url, instance, token, http=http, **options)


def calls(fake: FakeGraph | FakeGateway, pattern: str) -> list[int]:
    """The statuses of the recorded calls whose path matches ``pattern``."""
    return [c.status for c in fake.calls if re.search(pattern, c.path)]


def assert_secret_free(exc: BaseException, secret: str = TOKEN) -> None:
    for text in (str(exc), repr(exc), repr(vars(exc)), repr(exc.__cause__), repr(exc.__context__)):
        assert secret not in text


def media(kind: Any, data: bytes, content_type: str, filename: str, **extra: Any) -> OutgoingMedia:
    return OutgoingMedia(
        kind=kind, data=data, content_type=content_type, filename=filename, **extra
    )


# --- Cloud API: what is sent --------------------------------------------------------------------


def test_cloud_text(graph: FakeGraph, http_client: httpx.Client) -> None:
    result = cloud(graph, http_client).send_text(TO, "Olá, tudo bem?")
    assert len(graph.sent) == 1
    assert result == SendResult(graph.sent[0].message_id, TO)
    assert result.message_id.startswith("wamid.")
    assert graph.sent[0].body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO,
        "type": "text",
        "text": {"body": "Olá, tudo bem?", "preview_url": False},
    }
    (call,) = graph.calls
    assert (call.method, call.path) == ("POST", f"/v23.0/{PHONE_ID}/messages")
    assert call.headers["authorization"] == "<redacted>"  # a bearer went (the fake needs it)


def test_cloud_text_with_a_link_and_a_quote(graph: FakeGraph, http_client: httpx.Client) -> None:
    graph.set_wa_id(TO, "551199998888")  # Meta resolves a Brazilian number without the 9
    quoted = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA"
    result = cloud(graph, http_client).send_text(TO, "see https://example.com/x", reply_to=quoted)
    body = graph.sent[0].body
    assert body["text"] == {"body": "see https://example.com/x", "preview_url": True}
    assert body["context"] == {"message_id": quoted}
    assert result.wa_id == "551199998888"


@pytest.mark.parametrize(
    ("kind", "content_type", "uploaded_type", "filename", "expected"),
    [
        ("image", "image/jpeg", "image/jpeg", "foto.jpg", {"caption": "the caption"}),
        ("video", "video/mp4", "video/mp4", "clip.mp4", {"caption": "the caption"}),
        ("audio", "audio/ogg; codecs=opus", "audio/ogg", "voice.ogg", {}),
        ("sticker", "image/webp", "image/webp", "sticker.webp", {}),
        (
            "document",
            "application/pdf",
            "application/pdf",
            "Contrato Março.pdf",
            {"caption": "the caption", "filename": "Contrato Março.pdf"},
        ),
    ],
)
def test_cloud_media_is_uploaded_then_sent_by_id(
    graph: FakeGraph,
    http_client: httpx.Client,
    kind: str,
    content_type: str,
    uploaded_type: str,
    filename: str,
    expected: dict[str, str],
) -> None:
    outgoing = media(kind, JPEG, content_type, filename)
    result = cloud(graph, http_client).send_media(TO, outgoing, caption="the caption")

    assert [(c.path, c.status) for c in graph.calls] == [
        (f"/v23.0/{PHONE_ID}/media", 200),
        (f"/v23.0/{PHONE_ID}/messages", 200),
    ]
    upload = graph.calls[0].form or {}
    assert upload["messaging_product"] == "whatsapp" and upload["type"] == uploaded_type
    if filename.isascii():  # FakeGraph's multipart parser garbles non-ASCII names (reported)
        assert upload["file"]["filename"] == filename
    (sent,) = graph.sent
    assert result.message_id == sent.message_id
    assert sent.body["type"] == kind and "context" not in sent.body
    media_id = sent.body[kind]["id"]
    assert sent.body[kind] == {"id": media_id, **expected}  # no caption for audio/sticker
    stored = graph.media[media_id]
    assert (stored.data, stored.mime_type, stored.phone_number_id) == (
        JPEG,
        uploaded_type,
        PHONE_ID,
    )


def test_cloud_media_quote_and_no_caption(graph: FakeGraph, http_client: httpx.Client) -> None:
    doc = media("document", b"%PDF-1.7 \x00\xff", "application/pdf", "nota.pdf")
    cloud(graph, http_client).send_media(TO, doc, reply_to="wamid.quoted")
    body = graph.sent[0].body
    assert body["context"] == {"message_id": "wamid.quoted"}
    assert body["document"] == {"id": body["document"]["id"], "filename": "nota.pdf"}
    assert graph.media[body["document"]["id"]].data == b"%PDF-1.7 \x00\xff"


def test_cloud_sender_keeps_the_token_out_of_repr(http_client: httpx.Client) -> None:
    sender = CloudSender("https://graph.example/v23.0", PHONE_ID, TOKEN, http=http_client)
    assert TOKEN not in repr(sender) and PHONE_ID in repr(sender)
    with pytest.raises(ValueError):
        CloudSender("https://graph.example/v23.0", "../me", TOKEN, http=http_client)


# --- Cloud API: permanent failures --------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "title", "account_level"),
    [
        (131047, "Re-engagement message", False),
        (470, "Message failed to send because you are outside the support window", False),
        (131026, "Message undeliverable", False),
        (131051, "Unsupported message type", False),
        (131052, "Media download error", False),
        (131053, "Media upload error", False),
        (100, "Invalid parameter", False),
        (131008, "Required parameter is missing", False),
        (131009, "Parameter value is not valid", False),
        (131021, "Recipient cannot be sender", False),
        (131030, "Recipient phone number not in allowed list", False),
        (133010, "Phone number Not Registered", True),
        (368, "Temporarily blocked for policies violations", True),
    ],
)
def test_cloud_refusals_are_failures_for_the_message(
    graph: FakeGraph, http_client: httpx.Client, code: int, title: str, account_level: bool
) -> None:
    details = f"details of {code}"
    graph.fail_recipient(TO, 400, graph_error(code, f"(#{code}) {title}", details=details))
    with pytest.raises(SendFailure) as caught:
        cloud(graph, http_client).send_text(TO, "hello")
    failure = caught.value
    assert (failure.code, failure.title, failure.details) == (code, title, details)
    shown = WINDOW_CLOSED_HINT if code == 131047 else f"{code}: {title}"  # what to do instead
    assert failure.external_error == shown
    assert str(failure) == f"{shown} ({details})"
    assert failure.account_level is account_level
    assert calls(graph, MESSAGES) == [400]  # permanent: not retried
    assert graph.sent == []
    assert_secret_free(failure)


def test_cloud_failure_with_the_fakes_catalogue(
    graph: FakeGraph, http_client: httpx.Client
) -> None:
    graph.fail_recipient(TO, 400, 131047)  # Graph's own wording for the 24 h window
    with pytest.raises(SendFailure) as caught:
        cloud(graph, http_client).send_text(TO, "hello")
    assert caught.value.external_error == "24-hour window closed — reply with a template"
    assert "24 hours" in str(caught.value)


def test_cloud_upload_refused(graph: FakeGraph, http_client: httpx.Client) -> None:
    graph.fail_next("POST", UPLOADS, 400, body=131053)
    with pytest.raises(SendFailure) as caught:
        cloud(graph, http_client).send_media(TO, media("image", JPEG, "image/jpeg", "a.jpg"))
    assert caught.value.code == 131053
    assert calls(graph, UPLOADS) == [400] and calls(graph, MESSAGES) == []


def test_cloud_error_text_is_redacted_and_bare_4xx_kept(
    graph: FakeGraph, http_client: httpx.Client
) -> None:
    echo = {"error": {"message": f"(#100) token {TOKEN} is odd", "type": "x", "code": "100"}}
    graph.fail_recipient(TO, 400, echo)  # a proxy may send the code as a string
    with pytest.raises(SendFailure) as caught:
        cloud(graph, http_client).send_text(TO, "hello")
    assert caught.value.code == 100 and "[redacted]" in caught.value.title
    assert_secret_free(caught.value)

    graph.fail_next("POST", MESSAGES, 413, body="Request Entity Too Large")
    with pytest.raises(SendFailure) as bare:
        cloud(graph, http_client).send_text(TO, "hello")
    assert bare.value.external_error == "413: Request Entity Too Large"


# --- Cloud API: try again later -----------------------------------------------------------------


def test_cloud_throughput_limit_is_retried_in_the_call(
    graph: FakeGraph, http_client: httpx.Client
) -> None:
    graph.fail_next("POST", MESSAGES, 400, body=130429)
    result = cloud(graph, http_client).send_text(TO, "hello")
    assert calls(graph, MESSAGES) == [400, 200]
    assert [m.message_id for m in graph.sent] == [result.message_id]

    graph.fail_next("POST", MESSAGES, 400, body=130429, times=3)
    with pytest.raises(SendRetryLater) as caught:
        cloud(graph, http_client).send_text(TO, "again")
    assert (caught.value.code, caught.value.per_recipient) == (130429, False)
    assert calls(graph, MESSAGES)[2:] == [400, 400, 400]
    assert len(graph.sent) == 1


def test_cloud_pair_rate_limit_spares_the_customer(
    graph: FakeGraph, http_client: httpx.Client
) -> None:
    graph.fail_recipient(TO, 400, 131056)
    sender = cloud(graph, http_client)
    with pytest.raises(SendRetryLater) as caught:
        sender.send_text(TO, "hello")
    assert caught.value.per_recipient is True and caught.value.code == 131056
    assert calls(graph, MESSAGES) == [400]  # not hammered inside the call
    sender.send_text(OTHER, "other chats go on")
    assert [m.to for m in graph.sent] == [OTHER]


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (500, 131000, 131000),  # something went wrong: message failed to send
        (500, None, 1),  # API unknown
        (503, None, 2),  # API service temporarily unavailable
        (500, graph_error(131016, "(#131016) Service unavailable"), 131016),
        (400, graph_error(131048, "(#131048) Spam rate limit hit"), 131048),
        (400, graph_error(4, "(#4) Application request limit reached"), 4),
        (429, "Too Many Requests", None),  # no envelope, but 429 is an up-front refusal
        (503, "<html><title>Service Unavailable</title></html>", None),
        (502, graph_error(131057, "(#131057) Account in maintenance mode"), 131057),
    ],
)
def test_cloud_transient_refusals_are_retry_later(
    graph: FakeGraph, http_client: httpx.Client, status: int, body: Any, code: int | None
) -> None:
    graph.fail_next("POST", MESSAGES, status, body=body, times=3)
    with pytest.raises(SendRetryLater) as caught:
        cloud(graph, http_client).send_text(TO, "hello")
    assert caught.value.code == code and caught.value.per_recipient is False
    assert calls(graph, MESSAGES) == [status] * 3  # surely unsent: retried in the call
    assert graph.sent == []
    assert_secret_free(caught.value)


def test_cloud_is_transient_flag_is_honoured(graph: FakeGraph, http_client: httpx.Client) -> None:
    envelope = graph_error(999999, "(#999999) Something new")
    envelope["error"]["is_transient"] = True
    graph.fail_next("POST", MESSAGES, 400, body=envelope)
    cloud(graph, http_client).send_text(TO, "hello")
    assert calls(graph, MESSAGES) == [400, 200]


def test_cloud_connection_refused_is_retry_later(http_client: httpx.Client) -> None:
    sender = CloudSender(FakeGraph.unused_url(), PHONE_ID, TOKEN, http=http_client)
    with pytest.raises(SendRetryLater) as caught:
        sender.send_text(TO, "hello")
    assert_secret_free(caught.value)


# --- Cloud API: outcome unknown -----------------------------------------------------------------


def test_cloud_read_timeout_is_outcome_unknown(graph: FakeGraph, http_client: httpx.Client) -> None:
    graph.set_delay("POST", MESSAGES, 2.0, times=1)
    with pytest.raises(SendOutcomeUnknown) as caught:
        cloud(graph, http_client, timeout=0.3).send_text(TO, "hello")
    assert len(calls(graph, MESSAGES)) == 1  # never repeated blindly
    assert len(graph.sent) == 1  # ...and indeed WhatsApp got it
    assert_secret_free(caught.value)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (502, "<html><head><title>502 Bad Gateway</title></head></html>"),
        (504, "upstream timed out"),
        (200, {"messaging_product": "whatsapp", "contacts": []}),  # accepted, but no id
    ],
)
def test_cloud_answers_without_a_verdict_are_outcome_unknown(
    graph: FakeGraph, http_client: httpx.Client, status: int, body: Any
) -> None:
    graph.fail_next("POST", MESSAGES, status, body=body, times=3)
    with pytest.raises(SendOutcomeUnknown):
        cloud(graph, http_client).send_text(TO, "hello")
    assert calls(graph, MESSAGES) == [status]


# --- Cloud API: uploads are safe to repeat ------------------------------------------------------


def test_cloud_upload_timeout_is_retried(graph: FakeGraph, http_client: httpx.Client) -> None:
    graph.set_delay("POST", UPLOADS, 2.0, times=1)
    image = media("image", JPEG, "image/jpeg", "a.jpg")
    result = cloud(graph, http_client, timeout=0.3).send_media(TO, image)
    assert len(calls(graph, UPLOADS)) == 2 and len(graph.media) == 2  # one orphan, harmless
    assert [m.message_id for m in graph.sent] == [result.message_id]
    assert graph.media[graph.sent[0].body["image"]["id"]].data == JPEG


@pytest.mark.parametrize("body", [None, "<html><title>502 Bad Gateway</title></html>"])
def test_cloud_upload_failures_are_never_outcome_unknown(
    graph: FakeGraph, http_client: httpx.Client, body: Any
) -> None:
    graph.fail_next("POST", UPLOADS, 502, body=body, times=3)
    with pytest.raises(SendRetryLater):
        cloud(graph, http_client).send_media(TO, media("image", JPEG, "image/jpeg", "a.jpg"))
    assert calls(graph, UPLOADS) == [502] * 3 and calls(graph, MESSAGES) == []


# --- Cloud API: the instance's credentials ------------------------------------------------------


def test_cloud_bad_token(graph: FakeGraph, http_client: httpx.Client) -> None:
    sender = cloud(graph, http_client, token=TOKEN + "-revoked")
    with pytest.raises(SendAuthFailure) as caught:
        sender.send_text(TO, "hello")
    assert caught.value.code == 190
    assert calls(graph, MESSAGES) == [401]
    assert_secret_free(caught.value)
    assert_secret_free(caught.value, TOKEN + "-revoked")
    with pytest.raises(SendAuthFailure):  # uploads too, before anything is sent
        sender.send_media(TO, media("image", JPEG, "image/jpeg", "a.jpg"))
    assert calls(graph, UPLOADS) == [401] and graph.sent == []


def test_cloud_phone_number_of_another_token(graph: FakeGraph, http_client: httpx.Client) -> None:
    graph.add_phone_number("200000000000001", "another-token")
    with pytest.raises(SendAuthFailure) as caught:  # Graph: 400, code 100, subcode 33
        cloud(graph, http_client, phone_id="200000000000001").send_text(TO, "hello")
    assert caught.value.code == 100
    assert calls(graph, MESSAGES) == [400]


@pytest.mark.parametrize(
    ("status", "body"),
    [(403, 10), (403, 200), (403, 131005), (401, "Unauthorized")],
)
def test_cloud_permission_refusals(
    graph: FakeGraph, http_client: httpx.Client, status: int, body: Any
) -> None:
    graph.fail_next("POST", MESSAGES, status, body=body)
    with pytest.raises(SendAuthFailure):
        cloud(graph, http_client).send_text(TO, "hello")
    assert calls(graph, MESSAGES) == [status]


def test_cloud_forbidden_address_is_an_instance_problem(graph: FakeGraph) -> None:
    with (
        build_client(allow_private=False) as guarded,
        pytest.raises(SendAuthFailure, match="not allowed"),
    ):
        cloud(graph, guarded).send_text(TO, "hello")
    assert graph.calls == []


# --- gateway: what is sent ----------------------------------------------------------------------


def test_gateway_text_and_quote(gw: FakeGateway, http_client: httpx.Client) -> None:
    result = gateway(gw.base_url, http_client).send_text(TO, "oi", reply_to="3EB0QUOTED")
    (sent,) = gw.sent
    assert result == SendResult(sent.message_id)
    assert (sent.instance, sent.kind, sent.number) == (INSTANCE, "text", TO)
    assert sent.body == {"number": TO, "message": "oi", "replyTo": "3EB0QUOTED"}
    (call,) = gw.calls
    assert call.path == f"/api/message/text/{INSTANCE}"
    assert call.headers["token"] == "<redacted>"  # the instance token went in `token`


@pytest.mark.parametrize(
    ("kind", "content_type", "expected"),
    [
        ("image", "image/jpeg", {"mediaType": "image", "message": "cap"}),
        ("video", "video/mp4", {"mediaType": "video", "message": "cap"}),
        ("audio", "audio/mpeg", {"mediaType": "audio", "isVoice": False}),
        ("document", "application/pdf", {"mediaType": "document", "message": "cap"}),
        ("sticker", "image/webp", {"mediaType": "image"}),  # no sticker type at the gateway
    ],
)
def test_gateway_media_inline(
    gw: FakeGateway,
    http_client: httpx.Client,
    kind: str,
    content_type: str,
    expected: dict[str, Any],
) -> None:
    outgoing = media(kind, JPEG, content_type, f"file-{kind}.bin")
    result = gateway(gw.base_url, http_client).send_media(TO, outgoing, caption="cap")
    (sent,) = gw.sent
    assert result.message_id == sent.message_id
    assert sent.media_bytes == JPEG  # arrived intact
    assert base64.b64decode(sent.body.pop("mediaBase64")) == JPEG
    assert sent.body == {
        "number": TO,
        "mimeType": content_type,
        "fileName": f"file-{kind}.bin",
        **expected,
    }


def test_gateway_media_by_link(gw: FakeGateway, http_client: httpx.Client) -> None:
    link = gw.add_media(JPEG, "image/jpeg")
    outgoing = media("image", JPEG, "image/jpeg", "a.jpg", link=link)
    gateway(gw.base_url, http_client).send_media(TO, outgoing, reply_to="3EB0Q")
    (sent,) = gw.sent
    assert sent.body["mediaUrl"] == link and "mediaBase64" not in sent.body
    assert sent.body["replyTo"] == "3EB0Q"
    assert sent.media_bytes == JPEG  # the gateway fetched it itself


def test_gateway_unreachable_link_falls_back_to_inline(
    gw: FakeGateway, http_client: httpx.Client
) -> None:
    outgoing = media("document", JPEG, "application/pdf", "a.pdf", link=gw.unused_url() + "/a")
    gateway(gw.base_url, http_client).send_media(TO, outgoing)
    assert calls(gw, "/media/") == [400, 200]  # "Failed to download media from URL", then inline
    (sent,) = gw.sent
    assert "mediaUrl" not in sent.body and sent.media_bytes == JPEG


def test_gateway_message_id_fallbacks(gw: FakeGateway, http_client: httpx.Client) -> None:
    sender = gateway(gw.base_url, http_client)
    gw.fail_next("POST", "/text/", 200, body={"success": True, "messageId": "3EB0TOP"})
    assert sender.send_text(TO, "a") == SendResult("3EB0TOP")
    gw.fail_next("POST", "/text/", 200, body={"success": True, "data": {"id": "3EB0DATA"}})
    assert sender.send_text(TO, "b") == SendResult("3EB0DATA")
    gw.fail_next("POST", "/text/", 200, body={"success": True, "data": {}})
    with pytest.raises(SendOutcomeUnknown):
        sender.send_text(TO, "c")
    assert len(gw.calls) == 3


# --- gateway: errors ----------------------------------------------------------------------------


def test_gateway_credentials_and_instance(gw: FakeGateway, http_client: httpx.Client) -> None:
    gw.add_instance("vendas", "other-instance-token")
    cases = [
        (gateway(gw.base_url, http_client, token="wrong"), 401, "Invalid token"),
        (gateway(gw.base_url, http_client, token="other-instance-token"), 403, "does not match"),
        (gateway(gw.base_url, http_client, instance="nope"), 404, "Instance not found"),
    ]
    for sender, status, text in cases:
        with pytest.raises(SendAuthFailure) as caught:
            sender.send_text(TO, "oi")
        assert caught.value.code == status and text in caught.value.reason
        assert_secret_free(caught.value, GW_TOKEN)
    assert [c.status for c in gw.calls] == [401, 403, 404] and gw.sent == []


def test_gateway_disconnected_then_rate_limited(gw: FakeGateway, http_client: httpx.Client) -> None:
    gw.set_connected(INSTANCE, False)
    with pytest.raises(SendRetryLater, match="not connected") as caught:
        gateway(gw.base_url, http_client).send_text(TO, "oi")
    assert caught.value.code == 503
    assert [c.status for c in gw.calls] == [503] * 3

    gw.set_connected(INSTANCE, True)
    gw.calls.clear()
    gw.fail_next("POST", "/text/", 429)
    gateway(gw.base_url, http_client).send_text(TO, "oi")
    assert [c.status for c in gw.calls] == [429, 200] and len(gw.sent) == 1


def test_gateway_refusal_is_a_failure(gw: FakeGateway, http_client: httpx.Client) -> None:
    with pytest.raises(SendFailure) as caught:
        gateway(gw.base_url, http_client).send_text("not-a-number", "oi")
    assert caught.value.external_error == "400: Invalid number format"
    assert [c.status for c in gw.calls] == [400]

    gw.fail_next("POST", "/text/", 400, body={"error": {"message": f"token {GW_TOKEN} bad"}})
    with pytest.raises(SendFailure) as echoed:
        gateway(gw.base_url, http_client).send_text(TO, "oi")
    assert "[redacted]" in echoed.value.title
    assert_secret_free(echoed.value, GW_TOKEN)


def test_gateway_server_error_and_timeout_are_outcome_unknown(
    gw: FakeGateway, http_client: httpx.Client
) -> None:
    gw.fail_next("POST", "/text/", 500)
    with pytest.raises(SendOutcomeUnknown, match="Internal server error"):
        gateway(gw.base_url, http_client).send_text(TO, "oi")
    assert [c.status for c in gw.calls] == [500]

    gw.set_delay("POST", "/text/", 2.0, times=1)
    with pytest.raises(SendOutcomeUnknown) as caught:
        gateway(gw.base_url, http_client, timeout=0.3).send_text(TO, "oi")
    assert len(gw.calls) == 2 and len(gw.sent) == 1  # it went out; not repeated
    assert_secret_free(caught.value, GW_TOKEN)


def test_gateway_connection_refused_is_retry_later(http_client: httpx.Client) -> None:
    with pytest.raises(SendRetryLater) as caught:
        gateway(FakeGateway.unused_url(), http_client).send_text(TO, "oi")
    assert_secret_free(caught.value, GW_TOKEN)


def test_outcomes_survive_pickling() -> None:
    failure = SendFailure("Re-engagement message", code=131047)
    failure = pickle.loads(pickle.dumps(failure))  # noqa: S301 - our own object
    hint = "24-hour window closed — reply with a template"
    assert (failure.code, failure.external_error) == (131047, hint)
    later = SendRetryLater("pair", retry_after=6.0, per_recipient=True)
    later = pickle.loads(pickle.dumps(later))  # noqa: S301 - our own object
    assert (later.reason, later.retry_after, later.per_recipient) == ("pair", 6.0, True)
    assert SendFailure("no code").external_error == "no code"


def test_gateway_sender_repr(http_client: httpx.Client) -> None:
    sender = gateway("https://gw.example", http_client)
    assert GW_TOKEN not in repr(sender) and INSTANCE in repr(sender)
