"""State of the fake Chatwoot, plus its profile, inbox and contact endpoints (no HTTP here).

Conversations and messages are in ``chatwoot_conversations.py``; the server in ``chatwoot.py``.
Behaviour follows Chatwoot's code (chatwoot/chatwoot): controllers/api/v1/accounts/
inboxes_controller.rb + policies/inbox_policy.rb (create/update need an administrator),
contacts_controller.rb + models/contact.rb (e164 phone; phone, email, identifier unique per
account), contact_inboxes_controller.rb (filter: ``head :not_found`` when nothing matches),
contacts/contact_inboxes_controller.rb. Handlers run under the fake's lock and return
``(status, body)``; errors are raised as ``ApiError``.
"""

from __future__ import annotations

import itertools
import random
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from tests.fakes import chatwoot_views as views
from tests.fakes.chatwoot_schema import UploadedFile
from tests.fakes.chatwoot_views import could_not_create, not_found, record_invalid

Reply = tuple[int, Any]
E164 = re.compile(r"\+[1-9]\d{1,14}")
STATUSES = ("open", "resolved", "pending", "snoozed")
MESSAGE_STATUSES = ("sent", "delivered", "read", "failed")
PAGE_SIZE = 20  # MessageFinder
SEARCH_PAGE_SIZE = 15  # ContactsController::RESULTS_PER_PAGE
# Distinct id ranges, so a contact id passed where an inbox id belongs fails loudly.
ID_BASES = {
    "account": 1,
    "user": 1,
    "inbox": 101,
    "channel": 1,
    "contact": 1001,
    "contact_inbox": 50001,
    "conversation": 70001,
    "message": 100001,
    "attachment": 1,
}


