"""Conversation and message endpoints of the fake Chatwoot (see ``chatwoot_api.py``).

Sources (chatwoot/chatwoot): controllers/api/v1/accounts/conversations_controller.rb,
conversations/messages_controller.rb, builders/messages/message_builder.rb,
builders/conversation_builder.rb, services/messages/status_update_service.rb,
finders/message_finder.rb, models/message.rb (``reopen_conversation``).
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from tests.fakes import chatwoot_views as views
from tests.fakes.chatwoot_api import (
    MESSAGE_STATUSES,
    PAGE_SIZE,
    STATUSES,
    ChatwootState,
    Ctx,
    Reply,
    to_int,
    truthy,
)
from tests.fakes.chatwoot_schema import UploadedFile
from tests.fakes.chatwoot_views import ApiError, could_not_create, not_found


def _json_object(text: str) -> Any:
    """``safe_parse_json``: the parsed JSON string, or ``{}`` when it does not parse."""
    try:
        return json.loads(text)
    except ValueError:
        return {}


class ConversationEndpoints(ChatwootState):
    """Conversations, their status, and their messages (keyed by per-account display id)."""

    def _contact_inbox_for_new_conversation(self, ctx: Ctx) -> dict[str, Any]:
        """ConversationsController#contact_inbox, including its fallback.

        With ``inbox_id`` *and* ``contact_id`` Chatwoot finds or builds that pair's contact inbox.
        Otherwise it looks ``source_id`` up with ``ContactInbox.find_by!(source_id:)`` across all
        inboxes, ignoring ``inbox_id`` (a real pitfall this fake keeps).
        """
        p = ctx.params
        inbox = self._inbox(ctx, p["inbox_id"]) if p.get("inbox_id") not in (None, "") else None
        contact = (
            self._contact(ctx, p["contact_id"]) if p.get("contact_id") not in (None, "") else None
        )
        source_id = str(p["source_id"]) if p.get("source_id") not in (None, "") else None
        if inbox and contact:
            existing = self._find_ci(inbox["id"], source_id) if source_id else None
            if existing and existing["contact_id"] != contact["id"]:
                raise could_not_create("source_id should be unique")
            return existing or self._add_ci(contact, inbox, source_id)
        found = next((ci for ci in self.contact_inboxes if ci["source_id"] == source_id), None)
        if found is None or found["inbox_id"] not in self.inboxes:
            raise not_found()
        if self.inboxes[found["inbox_id"]]["account_id"] != ctx.account_id:
            raise views.unauthorized(views.NOT_AUTHORIZED_ACTION)
        return found

    def create_conversation(self, ctx: Ctx) -> Reply:
        ci = self._contact_inbox_for_new_conversation(ctx)
        inbox = self.inboxes[ci["inbox_id"]]
        if inbox["lock_to_single_conversation"]:  # ConversationBuilder#look_up_exising_conversation
            mine = [c for c in self.conversations.values() if c["contact_inbox_id"] == ci["id"]]
            if mine:
                return 200, self._render_conversation(mine[-1], ctx.base_url)
        status = ctx.params.get("status") or "open"
        if status not in STATUSES:
            raise could_not_create(f"'{status}' is not a valid status")
        conv_id = self._next_id("conversation")
        display = self._display_ids.setdefault(inbox["account_id"], itertools.count(1))
        now = int(time.time())
        conv = {
            "id": conv_id,
            "display_id": next(display),
            "account_id": inbox["account_id"],
            "inbox_id": inbox["id"],
            "contact_id": ci["contact_id"],
            "contact_inbox_id": ci["id"],
            "status": status,
            "uuid": self._uuid(),
            "muted": False,
            "snoozed_until": None,
            "additional_attributes": ctx.params.get("additional_attributes") or {},
            "custom_attributes": ctx.params.get("custom_attributes") or {},
            "assignee_id": ctx.params.get("assignee_id"),
            "created_at": now,
            "last_activity_at": now,
        }
        self.conversations[conv_id] = conv
        first = ctx.params.get("message")
        if isinstance(first, dict) and first.get("content"):
            self._build_message(ctx, conv, {"content": first["content"]}, [])
        return 200, self._render_conversation(conv, ctx.base_url)

    def show_conversation(self, ctx: Ctx) -> Reply:
        return 200, self._render_conversation(self._conversation(ctx), ctx.base_url)

    def toggle_status(self, ctx: Ctx) -> Reply:
        conv = self._conversation(ctx)
        status = ctx.params.get("status")
        if status is None:  # Conversation#toggle_status
            status = "resolved" if conv["status"] == "open" else "open"
        if status not in STATUSES:
            raise could_not_create(f"'{status}' is not a valid status")
        conv["status"] = status
        conv["snoozed_until"] = ctx.params.get("snoozed_until") if status == "snoozed" else None
        return 200, {
            "meta": {},
            "payload": {
                "success": True,
                "conversation_id": conv["display_id"],
                "current_status": status,
                "snoozed_until": conv["snoozed_until"],
            },
        }

    # ---- public API (Public::Api::V1::Inboxes::ConversationsController) ----
    def public_toggle_typing(self, ctx: Ctx) -> Reply:
        """``POST /public/api/v1/inboxes/{inbox_identifier}/contacts/{source_id}/
        conversations/{display_id}/toggle_typing``: no token; each unknown identifier is a 404
        (``find_by!``). ``typing_status`` on/off dispatches ``conversation_typing_on``/``_off``
        with ``user: @conversation.contact`` (recorded in ``typing_events``), anything else does
        nothing; ``head :ok`` either way."""
        inbox = next(
            (
                i
                for i in self.inboxes.values()
                if i["channel_type"] == "Channel::Api"
                and i["inbox_identifier"] == ctx.path["inbox_identifier"]
            ),
            None,
        )
        if inbox is None:
            raise not_found()
        contact_inbox = next(
            (
                c
                for c in self.contact_inboxes
                if c["inbox_id"] == inbox["id"] and c["source_id"] == ctx.path["contact_identifier"]
            ),
            None,
        )
        if contact_inbox is None:
            raise not_found()
        conv = next(
            (
                c
                for c in self.conversations.values()
                if c["contact_inbox_id"] == contact_inbox["id"]
                and c["display_id"] == ctx.path["conversation_id"]
            ),
            None,
        )
        if conv is None:
            raise not_found()
        status = ctx.params.get("typing_status", ctx.query.get("typing_status"))
        if status in ("on", "off"):
            self.typing_events.append(
                {
                    "event": f"conversation_typing_{status}",
                    "account_id": conv["account_id"],
                    "conversation_id": conv["display_id"],
                    "user": {"type": "contact", "id": conv["contact_id"]},
                }
            )
        return 200, None

    # ---- messages ----
    def list_messages(self, ctx: Ctx) -> Reply:
        conv = self._conversation(ctx)
        own = sorted(
            (m for m in self.messages.values() if m["conversation_id"] == conv["id"]),
            key=lambda m: m["id"],
        )
        before = to_int(ctx.query.get("before"))
        after = to_int(ctx.query.get("after"))
        if before is not None:
            own = [m for m in own if m["id"] < before]
        if after is not None:
            own = [m for m in own if m["id"] > after][:100]
        elif len(own) > PAGE_SIZE:
            own = own[-PAGE_SIZE:]
        meta = {
            "labels": [],
            "additional_attributes": conv["additional_attributes"],
            "contact": views.contact_sender(self.contacts[conv["contact_id"]]),
            "assignee": None,
            "agent_last_seen_at": None,
            "assignee_last_seen_at": None,
        }
        return 200, {"meta": meta, "payload": [self._render_message(m, ctx.base_url) for m in own]}

    def create_message(self, ctx: Ctx) -> Reply:
        conv = self._conversation(ctx)
        uploads = [f for f in ctx.files if f.field in ("attachments[]", "attachments")]
        message = self._build_message(ctx, conv, ctx.params, uploads)
        return 200, self._render_message(message, ctx.base_url)

    def _build_message(
        self, ctx: Ctx, conv: dict[str, Any], p: dict[str, Any], uploads: list[UploadedFile]
    ) -> dict[str, Any]:
        """Messages::MessageBuilder: stores whatever arrives; ``source_id`` is not de-duplicated."""
        message_type = p.get("message_type") or "outgoing"
        if message_type not in views.MESSAGE_TYPES:
            raise could_not_create(f"'{message_type}' is not a valid message_type")
        if (
            message_type == "incoming"
            and self.inboxes[conv["inbox_id"]]["channel_type"] != "Channel::Api"
        ):
            raise could_not_create("Incoming messages are only allowed in Api inboxes")
        attrs = p.get("content_attributes") or {}
        if isinstance(attrs, str):  # multipart sends it as a JSON string; bad JSON -> {}
            attrs = _json_object(attrs)
        incoming = message_type == "incoming"
        message_id = self._next_id("message")
        message = {
            "id": message_id,
            "account_id": conv["account_id"],
            "inbox_id": conv["inbox_id"],
            "conversation_id": conv["id"],
            "conversation_display_id": conv["display_id"],
            "message_type": message_type,
            "content": p.get("content"),
            "content_type": p.get("content_type") or "text",
            "content_attributes": attrs if isinstance(attrs, dict) else {},
            "source_id": p.get("source_id"),
            "echo_id": p.get("echo_id"),
            "private": truthy(p.get("private")),
            "status": "sent",
            "external_error": None,
            "sender_type": "Contact" if incoming else "User",
            "sender_id": conv["contact_id"] if incoming else ctx.user["id"],
            "created_at": int(time.time()),
            "attachments": [],
            # Messages::MessageBuilder#template_params: an agent's WhatsApp template
            "additional_attributes": (
                {"template_params": p["template_params"]}
                if isinstance(p.get("template_params"), dict) and p["template_params"]
                else {}
            ),
        }
        for upload in uploads:
            message["attachments"].append(self._store_attachment(upload))
        self.messages[message_id] = message
        conv["last_activity_at"] = message["created_at"]
        if incoming and not conv["muted"] and conv["status"] in ("resolved", "snoozed"):
            conv["status"] = "open"  # Message#reopen_conversation
        return message

    def _store_attachment(self, upload: UploadedFile) -> dict[str, Any]:
        major = upload.content_type.split("/")[0]
        signed_id, key = self._token(40), self._token(28)
        attachment: dict[str, Any] = {
            "id": self._next_id("attachment"),
            "filename": upload.filename,
            "content_type": upload.content_type,
            "data": upload.data,
            "file_type": major if major in ("image", "audio", "video") else "file",
            "signed_id": signed_id,
            "key": key,
        }
        self.blobs[signed_id] = self.blobs[key] = attachment
        return attachment

    def update_message(self, ctx: Ctx) -> Reply:
        """PATCH .../messages/{id}: API inboxes only; read never goes back to delivered."""
        conv = self._conversation(ctx)
        if self.inboxes[conv["inbox_id"]]["channel_type"] != "Channel::Api":
            raise ApiError(403, {"error": "Message status update is only allowed for API inboxes"})
        message = self.messages.get(to_int(ctx.path["id"]) or -1)
        if message is None or message["conversation_id"] != conv["id"]:
            raise not_found()
        status = ctx.params.get("status")
        if status in MESSAGE_STATUSES and not (
            message["status"] == "read" and status == "delivered"
        ):
            error = ctx.params.get("external_error") if status == "failed" else None
            message["status"] = status
            message["external_error"] = error
            # Rails' store accessor writes a value only when it differs: a message that never
            # failed has no external_error key, one that failed keeps it (null after a change)
            if error != message["content_attributes"].get("external_error"):
                message["content_attributes"]["external_error"] = error
        return 200, self._render_message(message, ctx.base_url)
