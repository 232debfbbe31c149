"""``message_template_status_update`` bodies name the business account whose templates changed
(``entry[].id``); they are noted for a new sync, never relayed as messages."""

from __future__ import annotations

import copy
import json
from typing import Any

from app.relay.inbound.cloud_webhook import parse_cloud_webhook
from tests.reference import whatsapp_cloud_dir

PHONE_ID = "106540352242922"
WABA_ID = "102290129340398"


def load(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((whatsapp_cloud_dir() / "2026" / name).read_text())
    return body


def test_approved_and_rejected_updates_name_their_business_account() -> None:
    for name in ("template_status_update_approved.json", "template_status_update_rejected.json"):
        parsed = parse_cloud_webhook(load(name), PHONE_ID)

        assert parsed.events == []
        assert parsed.template_accounts == [WABA_ID]
        assert parsed.ignored == [
            "entry[0].changes[0]: field 'message_template_status_update' ignored "
            "(the business account's templates are synced again)"
        ]


def test_several_updates_of_one_account_are_noted_once_and_others_apart() -> None:
    body = load("template_status_update_approved.json")
    second = copy.deepcopy(body["entry"][0])
    other = copy.deepcopy(body["entry"][0])
    other["id"] = 987654321  # a number: Meta's ids are strings, read it all the same
    body["entry"] += [second, other]

    parsed = parse_cloud_webhook(body, PHONE_ID)

    assert parsed.template_accounts == [WABA_ID, "987654321"]


def test_an_update_without_a_usable_account_id_is_only_noted() -> None:
    body = load("template_status_update_approved.json")
    body["entry"][0]["id"] = "../WABA"

    parsed = parse_cloud_webhook(body, PHONE_ID)

    assert parsed.template_accounts == []
    assert "template status update without a usable business account id" in parsed.ignored


def test_messages_never_trigger_a_sync() -> None:
    parsed = parse_cloud_webhook(load("bsuid_and_phone_text.json"), PHONE_ID)

    assert parsed.template_accounts == [] and len(parsed.events) == 1
