"""Every 2026 WhatsApp Cloud reference body (BSUIDs, usernames, coexistence, odd messages),
relayed by real workers: what lands in Chatwoot for each, and what does not."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
from dramatiq import Worker
from starlette.testclient import TestClient

from app.relay.message_map import remember_message
from app.store.db import database
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.graph import FakeGraph
from tests.relay.bridge import CloudBridge, make_cloud_bridge, text_body
from tests.relay.cloud_2026 import body_2026, messages_of, names_2026, with_graph_media

ORIGINAL = "wamid.HBgLMTY1MDU1NTAxOTkVAgASGBRPUklHSU5BTAVAgASGBQzRUIwQTc1RjVBNkM4QjQyQzE3NwA="
REACTED = "wamid.HBgLQlVTSU5FU1NNU0cxNTU1MDc4Mzg4MQVAgASGBQzRUIwQTc1RjVBNkM4QjQyQzE3NwA="
SHEENA = {"name": "Sheena Nelson", "phone_number": "+16505551234"}
ANA = {"name": "Ana Souza", "phone_number": None}
PABLO = {"name": "Pablo Morales", "phone_number": "+16505550199"}
DOWNLOAD_ERROR = (
    "400: Media download failed: Not retrying as download is not retriable at this time "
    "(Last error was: ServerThrottle. Http request error: HTTP response code said error. "
    "See logs for details)"
)


@dataclass(frozen=True)
class Lands:
    """One Chatwoot message a body must become."""

    content: str
    message_type: str = "incoming"
    reply_to: str | None = None
    attachment: bool = False


# body -> the Chatwoot messages it becomes, in order
MESSAGES: dict[str, list[Lands]] = {
    "bsuid_and_phone_text.json": [Lands("Does it come in another color?")],
    "bsuid_only_text_with_username.json": [Lands("Oi! Vocês entregam no sábado?")],
    "bsuid_only_image.json": [Lands("Este modelo, por favor", attachment=True)],
    "coexistence_edit.json": [
        Lands("✏️ Edited: Can I pick it up at 4pm instead?", reply_to=ORIGINAL)
    ],
    "coexistence_revoke.json": [Lands("🗑️ Deleted this message", reply_to=ORIGINAL)],
    "image_download_error.json": [
        Lands(
            "Receipt attached\n\n⚠️ The image could not be fetched from WhatsApp: "
            + DOWNLOAD_ERROR.replace("_", "\\_")
        )
    ],
    "multi_message_body.json": [
        Lands("Is my order shipped?"),
        Lands("[Unsupported message: message type poll]"),
        Lands("", attachment=True),
    ],
    "reaction_no_message_id.json": [Lands("Reacted 👍")],
    "reaction_removed.json": [Lands("Removed a reaction", reply_to=REACTED)],
    "reaction_removed_no_emoji.json": [Lands("Removed a reaction", reply_to=REACTED)],
    "smb_message_echoes_text.json": [
        Lands("Your order is ready for pickup after 3pm.", message_type="outgoing")
    ],
    "smb_message_echoes_image.json": [
        Lands("Here it is in blue", message_type="outgoing", attachment=True)
    ],
    "unsupported_131060.json": [
        Lands("[Unsupported message: 131060: This message is unavailable]")
    ],
    "user_id_update_system_user_changed_number.json": [
        Lands("[System: User Sheena Nelson changed from 16505551234 to 12195555358]")
    ],
    "user_id_update_system_user_changed_user_id.json": [
        Lands("[System: User Sheena Nelson changed their business-scoped user ID]")
    ],
}

# body -> the contacts (name, phone) it creates
CONTACTS: dict[str, list[dict[str, Any]]] = {
    "bsuid_and_phone_text.json": [SHEENA],
    "bsuid_only_text_with_username.json": [ANA],
    "bsuid_only_image.json": [ANA],
    "coexistence_edit.json": [PABLO],
    "multi_message_body.json": [
        SHEENA,
        ANA,
        {"name": "Kenji Watanabe", "phone_number": "+818012345678"},
    ],
    "smb_message_echoes_text.json": [{"name": "+16505550199", "phone_number": "+16505550199"}],
    "user_id_update_system_user_changed_user_id.json": [
        {"name": "US.40815592273318649021", "phone_number": None}
    ],
}

# bodies stored and answered 200, relaying nothing
NOTHING = {
    "history_chunk.json",
    "smb_app_state_sync.json",
    "template_status_update_approved.json",
    "template_status_update_rejected.json",
    "user_id_update_legacy_field_INFERRED.json",
}

# status body -> (Chatwoot status, external_error) on the agent message its id maps to
STATUSES: dict[str, tuple[str, str | None]] = {
    "status_delivered_bsuid_only.json": ("delivered", None),
    "status_read_bsuid_only.json": ("read", None),
    "status_failed_no_contacts_131047.json": (
        "failed",
        "24-hour window closed — reply with a template",
    ),
    "status_failed_no_contacts_131062_bsuid.json": (
        "failed",
        "131062: Business-scoped user ID not supported",
    ),
}


@pytest.fixture
def bridge(
    client: TestClient, account_token: str, chatwoot: FakeChatwoot, graph: FakeGraph, worker: Worker
) -> CloudBridge:
    return make_cloud_bridge(client, account_token, chatwoot, graph_url=graph.base_url)


def test_every_2026_body_is_covered() -> None:
    covered = set(MESSAGES) | NOTHING | set(STATUSES)
    assert names_2026() == covered


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_2026_body_lands_in_chatwoot(bridge: CloudBridge, graph: FakeGraph, name: str) -> None:
    expected = MESSAGES[name]
    body, data = with_graph_media(graph, name)
    wamids = [m["id"] for m in messages_of(body)]

    response = bridge.post(body)

    assert response.status_code == 200, response.text
    assert response.json() == {"received": len(expected), "stored": len(expected)}
    posted = bridge.wait_for_messages(len(expected))
    bridge.wait_for_events("delivered", len(expected))
    by_source = {m["source_id"]: m for m in posted}
    for wamid, lands in zip(wamids, expected, strict=True):
        message = by_source[wamid]
        assert (message["content"] or "") == lands.content
        assert message["message_type"] == lands.message_type
        assert message["content_attributes"].get("in_reply_to_external_id") == lands.reply_to
        attachments = [a["data"] for a in message["attachments"]]
        assert attachments == ([data[wamid]] if lands.attachment else [])
    assert len(bridge.messages()) == len(expected)
    if name in CONTACTS:
        # chats are relayed in parallel lanes: contacts may be created in any order
        found = [
            {"name": c["name"], "phone_number": c["phone_number"]}
            for c in bridge.chatwoot.contacts.values()
        ]
        assert sorted(found, key=str) == sorted(CONTACTS[name], key=str)


def test_media_download_error_posts_the_caption_and_never_fetches(
    bridge: CloudBridge, graph: FakeGraph
) -> None:
    body, _ = with_graph_media(graph, "image_download_error.json")

    bridge.post(body)

    [message] = bridge.wait_for_messages(1)
    bridge.wait_for_events("delivered", 1)
    assert message["content"].startswith("Receipt attached\n\n⚠️ The image could not be fetched")
    assert message["attachments"] == []
    assert [c for c in graph.calls if c.method == "GET"] == []


def test_bsuid_only_contact_keeps_username_and_bsuid_in_its_attributes(
    bridge: CloudBridge,
) -> None:
    bridge.post(body_2026("bsuid_only_text_with_username.json"))

    bridge.wait_for_messages(1)
    [contact] = bridge.chatwoot.contacts.values()
    assert contact["phone_number"] is None
    assert contact["additional_attributes"] == {
        "social_profiles": {"whatsapp": "ana.souza"},
        "social_whatsapp_user_name": "ana.souza",
        "social_whatsapp_user_id": "BR.1349120865530274",
    }
    [contact_inbox] = bridge.chatwoot.contact_inboxes
    assert contact_inbox["source_id"] == "BR.1349120865530274"


@pytest.mark.parametrize("name", sorted(NOTHING))
def test_2026_body_that_relays_nothing_is_acknowledged(bridge: CloudBridge, name: str) -> None:
    response = bridge.post(body_2026(name))

    assert response.status_code == 200, response.text
    assert response.json() == {"received": 0, "stored": 0}
    assert bridge.events() == []
    time.sleep(0.2)
    assert bridge.messages() == []


@pytest.mark.parametrize("name", sorted(STATUSES))
def test_2026_status_ticks_the_agent_message_it_names(bridge: CloudBridge, name: str) -> None:
    status, external_error = STATUSES[name]
    bridge.post(text_body("16505551234", "wamid.customer.first", "hello"))
    [message] = bridge.wait_for_messages(1)
    bridge.wait_for_events("delivered", 1)
    wamid = body_2026(name)["entry"][0]["changes"][0]["value"]["statuses"][0]["id"]
    with database.connection_context():
        remember_message(
            bridge.integration(),
            wamid,
            message["id"],
            message["conversation_display_id"],
            "outgoing",
        )

    response = bridge.post(body_2026(name))

    assert response.json() == {"received": 1, "stored": 1}
    bridge.wait_for_events("delivered", 2)
    patched = bridge.chatwoot.messages[message["id"]]
    assert (patched["status"], patched["external_error"]) == (status, external_error)
