"""Driving the outbound direction in tests: a customer chat exists, an agent replies in the fake
Chatwoot, and the fake Chatwoot's inbox webhook reaches us, signed like Chatwoot signs it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from app.store.models import RelayEvent
from tests.fakes import chatwoot_webhooks as hooks
from tests.fakes.chatwoot import FakeChatwoot
from tests.relay.bridge import CloudBridge, text_body, wait_until

CUSTOMER = "16505551234"


@dataclass
class AgentSide:
    """The agent's view of one chat: the account, an agent token, the conversation."""

    bridge: CloudBridge
    account_id: int
    agent_token: str
    conversation_id: int

    @property
    def chatwoot(self) -> FakeChatwoot:
        return self.bridge.chatwoot

    def webhook_path(self) -> str:
        listed = self.bridge.client.get(
            f"/api/chatwoot/list/{self.bridge.instance}",
            headers={"token": self.bridge.account_token},
        ).json()
        url: str = listed["webhook_url"]
        return url.removeprefix("https://bridge.example.com")

    def inbox_secret(self) -> str:
        secret: str = self.chatwoot.inboxes[self.bridge.inbox_id]["secret"]
        return secret

    def reply(self, content: str, **kwargs: Any) -> int:
        """The agent writes in Chatwoot; returns the Chatwoot message id."""
        return hooks.agent_reply(
            self.chatwoot,
            self.account_id,
            self.agent_token,
            self.conversation_id,
            content,
            **kwargs,
        )

    def deliver_webhook(self, message_id: int) -> httpx.Response:
        """What Chatwoot POSTs to the inbox webhook for ``message_id``, signed."""
        return self.post(hooks.message_created_body(self.chatwoot, message_id))

    def post(self, body: dict[str, Any], sign: bool = True, **headers: str) -> httpx.Response:
        raw = hooks.encode_body(body)
        sent = (
            hooks.signed_headers(raw, self.inbox_secret())
            if sign
            else {"Content-Type": "application/json"}
        )
        sent.update(headers)
        return self.bridge.client.post(self.webhook_path(), content=raw, headers=sent)

    def message(self, message_id: int) -> dict[str, Any]:
        found: dict[str, Any] = self.chatwoot.messages[message_id]
        return found

    def ticks(self, message_id: int) -> list[str]:
        """The statuses we PATCHed onto a Chatwoot message, in order (answered 200)."""
        return [
            str(call.json["status"])
            for call in list(self.chatwoot.calls)
            if call.method == "PATCH"
            and call.path.endswith(f"/messages/{message_id}")
            and call.status == 200
            and isinstance(call.json, dict)
        ]

    def wait_status(self, message_id: int, status: str, timeout: float = 15.0) -> dict[str, Any]:
        """Wait until we ticked ``status`` on the message (a new Chatwoot message already says
        ``sent`` by itself, so the stored status alone would prove nothing)."""
        wait_until(
            lambda: (
                status in self.ticks(message_id)
                and self.message(message_id).get("status") == status
            ),
            timeout,
            f"message {message_id} ticked {status}",
        )
        return self.message(message_id)

    def reply_event(self, message_id: int) -> RelayEvent:
        """Our stored event of the agent's reply ``message_id``."""
        [event] = [e for e in self.bridge.events() if e.natural_key == f"cw:{message_id}"]
        return event

    def wait_event(self, message_id: int, status: str, timeout: float = 15.0) -> RelayEvent:
        """Wait until the reply's event is recorded ``status`` (a Chatwoot tick alone does not
        say so: the lane ticks before it records the outcome)."""
        wait_until(
            lambda: self.reply_event(message_id).status == status,
            timeout,
            f"reply {message_id} {status}",
        )
        return self.reply_event(message_id)


def open_chat(bridge: CloudBridge) -> AgentSide:
    """A customer writes first (so Chatwoot has the contact and conversation)."""
    bridge.post(text_body(CUSTOMER, "wamid.customer.hello", "Hello, is anyone there?"))
    [first] = bridge.wait_for_messages(1)
    conversation = bridge.chatwoot.conversations[first["conversation_id"]]
    account_id = int(conversation["account_id"])
    agent_token = bridge.chatwoot.add_user("Jane Agent", {account_id: "agent"})
    return AgentSide(bridge, account_id, agent_token, int(conversation["display_id"]))


def sent_bodies(sent: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(json.dumps(s.body)) for s in sent]
