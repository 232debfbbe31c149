"""Tests of the fake Chatwoot itself, over real HTTP with httpx."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.chatwoot import FakeChatwoot

REPO = Path(__file__).resolve().parents[2]
PHONE = "+4915112345678"


@dataclass
class Seed:
    """An account with an administrator client and an agent client."""

    fake: FakeChatwoot
    account_id: int
    admin: httpx.Client
    agent: httpx.Client
    admin_token: str

    def url(self, suffix: str) -> str:
        return f"/api/v1/accounts/{self.account_id}{suffix}"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeChatwoot]:
    with FakeChatwoot() as fake:
        yield fake


@pytest.fixture
def cw(server: FakeChatwoot) -> FakeChatwoot:
    server.reset()
    return server


@pytest.fixture
def seed(cw: FakeChatwoot) -> Iterator[Seed]:
    account_id = cw.add_account("Acme")
    admin_token = cw.add_user("Ada Admin", {account_id: "administrator"})
    agent_token = cw.add_user("Al Agent", {account_id: "agent"})
    with (
        httpx.Client(
            base_url=cw.base_url, headers={"api_access_token": admin_token}, timeout=5
        ) as admin,
        httpx.Client(
            base_url=cw.base_url, headers={"api_access_token": agent_token}, timeout=5
        ) as agent,
    ):
        yield Seed(cw, account_id, admin, agent, admin_token)


def make_inbox(s: Seed, name: str = "WhatsApp") -> dict[str, Any]:
    r = s.admin.post(
        s.url("/inboxes"),
        json={"name": name, "channel": {"type": "api", "webhook_url": "http://127.0.0.1:9/hook"}},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def make_contact(s: Seed, inbox_id: int, phone: str = PHONE) -> dict[str, Any]:
    r = s.admin.post(
        s.url("/contacts"),
        json={
            "inbox_id": inbox_id,
            "name": "Maria",
            "phone_number": phone,
            "identifier": f"wa:{phone[1:]}",
            "source_id": phone[1:],
        },
    )
    assert r.status_code == 200, r.text
    return dict(r.json()["payload"])


def make_conversation(s: Seed, inbox_id: int, source_id: str = PHONE[1:]) -> dict[str, Any]:
    r = s.admin.post(s.url("/conversations"), json={"source_id": source_id, "inbox_id": inbox_id})
    assert r.status_code == 200, r.text
    return dict(r.json())


def chat(s: Seed) -> tuple[dict[str, Any], dict[str, Any]]:
    """An inbox with one contact and one open conversation."""
    inbox = make_inbox(s)
    make_contact(s, inbox["id"])
    return inbox, make_conversation(s, inbox["id"])


# ---- auth ----
def test_profile_lists_accounts_with_role(seed: Seed) -> None:
    body = seed.admin.get("/api/v1/profile").json()
    assert body["name"] == "Ada Admin"
    assert body["available_name"] == "Ada Admin"
    assert body["access_token"] == seed.admin_token
    assert len(body["accounts"]) == 1
    assert (body["accounts"][0]["id"], body["accounts"][0]["role"]) == (
        seed.account_id,
        "administrator",
    )


def test_missing_token_is_401_sign_in(cw: FakeChatwoot) -> None:
    r = httpx.get(f"{cw.base_url}/api/v1/profile")
    assert r.status_code == 401
    assert r.json() == {"errors": ["You need to sign in or sign up before continuing."]}


def test_unknown_and_revoked_tokens_are_401_invalid(seed: Seed) -> None:
    r = httpx.get(f"{seed.fake.base_url}/api/v1/profile", headers={"api_access_token": "nope"})
    assert (r.status_code, r.json()) == (401, {"error": "Invalid Access Token"})
    seed.fake.revoke_token(seed.admin_token)
    r = seed.admin.get(seed.url("/inboxes"))
    assert (r.status_code, r.json()) == (401, {"error": "Invalid Access Token"})


def test_foreign_account_is_401_and_unknown_account_404(seed: Seed) -> None:
    other = seed.fake.add_account("Other")
    r = seed.admin.get(f"/api/v1/accounts/{other}/inboxes")
    assert (r.status_code, r.json()) == (
        401,
        {"error": "You are not authorized to access this account"},
    )
    r = seed.admin.get("/api/v1/accounts/999/inboxes")
    assert (r.status_code, r.json()) == (404, {"error": "Resource could not be found"})


# ---- inboxes ----
def test_agent_cannot_create_inbox(seed: Seed) -> None:
    r = seed.agent.post(seed.url("/inboxes"), json={"name": "X", "channel": {"type": "api"}})
    assert (r.status_code, r.json()) == (401, {"error": "You are not authorized to do this action"})
    assert seed.fake.inboxes == {}


def test_admin_creates_api_inbox_and_patches_it(seed: Seed) -> None:
    inbox = make_inbox(seed)
    assert inbox["channel_type"] == "Channel::Api"
    assert inbox["webhook_url"] == "http://127.0.0.1:9/hook"
    assert inbox["secret"] and inbox["hmac_token"] and inbox["inbox_identifier"]
    stored = seed.fake.inboxes[inbox["id"]]
    assert (stored["account_id"], stored["secret"]) == (seed.account_id, inbox["secret"])

    r = seed.admin.patch(
        seed.url(f"/inboxes/{inbox['id']}"),
        json={"name": "WhatsApp 2", "channel": {"webhook_url": "http://127.0.0.1:9/new"}},
    )
    assert r.status_code == 200
    assert (r.json()["name"], r.json()["webhook_url"]) == ("WhatsApp 2", "http://127.0.0.1:9/new")
    listed = seed.agent.get(seed.url("/inboxes")).json()["payload"]
    assert [i["name"] for i in listed] == ["WhatsApp 2"]
    assert "secret" not in listed[0] and "hmac_token" not in listed[0]  # administrators only
    assert (
        seed.agent.patch(seed.url(f"/inboxes/{inbox['id']}"), json={"name": "x"}).status_code == 401
    )


def test_deleted_inbox_and_its_conversations_are_404(seed: Seed) -> None:
    inbox, conv = chat(seed)
    seed.fake.delete_inbox(seed.account_id, inbox["id"])
    r = seed.admin.get(seed.url(f"/inboxes/{inbox['id']}"))
    assert (r.status_code, r.json()) == (404, {"error": "Resource could not be found"})
    r = seed.admin.post(seed.url(f"/conversations/{conv['id']}/messages"), json={"content": "x"})
    assert r.status_code == 404


# ---- contacts ----
def test_contact_create_duplicate_phone_and_filter(seed: Seed) -> None:
    inbox = make_inbox(seed)
    payload = make_contact(seed, inbox["id"])
    contact = payload["contact"]
    assert payload["contact_inbox"]["source_id"] == PHONE[1:]
    assert contact["contact_inboxes"][0]["inbox"]["id"] == inbox["id"]

    duplicate = {"inbox_id": inbox["id"], "phone_number": PHONE}
    r = seed.admin.post(seed.url("/contacts"), json=duplicate)
    assert r.status_code == 422
    assert r.json() == {
        "message": "Phone number has already been taken",
        "attributes": ["phone_number"],
    }
    assert len(seed.fake.contacts) == 1

    found = seed.admin.post(
        seed.url("/contact_inboxes/filter"), json={"inbox_id": inbox["id"], "source_id": PHONE[1:]}
    )
    assert (found.status_code, found.json()["id"]) == (200, contact["id"])
    missing = seed.admin.post(
        seed.url("/contact_inboxes/filter"), json={"inbox_id": inbox["id"], "source_id": "nobody"}
    )
    assert (missing.status_code, missing.content) == (404, b"")
    hits = seed.admin.get(seed.url("/contacts/search"), params={"q": PHONE}).json()["payload"]
    assert [h["id"] for h in hits] == [contact["id"]]
    assert seed.fake.schema_errors == []


def test_contact_inboxes_and_bad_phone(seed: Seed) -> None:
    first, second = make_inbox(seed, "A"), make_inbox(seed, "B")
    contact = make_contact(seed, first["id"])["contact"]
    r = seed.admin.post(
        seed.url(f"/contacts/{contact['id']}/contact_inboxes"),
        json={"inbox_id": second["id"], "source_id": "abc"},
    )
    assert (r.status_code, r.json()["source_id"], r.json()["inbox"]["id"]) == (
        200,
        "abc",
        second["id"],
    )
    assert {ci["inbox_id"] for ci in seed.fake.contact_inboxes} == {first["id"], second["id"]}
    r = seed.admin.post(
        seed.url("/contacts"), json={"inbox_id": first["id"], "phone_number": "015112345678"}
    )
    assert r.json()["attributes"] == ["phone_number"]
    assert seed.admin.get(seed.url("/contacts/1")).status_code == 404


# ---- conversations ----
def test_conversation_create_and_toggle_status(seed: Seed) -> None:
    inbox, conv = chat(seed)
    assert conv["id"] == 1 and conv["status"] == "open" and conv["inbox_id"] == inbox["id"]
    stored = next(iter(seed.fake.conversations.values()))
    assert stored["display_id"] == 1 and stored["id"] != 1  # URLs use the display id

    r = seed.admin.post(seed.url("/conversations/1/toggle_status"), json={"status": "resolved"})
    assert r.json()["payload"] == {
        "success": True,
        "conversation_id": 1,
        "current_status": "resolved",
        "snoozed_until": None,
    }
    assert seed.admin.get(seed.url("/conversations/1")).json()["status"] == "resolved"
    listed = seed.admin.get(seed.url(f"/contacts/{stored['contact_id']}/conversations")).json()
    assert [c["id"] for c in listed["payload"]] == [1]
    assert seed.admin.get(seed.url("/conversations/2")).status_code == 404


def test_incoming_message_reopens_resolved_conversation(seed: Seed) -> None:
    _, conv = chat(seed)
    seed.admin.post(
        seed.url(f"/conversations/{conv['id']}/toggle_status"), json={"status": "resolved"}
    )
    seed.admin.post(
        seed.url(f"/conversations/{conv['id']}/messages"),
        json={"content": "again", "message_type": "incoming"},
    )
    assert seed.admin.get(seed.url(f"/conversations/{conv['id']}")).json()["status"] == "open"


# ---- messages ----
def test_json_messages_are_not_deduplicated_and_page_oldest_first(seed: Seed) -> None:
    _, conv = chat(seed)
    url = seed.url(f"/conversations/{conv['id']}/messages")
    for n in range(2):
        r = seed.admin.post(
            url, json={"content": f"hi {n}", "message_type": "incoming", "source_id": "wamid.SAME"}
        )
        assert (r.json()["message_type"], r.json()["source_id"]) == (0, "wamid.SAME")
    assert [m["source_id"] for m in seed.fake.messages.values()] == ["wamid.SAME"] * 2

    for n in range(23):
        seed.admin.post(url, json={"content": f"reply {n}", "message_type": "outgoing"})
    page = seed.admin.get(url).json()["payload"]
    assert len(page) == 20 and page[-1]["content"] == "reply 22" and page[0]["message_type"] == 1
    assert [m["id"] for m in page] == sorted(m["id"] for m in page)
    older = seed.admin.get(url, params={"before": page[0]["id"]}).json()["payload"]
    assert [m["content"] for m in older] == ["hi 0", "hi 1", "reply 0", "reply 1", "reply 2"]


def test_multipart_message_with_file_round_trips_bytes(seed: Seed) -> None:
    _, conv = chat(seed)
    data = bytes(range(256)) + b"\r\n--boundary-like\r\n"
    r = seed.admin.post(
        seed.url(f"/conversations/{conv['id']}/messages"),
        data={
            "content": "photo",
            "message_type": "incoming",
            "source_id": "wamid.IMG",
            "content_attributes": json.dumps({"in_reply_to": 7}),
        },
        files=[("attachments[]", ("part.jpg", data, "image/jpeg"))],
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["content_attributes"] == {"in_reply_to": 7}
    attachment = body["attachments"][0]
    assert (attachment["file_type"], attachment["file_size"]) == ("image", len(data))

    blob = httpx.get(attachment["data_url"])
    assert blob.status_code == 302
    fetched = httpx.get(attachment["data_url"], follow_redirects=True)
    assert (fetched.content, fetched.headers["content-type"]) == (data, "image/jpeg")
    stored = seed.fake.messages[body["id"]]["attachments"][0]
    assert (stored["filename"], stored["data"]) == ("part.jpg", data)
    form = next(c for c in seed.fake.calls if c.form is not None).form
    assert form is not None
    assert form["attachments[]"] == [
        {"filename": "part.jpg", "content_type": "image/jpeg", "size": len(data)}
    ]
    assert seed.fake.schema_errors == []


def test_message_status_patch(seed: Seed) -> None:
    _, conv = chat(seed)
    base = seed.url(f"/conversations/{conv['id']}/messages")
    message_id = seed.admin.post(base, json={"content": "hello"}).json()["id"]
    url = f"{base}/{message_id}"
    assert seed.admin.patch(url, json={"status": "read"}).json()["status"] == "read"
    assert seed.admin.patch(url, json={"status": "delivered"}).json()["status"] == "read"
    r = seed.admin.patch(url, json={"status": "failed", "external_error": "131047: window"})
    assert (r.status_code, r.json()["status"]) == (200, "failed")
    stored = seed.fake.messages[message_id]
    assert (stored["status"], stored["external_error"]) == ("failed", "131047: window")
    assert seed.admin.patch(f"{base}/424242", json={"status": "read"}).status_code == 404


# ---- contract checks ----
def test_schema_violation_is_recorded_and_answered_422(seed: Seed) -> None:
    _, conv = chat(seed)
    r = seed.admin.post(
        seed.url(f"/conversations/{conv['id']}/messages"),
        json={"content": 42, "message_type": "sideways"},
    )
    assert r.status_code == 422
    assert "schema" in r.json()["error"]
    assert len(seed.fake.schema_errors) == 2
    assert "42 is not of type 'string'" in " ".join(seed.fake.schema_errors)
    assert seed.fake.messages == {}
    r = seed.admin.patch(
        seed.url(f"/conversations/{conv['id']}/messages/1"), json={"status": "seen"}
    )
    assert r.status_code == 422 and "PATCH" in seed.fake.schema_errors[-1]


# ---- faults ----
def test_fail_next_answers_times_then_recovers(seed: Seed) -> None:
    _, conv = chat(seed)
    url = seed.url(f"/conversations/{conv['id']}/messages")
    seed.fake.fail_next("POST", r"/messages$", 429, times=2)
    for _ in range(2):
        r = seed.admin.post(url, json={"content": "x"})
        assert (r.status_code, r.text.strip()) == (429, "Retry later")
    assert seed.fake.messages == {}  # faulted requests have no effect
    assert seed.admin.post(url, json={"content": "x"}).status_code == 200

    seed.fake.fail_next("GET", "/profile", 500)
    r = seed.admin.get("/api/v1/profile")
    assert (r.status_code, r.json()["error"]) == (500, "Internal Server Error")
    seed.fake.fail_next("GET", "/profile", 503, body={"custom": True})
    assert seed.admin.get("/api/v1/profile").json() == {"custom": True}
    seed.fake.fail_next("GET", "/profile", 502)
    seed.fake.clear_faults()
    assert seed.admin.get("/api/v1/profile").status_code == 200


def test_set_delay_holds_the_answer_but_keeps_the_effect(seed: Seed) -> None:
    _, conv = chat(seed)
    url = seed.url(f"/conversations/{conv['id']}/messages")
    seed.fake.set_delay("POST", "/messages", 0.5, times=1)
    with pytest.raises(httpx.ReadTimeout):
        seed.admin.post(url, json={"content": "slow", "source_id": "wamid.S"}, timeout=0.15)
    assert [m["source_id"] for m in seed.fake.messages.values()] == ["wamid.S"]
    started = time.monotonic()
    assert seed.admin.post(url, json={"content": "fast"}).status_code == 200
    assert time.monotonic() - started < 0.4


def test_hold_next_lets_a_later_request_take_effect_first(seed: Seed) -> None:
    _, conv = chat(seed)
    url = seed.url(f"/conversations/{conv['id']}/messages")
    seed.fake.hold_next("POST", "/messages", 0.5)
    calls_before = len(seed.fake.calls)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(seed.admin.post, url, json={"content": "sent first"})
        wait_for(lambda: len(seed.fake.calls) > calls_before)  # arrived, held
        assert not seed.fake.messages
        assert seed.admin.post(url, json={"content": "sent second"}).status_code == 200
        assert held.result(timeout=5).status_code == 200
    contents = [m["content"] for m in seed.fake.messages.values()]
    assert contents == ["sent second", "sent first"]


def test_unused_url_refuses_connections() -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(FakeChatwoot.unused_url() + "/api/v1/profile", timeout=2)


def test_stop_and_start_simulate_an_outage_at_the_same_url() -> None:
    fake = FakeChatwoot()
    with fake:
        account_id = fake.add_account()
        token = fake.add_user("Ada", {account_id: "administrator"})
        url = f"{fake.base_url}/api/v1/profile"
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, headers={"api_access_token": token}, timeout=2)
    with fake:
        assert httpx.get(url, headers={"api_access_token": token}).status_code == 200


def test_calls_are_recorded_without_the_token(seed: Seed) -> None:
    seed.admin.get(seed.url("/contacts/search"), params={"q": "Maria"})
    call = seed.fake.calls[-1]
    assert (call.method, call.path, call.query, call.status) == (
        "GET",
        seed.url("/contacts/search"),
        {"q": "Maria"},
        200,
    )
    assert call.headers["api_access_token"] == "<redacted>"
    assert seed.admin_token not in repr(seed.fake.calls)


def test_reset_forgets_everything(seed: Seed) -> None:
    chat(seed)
    seed.fake.fail_next("GET", ".", 500)
    seed.fake.reset()
    assert (seed.fake.inboxes, seed.fake.calls, seed.fake.users) == ({}, [], {})
    r = httpx.get(f"{seed.fake.base_url}/api/v1/profile", headers={"api_access_token": "x"})
    assert r.status_code == 401  # the fault is gone too, and so is every token


def test_module_runs_as_a_server_until_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.chatwoot", "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        base_url = lines[0].split()[-1]
        account_id = int(lines[1].split()[-1])
        token = lines[2].split()[-1]
        r = httpx.get(f"{base_url}/api/v1/profile", headers={"api_access_token": token})
        assert r.json()["accounts"][0]["id"] == account_id
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)