def _permit_any(value: Any) -> Any:
    """Rails' ``permit(additional_attributes: {})`` (``permit_any_in_parameters``): scalars,
    hashes and arrays of scalars or hashes are kept; an array inside an array is dropped."""
    if isinstance(value, dict):
        return {str(k): _permit_any(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_permit_any(v) for v in value if not isinstance(v, list)]
    return value


def _channel_attributes(channel: dict[str, Any]) -> dict[str, Any]:
    """An API channel's new ``additional_attributes``: the given object replaces the stored one
    as a whole (``channel.update!``); ``Channel::Api#ensure_valid_agent_reply_time_window``
    refuses a window that is set but not a positive number of hours."""
    given = channel.get("additional_attributes")
    attributes: dict[str, Any] = _permit_any(given) if isinstance(given, dict) else {}
    window = attributes.get("agent_reply_time_window")
    if window not in (None, "", False) and _ruby_to_i(window) <= 0:
        raise record_invalid(
            [
                (
                    "agent_reply_time_window",
                    "Agent reply time window agent_reply_time_window must be greater than 0",
                )
            ]
        )
    return attributes


def _ruby_to_i(value: Any) -> int:
    """``value.to_i``: leading digits of a string, 0 when none."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int | float):
        return int(value)
    match = re.match(r"\s*([+-]?\d+)", str(value))
    return int(match.group(1)) if match else 0


@dataclass
class Ctx:
    """One authenticated request, as the handlers see it."""

    user: dict[str, Any]
    account: dict[str, Any] | None = None
    administrator: bool = False
    path: dict[str, Any] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)
    base_url: str = ""

    @property
    def account_id(self) -> int:
        assert self.account is not None
        return int(self.account["id"])


def to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def truthy(value: Any) -> bool:
    """ActiveModel boolean casting, as Rails applies to form values."""
    return value not in (None, False, 0, "0", "false", "f", "off", "")


class ChatwootState:
    """Everything the fake remembers; plain dicts and lists that tests may read."""

    def _init_state(self) -> None:
        self.accounts: dict[int, dict[str, Any]] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.inboxes: dict[int, dict[str, Any]] = {}
        self.contacts: dict[int, dict[str, Any]] = {}
        self.contact_inboxes: list[dict[str, Any]] = []
        self.conversations: dict[int, dict[str, Any]] = {}
        self.messages: dict[int, dict[str, Any]] = {}
        self.blobs: dict[str, dict[str, Any]] = {}  # signed id or disk key -> attachment
        self.typing_events: list[dict[str, Any]] = []  # what public toggle_typing did
        self._counters: dict[str, Iterator[int]] = {
            k: itertools.count(v) for k, v in ID_BASES.items()
        }
        self._display_ids: dict[int, Iterator[int]] = {}
        self._rng = random.Random(20260617)  # deterministic tokens and secrets

    def _next_id(self, kind: str) -> int:
        return next(self._counters[kind])

    def _token(self, n: int = 24) -> str:
        alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
        return "".join(self._rng.choice(alphabet) for _ in range(n))

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    # ---- lookups (all scoped to the request's account, like Current.account.x.find) ----
    def _inbox(self, ctx: Ctx, inbox_id: Any) -> dict[str, Any]:
        inbox = self.inboxes.get(to_int(inbox_id) or -1)
        if inbox is None or inbox["account_id"] != ctx.account_id:
            raise not_found()
        return inbox

    def _contact(self, ctx: Ctx, contact_id: Any) -> dict[str, Any]:
        contact = self.contacts.get(to_int(contact_id) or -1)
        if contact is None or contact["account_id"] != ctx.account_id:
            raise not_found()
        return contact

    def _conversation(self, ctx: Ctx) -> dict[str, Any]:
        display_id = ctx.path["conversation_id"]
        for conv in self.conversations.values():
            if conv["account_id"] == ctx.account_id and conv["display_id"] == display_id:
                return conv
        raise not_found()

    def _contact_inboxes_of(
        self, contact: dict[str, Any]
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [
            (ci, self.inboxes[ci["inbox_id"]])
            for ci in self.contact_inboxes
            if ci["contact_id"] == contact["id"] and ci["inbox_id"] in self.inboxes
        ]

    def _render_contact(self, contact: dict[str, Any]) -> dict[str, Any]:
        return views.contact_json(contact, self._contact_inboxes_of(contact))

    def _render_message(self, message: dict[str, Any], base_url: str) -> dict[str, Any]:
        conv = self.conversations.get(message["conversation_id"])
        display_id = conv["display_id"] if conv else message["conversation_id"]
        sender: dict[str, Any] | None = None
        if message["sender_type"] == "Contact" and message["sender_id"] in self.contacts:
            sender = views.contact_sender(self.contacts[message["sender_id"]])
        elif message["sender_type"] == "User" and message["sender_id"] in self.users:
            sender = views.user_sender(self.users[message["sender_id"]])
        return views.message_json(message, display_id, sender, base_url)

    def _render_conversation(self, conv: dict[str, Any], base_url: str) -> dict[str, Any]:
        own = [m for m in self.messages.values() if m["conversation_id"] == conv["id"]]
        last = self._render_message(own[-1], base_url) if own else None
        inbox = self.inboxes.get(conv["inbox_id"])
        channel = inbox["channel_type"] if inbox else "Channel::Api"
        return views.conversation_json(conv, self.contacts[conv["contact_id"]], channel, last)

    # ---- profile & inboxes ----
    def get_profile(self, ctx: Ctx) -> Reply:
        return 200, views.profile_json(ctx.user, self.accounts)

    def list_inboxes(self, ctx: Ctx) -> Reply:
        own = [i for i in self.inboxes.values() if i["account_id"] == ctx.account_id]
        return 200, {"payload": [views.inbox_json(i, ctx.administrator) for i in own]}

    def show_inbox(self, ctx: Ctx) -> Reply:
        return 200, views.inbox_json(self._inbox(ctx, ctx.path["id"]), ctx.administrator)

    def create_inbox(self, ctx: Ctx) -> Reply:
        self._require_administrator(ctx)
        channel = ctx.params.get("channel") or {}
        if not isinstance(channel, dict) or channel.get("type") != "api":
            raise could_not_create("Invalid channel type (the fake supports API channels only)")
        if not str(ctx.params.get("name") or "").strip():
            raise record_invalid([("name", "Name can't be blank")])
        inbox_id = self._next_id("inbox")
        self.inboxes[inbox_id] = {
            "id": inbox_id,
            "account_id": ctx.account_id,
            "name": ctx.params["name"],
            "channel_id": self._next_id("channel"),
            "channel_type": "Channel::Api",
            "webhook_url": channel.get("webhook_url"),
            "inbox_identifier": self._token(),
            "hmac_token": self._token(),
            "secret": self._token(32),
            "hmac_mandatory": bool(channel.get("hmac_mandatory", False)),
            "additional_attributes": channel.get("additional_attributes") or {},
            "greeting_enabled": False,
            "greeting_message": None,
            "enable_auto_assignment": True,
            "lock_to_single_conversation": False,
            "timezone": "UTC",
            "created_at": int(time.time()),
        }
        self._apply_inbox_settings(self.inboxes[inbox_id], ctx.params)
        return 200, views.inbox_json(self.inboxes[inbox_id], administrator=True)

    def update_inbox(self, ctx: Ctx) -> Reply:
        inbox = self._inbox(ctx, ctx.path["id"])
        self._require_administrator(ctx)
        if "name" in ctx.params:
            inbox["name"] = ctx.params["name"]
        channel = ctx.params.get("channel")
        if isinstance(channel, dict):
            if "additional_attributes" in channel:
                channel = {**channel, "additional_attributes": _channel_attributes(channel)}
            for key in ("webhook_url", "hmac_mandatory", "additional_attributes"):
                if key in channel:
                    inbox[key] = channel[key]
        self._apply_inbox_settings(inbox, ctx.params)
        return 200, views.inbox_json(inbox, administrator=True)

    @staticmethod
    def _apply_inbox_settings(inbox: dict[str, Any], params: dict[str, Any]) -> None:
        for key in (
            "greeting_enabled",
            "greeting_message",
            "enable_auto_assignment",
            "lock_to_single_conversation",
            "timezone",
        ):
            if key in params:
                inbox[key] = params[key]

    @staticmethod
    def _require_administrator(ctx: Ctx) -> None:
        if not ctx.administrator:  # Pundit::NotAuthorizedError -> render_unauthorized
            raise views.unauthorized(views.NOT_AUTHORIZED_ACTION)

    # ---- contacts ----
    def _contact_errors(
        self, account_id: int, fields: dict[str, Any], exclude: int | None = None
    ) -> list[tuple[str, str]]:
        """Contact model validations: e164 phone; phone, identifier, email unique per account
        (``exclude``: the contact being updated)."""
        errors: list[tuple[str, str]] = []
        phone = fields.get("phone_number")
        if phone and not E164.fullmatch(str(phone)):
            errors.append(("phone_number", "Phone number should be in e164 format"))
        peers = [
            c
            for c in self.contacts.values()
            if c["account_id"] == account_id and c["id"] != exclude
        ]
        for attr, label in (
            ("phone_number", "Phone number"),
            ("identifier", "Identifier"),
            ("email", "Email"),
        ):
            value = fields.get(attr)
            fold = (lambda v: str(v).lower()) if attr == "email" else str
            if value and any(p[attr] and fold(p[attr]) == fold(value) for p in peers):
                errors.append((attr, f"{label} has already been taken"))
        return errors

    def create_contact(self, ctx: Ctx) -> Reply:
        p = ctx.params
        errors = self._contact_errors(ctx.account_id, p)
        if errors:
            raise record_invalid(errors)
        inbox = self._inbox(ctx, p["inbox_id"]) if p.get("inbox_id") not in (None, "") else None
        if inbox and p.get("source_id") and self._find_ci(inbox["id"], str(p["source_id"])):
            raise record_invalid([("source_id", "Source has already been taken")])
        contact_id = self._next_id("contact")
        now = int(time.time())
        contact = {
            "id": contact_id,
            "account_id": ctx.account_id,
            "name": p.get("name") or "",
            "email": p.get("email"),
            "phone_number": p.get("phone_number"),
            "identifier": p.get("identifier"),
            "blocked": truthy(p.get("blocked")),
            "additional_attributes": p.get("additional_attributes") or {},
            "custom_attributes": p.get("custom_attributes") or {},
            "created_at": now,
            "last_activity_at": None,
        }
        self.contacts[contact_id] = contact
        ci = self._add_ci(contact, inbox, p.get("source_id")) if inbox else None
        ci_json = {
            "inbox": views.inbox_slim(inbox) if inbox else None,
            "source_id": ci["source_id"] if ci else None,
        }
        return 200, {
            "payload": {"contact": self._render_contact(contact), "contact_inbox": ci_json}
        }

    def _find_ci(self, inbox_id: int, source_id: str) -> dict[str, Any] | None:
        return next(
            (
                ci
                for ci in self.contact_inboxes
                if ci["inbox_id"] == inbox_id and ci["source_id"] == source_id
            ),
            None,
        )

    def _add_ci(
        self, contact: dict[str, Any], inbox: dict[str, Any], source_id: Any
    ) -> dict[str, Any]:
        ci = {
            "id": self._next_id("contact_inbox"),
            "contact_id": contact["id"],
            "inbox_id": inbox["id"],
            "source_id": str(source_id or self._uuid()),
            "hmac_verified": False,
            "created_at": int(time.time()),
        }
        self.contact_inboxes.append(ci)
        return ci

    def show_contact(self, ctx: Ctx) -> Reply:
        return 200, {"payload": self._render_contact(self._contact(ctx, ctx.path["id"]))}

    def update_contact(self, ctx: Ctx) -> Reply:
        """ContactsController#update: the permitted fields assigned, ``additional_attributes``
        and ``custom_attributes`` merged into the stored ones, the model's validations."""
        contact = self._contact(ctx, ctx.path["id"])
        p = ctx.params
        others = {k: v for k, v in p.items() if k in ("phone_number", "identifier", "email")}
        errors = self._contact_errors(ctx.account_id, others, exclude=contact["id"])
        if errors:
            raise record_invalid(errors)
        for key in ("name", "email", "phone_number", "identifier"):
            if key in p:
                contact[key] = p[key] or None if key != "name" else p[key] or ""
        if "blocked" in p:
            contact["blocked"] = truthy(p["blocked"])
        for key in ("additional_attributes", "custom_attributes"):
            if isinstance(p.get(key), dict):
                contact[key] = {**contact[key], **p[key]}
        return 200, {"payload": self._render_contact(contact)}

    def search_contacts(self, ctx: Ctx) -> Reply:
        q = (ctx.query.get("q") or "").strip()
        if not q:
            raise could_not_create("Specify search string with parameter q")
        needle = q.lower()

        def hit(c: dict[str, Any]) -> bool:
            fields = ("name", "email", "phone_number")
            fuzzy = any(needle in str(c[k] or "").lower() for k in fields)
            return fuzzy or q in str(c["identifier"] or "") or (q.isdigit() and c["id"] == int(q))

        found = [c for c in self.contacts.values() if c["account_id"] == ctx.account_id and hit(c)]
        page = max(to_int(ctx.query.get("page")) or 1, 1)
        chunk = found[(page - 1) * SEARCH_PAGE_SIZE : page * SEARCH_PAGE_SIZE + 1]
        has_more = len(chunk) > SEARCH_PAGE_SIZE
        chunk = chunk[:SEARCH_PAGE_SIZE]
        return 200, {
            "meta": {"count": len(chunk), "current_page": page, "has_more": has_more},
            "payload": [self._render_contact(c) for c in chunk],
        }

    def contact_conversations(self, ctx: Ctx) -> Reply:
        contact = self._contact(ctx, ctx.path["id"])
        convs = [c for c in self.conversations.values() if c["contact_id"] == contact["id"]]
        return 200, {"payload": [self._render_conversation(c, ctx.base_url) for c in convs]}

    def create_contact_inbox(self, ctx: Ctx) -> Reply:
        contact = self._contact(ctx, ctx.path["id"])
        inbox = self._inbox(ctx, ctx.params.get("inbox_id"))
        source_id = ctx.params.get("source_id")
        if source_id and self._find_ci(inbox["id"], str(source_id)):
            raise record_invalid([("source_id", "Source has already been taken")])
        ci = self._add_ci(contact, inbox, source_id)
        return 200, views.contact_inbox_json(ci, inbox)

    def filter_contact_inboxes(self, ctx: Ctx) -> Reply:
        inbox = self._inbox(ctx, ctx.params.get("inbox_id"))
        ci = self._find_ci(inbox["id"], str(ctx.params.get("source_id")))
        if ci is None:
            return 404, None  # `head :not_found`: empty body
        return 200, self._render_contact(self.contacts[ci["contact_id"]])

    # ---- seeding helpers used by FakeChatwoot ----
    def _remove_inbox(self, account_id: int, inbox_id: int) -> None:
        """What an admin's delete leaves behind: inbox, contact inboxes, conversations gone."""
        inbox = self.inboxes.get(inbox_id)
        if inbox is None or inbox["account_id"] != account_id:
            raise KeyError(f"no inbox {inbox_id} in account {account_id}")
        del self.inboxes[inbox_id]
        self.contact_inboxes[:] = [ci for ci in self.contact_inboxes if ci["inbox_id"] != inbox_id]
        for conv_id in [c["id"] for c in self.conversations.values() if c["inbox_id"] == inbox_id]:
            del self.conversations[conv_id]
