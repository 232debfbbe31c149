"""ChatwootClient against FakeChatwoot, a real HTTP server checking requests against a contract."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from app.integrations.chatwoot import ChatwootClient, account_role
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
)
from app.integrations.files import File
from app.integrations.http import build_client
from tests.fakes.chatwoot import FakeChatwoot

READ_TIMEOUT = 0.4
MESSAGES = r"/conversations/\d+/messages$"


@pytest.fixture(scope="module")
def http_client() -> Iterator[httpx.Client]:
    client = build_client(allow_private=True)
    client.timeout = httpx.Timeout(2.0, read=READ_TIMEOUT)
    yield client
    client.close()


@pytest.fixture
def fake() -> Iterator[FakeChatwoot]:
    with FakeChatwoot() as cw:
        yield cw
        assert cw.schema_errors == []


@pytest.fixture
def account_id(fake: FakeChatwoot) -> int:
    return fake.add_account("Acme")


@pytest.fixture
def token(fake: FakeChatwoot, account_id: int) -> str:
    return fake.add_user("Ada", {account_id: "administrator"})


@pytest.fixture
def client(
    fake: FakeChatwoot, account_id: int, token: str, http_client: httpx.Client
) -> ChatwootClient:
    return ChatwootClient(
        fake.base_url + "/", account_id, token, http=http_client, retry_max_wait=0.01
    )


@pytest.fixture
def inbox_id(client: ChatwootClient) -> int:
    return int(client.create_api_inbox("WhatsApp", "https://bridge.example/webhooks/x")["id"])


@pytest.fixture
def chat(client: ChatwootClient, inbox_id: int) -> dict[str, Any]:
    """A contact with a contact inbox and an open conversation in the API inbox."""
    created = client.create_contact(inbox_id, "5511999990000", "Maria", "+5511999990000")
    contact_id = int(created["contact"]["id"])
    conversation = client.create_conversation(inbox_id, contact_id, "5511999990000")
    return {"contact_id": contact_id, "conversation_id": int(conversation["id"])}


def calls_to(fake: FakeChatwoot, method: str, path_regex: str) -> int:
    return sum(1 for c in fake.calls if c.method == method and re.search(path_regex, c.path))


# --- one test per endpoint group ----------------------------------------------------------------


def test_profile_and_role(fake: FakeChatwoot, client: ChatwootClient, account_id: int) -> None:
    profile = client.get_profile()
    assert profile["name"] == "Ada"
    assert "access_token" not in profile
    assert account_role(profile, account_id) == "administrator"
    assert account_role(profile, account_id + 99) is None
    assert account_role({}, account_id) is None
    headers = fake.calls[-1].headers
    assert headers["api_access_token"] == "<redacted>"  # sent, as the header Chatwoot reads
    assert headers["user-agent"].startswith("wootbridge/")


def test_agent_role(fake: FakeChatwoot, account_id: int, http_client: httpx.Client) -> None:
    agent = fake.add_user("Bob", {account_id: "agent"})
    client = ChatwootClient(fake.base_url, account_id, agent, http=http_client)
    assert account_role(client.get_profile(), account_id) == "agent"


def test_inboxes(fake: FakeChatwoot, client: ChatwootClient) -> None:
    created = client.create_api_inbox("WhatsApp - Orion", "https://bridge.example/hook/1")
    inbox_id = int(created["id"])
    assert created["webhook_url"] == "https://bridge.example/hook/1"
    assert fake.inboxes[inbox_id]["channel_type"] == "Channel::Api"
    assert client.get_inbox(inbox_id)["name"] == "WhatsApp - Orion"

    updated = client.update_api_inbox(inbox_id, "Renamed", "https://bridge.example/hook/2")
    assert (updated["name"], updated["webhook_url"]) == ("Renamed", "https://bridge.example/hook/2")
    assert [i["id"] for i in client.list_inboxes()] == [inbox_id]

    fake.delete_inbox(client.account_id, inbox_id)
    with pytest.raises(RemoteNotFound):
        client.get_inbox(inbox_id)


def test_contacts(fake: FakeChatwoot, client: ChatwootClient, inbox_id: int) -> None:
    assert client.filter_contact_inbox(inbox_id, "5511988887777") is None

    created = client.create_contact(
        inbox_id,
        "5511988887777",
        "João",
        "+5511988887777",
        identifier="5511988887777@s.whatsapp.net",
        avatar_url="https://pps.example/avatar.jpg",
        custom_attributes={"wa_name": "João"},
    )
    contact = created["contact"]
    assert created["contact_inbox"]["source_id"] == "5511988887777"
    assert contact["phone_number"] == "+5511988887777"
    assert fake.contacts[contact["id"]]["custom_attributes"] == {"wa_name": "João"}

    found = client.filter_contact_inbox(inbox_id, "5511988887777")
    assert found is not None and found["id"] == contact["id"]
    assert [c["id"] for c in client.search_contacts("+5511988887777")] == [contact["id"]]
    assert client.get_contact(contact["id"])["name"] == "João"

    second = int(client.create_api_inbox("Second", "https://bridge.example/hook/2")["id"])
    contact_inbox = client.create_contact_inbox(contact["id"], second, "other-source")
    assert contact_inbox["source_id"] == "other-source"
    assert client.list_contact_conversations(contact["id"]) == []

    with pytest.raises(RemoteUnprocessable) as info:  # duplicate phone number
        client.create_contact(inbox_id, "another", "Dup", "+5511988887777")
    assert info.value.status == 422
    assert "Phone number has already been taken" in info.value.detail


def test_conversations(client: ChatwootClient, inbox_id: int) -> None:
    contact = client.create_contact(inbox_id, "551133334444", "Ana", "+551133334444")["contact"]
    conversation = client.create_conversation(inbox_id, contact["id"], "551133334444", "pending")
    conversation_id = int(conversation["id"])
    assert conversation["status"] == "pending"
    assert client.get_conversation(conversation_id)["inbox_id"] == inbox_id
    assert [c["id"] for c in client.list_contact_conversations(contact["id"])] == [conversation_id]

    toggled = client.toggle_conversation_status(conversation_id, "resolved")
    assert toggled["current_status"] == "resolved"
    assert client.get_conversation(conversation_id)["status"] == "resolved"


def test_messages(fake: FakeChatwoot, client: ChatwootClient, chat: dict[str, Any]) -> None:
    conversation_id = chat["conversation_id"]
    first = client.create_message(
        conversation_id,
        content="olá",
        message_type="incoming",
        source_id="WAID:1",
        content_attributes={"in_reply_to_external_id": "WAID:0"},
    )
    assert (first["content"], first["source_id"]) == ("olá", "WAID:1")
    assert fake.calls[-1].json == {
        "content": "olá",
        "message_type": "incoming",
        "private": False,
        "source_id": "WAID:1",
        "content_attributes": {"in_reply_to_external_id": "WAID:0"},
    }
    second = client.create_message(
        conversation_id, content="note", message_type="outgoing", private=True
    )
    assert fake.messages[second["id"]]["private"] is True

    listed = client.list_messages(conversation_id)
    assert [m["id"] for m in listed] == [first["id"], second["id"]]
    assert [m["id"] for m in client.list_messages(conversation_id, before=second["id"])] == [
        first["id"]
    ]
    assert fake.calls[-1].query == {"before": str(second["id"])}

    delivered = client.update_message_status(conversation_id, second["id"], "delivered")
    assert delivered["status"] == "delivered"
    client.update_message_status(conversation_id, second["id"], "failed", "number not on WhatsApp")
    stored = fake.messages[second["id"]]
    assert (stored["status"], stored["external_error"]) == ("failed", "number not on WhatsApp")


def test_message_attachments_arrive_intact(
    fake: FakeChatwoot, client: ChatwootClient, chat: dict[str, Any], http_client: httpx.Client
) -> None:
    image = bytes(range(256)) * 64 + b"\r\n--boundary--\r\n\x00"
    pdf = b"%PDF-1.4\r\n" + bytes(reversed(range(256)))
    message = client.create_message(
        chat["conversation_id"],
        content="photos",
        message_type="incoming",
        source_id="WAID:9",
        content_attributes={"external_created_at": 1700000000},
        attachments=[
            File(image, "image/jpeg", "foto.jpg"),
            File(pdf, "application/pdf", "doc.pdf"),
        ],
    )
    stored = fake.messages[message["id"]]
    assert [(a["filename"], a["content_type"], a["data"]) for a in stored["attachments"]] == [
        ("foto.jpg", "image/jpeg", image),
        ("doc.pdf", "application/pdf", pdf),
    ]
    assert stored["content_attributes"] == {"external_created_at": 1700000000}
    assert (stored["source_id"], stored["private"]) == ("WAID:9", False)
    assert stored["content"] == "photos"
    assert fake.calls[-1].headers["content-type"].startswith("multipart/form-data")

    served = http_client.get(message["attachments"][0]["data_url"], follow_redirects=True)
    assert served.content == image
    assert repr(File(b"xyz", "application/octet-stream", "a.bin")).endswith("size=3)")


# --- error mapping ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, RemoteUnauthorized),
        (403, RemoteForbidden),
        (404, RemoteNotFound),
        (422, RemoteUnprocessable),
        (400, RemoteUnprocessable),
        (429, RemoteRateLimited),
        (500, RemoteServerError),
        (502, RemoteServerError),
    ],
)
def test_error_mapping(
    fake: FakeChatwoot, client: ChatwootClient, status: int, cls: type[RemoteError]
) -> None:
    fake.fail_next("GET", "/inboxes$", status, times=5)
    with pytest.raises(cls) as info:
        client.list_inboxes()
    assert info.value.status == status
    assert info.value.detail


def test_chatwoot_messages_reach_the_detail(fake: FakeChatwoot, client: ChatwootClient) -> None:
    fake.fail_next("GET", "/profile$", 429, times=3)
    with pytest.raises(RemoteRateLimited) as info:
        client.get_profile()
    assert info.value.detail == "Retry later"
    fake.fail_next("GET", "/profile$", 503, times=3)
    with pytest.raises(RemoteServerError) as server_error:
        client.get_profile()
    assert server_error.value.detail == "503 Service Unavailable"


def test_revoked_token(fake: FakeChatwoot, client: ChatwootClient, token: str) -> None:
    fake.revoke_token(token)
    with pytest.raises(RemoteUnauthorized) as info:
        client.get_profile()
    assert info.value.detail == "Invalid Access Token"
    assert calls_to(fake, "GET", "/profile$") == 1


def test_timeout(fake: FakeChatwoot, client: ChatwootClient) -> None:
    fake.set_delay("GET", "/profile$", READ_TIMEOUT + 0.4)
    with pytest.raises(RemoteTimeout) as info:
        client.get_profile()
    assert "ReadTimeout" in info.value.detail
    assert calls_to(fake, "GET", "/profile$") == 3  # reads are retried


def test_connection_refused(http_client: httpx.Client) -> None:
    client = ChatwootClient(
        FakeChatwoot.unused_url(), 1, "tok", http=http_client, retry_max_wait=0.01
    )
    with pytest.raises(RemoteUnreachable) as info:
        client.get_profile()
    assert type(info.value) is RemoteUnreachable
    assert info.value.unprocessed


def test_private_address_refused_at_connect_time(fake: FakeChatwoot, token: str) -> None:
    guarded = build_client(allow_private=False)
    try:
        client = ChatwootClient(fake.base_url, 1, token, http=guarded, retry_max_wait=0.01)
        with pytest.raises(RemoteAddressNotAllowed) as info:
            client.get_profile()
    finally:
        guarded.close()
    assert str(info.value) == (
        "remote address not allowed: host resolves to a loopback address (127.0.0.1)"
    )
    assert fake.calls == []


def test_non_json_success_is_a_bad_response(fake: FakeChatwoot, client: ChatwootClient) -> None:
    fake.fail_next("GET", "/profile$", 200, body="<html>not chatwoot</html>")
    with pytest.raises(RemoteBadResponse):
        client.get_profile()


# --- retry rules (DESIGN invariant 2) -----------------------------------------------------------


def test_get_is_retried_on_503(fake: FakeChatwoot, client: ChatwootClient) -> None:
    fake.fail_next("GET", "/profile$", 503)
    assert client.get_profile()["name"] == "Ada"
    assert calls_to(fake, "GET", "/profile$") == 2


def test_get_gives_up_after_the_configured_attempts(
    fake: FakeChatwoot, client: ChatwootClient
) -> None:
    fake.fail_next("GET", "/profile$", 500, times=10)
    with pytest.raises(RemoteServerError):
        client.get_profile()
    assert calls_to(fake, "GET", "/profile$") == 3


def test_patch_and_filter_are_retried_on_500(
    fake: FakeChatwoot, client: ChatwootClient, inbox_id: int, chat: dict[str, Any]
) -> None:
    message = client.create_message(chat["conversation_id"], content="x", message_type="outgoing")
    fake.fail_next("PATCH", r"/messages/\d+$", 500)
    client.update_message_status(chat["conversation_id"], message["id"], "read")
    assert calls_to(fake, "PATCH", r"/messages/\d+$") == 2
    fake.fail_next("POST", "/contact_inboxes/filter$", 502)
    assert client.filter_contact_inbox(inbox_id, "5511999990000") is not None
    assert calls_to(fake, "POST", "/contact_inboxes/filter$") == 2


def test_create_message_is_not_retried_on_500(
    fake: FakeChatwoot, client: ChatwootClient, chat: dict[str, Any]
) -> None:
    fake.fail_next("POST", MESSAGES, 500)
    with pytest.raises(RemoteServerError):
        client.create_message(
            chat["conversation_id"], content="hi", message_type="incoming", source_id="WAID:500"
        )
    assert calls_to(fake, "POST", MESSAGES) == 1


def test_create_message_is_not_retried_after_a_read_timeout(
    fake: FakeChatwoot, client: ChatwootClient, chat: dict[str, Any]
) -> None:
    fake.set_delay("POST", MESSAGES, READ_TIMEOUT + 0.4, times=1)
    with pytest.raises(RemoteTimeout) as info:
        client.create_message(
            chat["conversation_id"], content="hi", message_type="incoming", source_id="WAID:slow"
        )
    assert not info.value.unprocessed
    assert calls_to(fake, "POST", MESSAGES) == 1
    # Chatwoot did process it: this is why the caller must look before posting again.
    assert [m["source_id"] for m in fake.messages.values()] == ["WAID:slow"]


@pytest.mark.parametrize("status", [429, 503])
def test_creating_posts_are_retried_when_surely_unprocessed(
    fake: FakeChatwoot, client: ChatwootClient, chat: dict[str, Any], inbox_id: int, status: int
) -> None:
    fake.fail_next("POST", MESSAGES, status)
    client.create_message(
        chat["conversation_id"], content="hi", message_type="incoming", source_id="WAID:retry"
    )
    assert calls_to(fake, "POST", MESSAGES) == 2
    assert [m["source_id"] for m in fake.messages.values()] == ["WAID:retry"]

    fake.fail_next("POST", "/contacts$", status)
    client.create_contact(inbox_id, "5521000000000", "Rio", "+5521000000000")
    assert calls_to(fake, "POST", "/contacts$") == 3  # the chat fixture's one, then 2


@pytest.mark.parametrize("status", [500, 502, 504])
def test_other_creating_posts_are_not_retried_on_5xx(
    fake: FakeChatwoot, client: ChatwootClient, chat: dict[str, Any], inbox_id: int, status: int
) -> None:
    creators: list[tuple[str, Callable[[], object]]] = [
        ("/inboxes$", lambda: client.create_api_inbox("X", "https://bridge.example/h")),
        ("/contacts$", lambda: client.create_contact(inbox_id, "s2", "N", "+5521000000001")),
        (
            r"/contacts/\d+/contact_inboxes$",
            lambda: client.create_contact_inbox(chat["contact_id"], inbox_id, "s3"),
        ),
        (
            "/conversations$",
            lambda: client.create_conversation(inbox_id, chat["contact_id"], "5511999990000"),
        ),
    ]
    for path, create in creators:
        before = calls_to(fake, "POST", path)
        fake.fail_next("POST", path, status)
        with pytest.raises(RemoteServerError):
            create()
        assert calls_to(fake, "POST", path) == before + 1, path


def test_creating_post_is_retried_when_the_connection_is_refused(
    fake: FakeChatwoot, client: ChatwootClient, chat: dict[str, Any]
) -> None:
    fake.stop()  # the same port answers "connection refused" until restarted
    with pytest.raises(RemoteUnreachable) as info:
        client.create_message(chat["conversation_id"], content="x", message_type="incoming")
    assert info.value.unprocessed  # so the 3 attempts were allowed; nothing reached Chatwoot
    fake.start()
    assert calls_to(fake, "POST", MESSAGES) == 0


# --- the token stays private --------------------------------------------------------------------


def test_token_never_leaks(
    fake: FakeChatwoot, client: ChatwootClient, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert token not in repr(client)
    assert repr(client) == f"ChatwootClient(base_url={fake.base_url!r}, account_id=1)"
    caplog.set_level(logging.DEBUG)
    fake.fail_next("GET", "/profile$", 500, body={"error": f"bad token {token}"}, times=3)
    with pytest.raises(RemoteServerError) as info:
        client.get_profile()
    exc = info.value
    assert "[redacted]" in exc.detail
    for text in (str(exc), repr(exc), exc.detail, caplog.text):
        assert token not in text
    assert exc.__cause__ is None and exc.__context__ is None
    fake.set_delay("GET", "/profile$", READ_TIMEOUT + 0.3, times=3)
    with pytest.raises(RemoteTimeout) as timeout:
        client.get_profile()
    assert token not in str(timeout.value) + repr(timeout.value) + caplog.text
    # the httpx exception (whose request carries our headers) is not chained
    assert timeout.value.__cause__ is None and timeout.value.__context__ is None
