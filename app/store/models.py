"""Peewee models: accounts, instances, Chatwoot integrations and relay events.

Primary keys are random strings generated before insert, so that encrypted fields can bind
their ciphertext to ``<table>/<id>/<field>`` as associated data. Fields listed in a model's
``SECRET_FIELDS`` hold ciphertext only; use :meth:`SecretFieldsMixin.get_secret` and
:meth:`SecretFieldsMixin.set_secret` to read and write them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

import peewee

from app.store.crypto import Cipher, associated_data
from app.store.db import database

_cipher: Cipher | None = None


class SecretsUnavailable(RuntimeError):
    """No ENCRYPTION_KEY is configured, so secrets can be neither stored nor read."""


def configure_cipher(cipher: Cipher | None) -> None:
    global _cipher
    _cipher = cipher


def get_cipher() -> Cipher:
    if _cipher is None:
        raise SecretsUnavailable("ENCRYPTION_KEY is not configured")
    return _cipher


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class BaseModel(peewee.Model):
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        database = database
        legacy_table_names = False

    def save(self, *args: Any, **kwargs: Any) -> int:
        self.updated_at = utcnow()
        return int(super().save(*args, **kwargs))


class SecretFieldsMixin:
    """Transparent AES-256-GCM for the columns named in ``SECRET_FIELDS``."""

    SECRET_FIELDS: ClassVar[frozenset[str]] = frozenset()
    id: Any
    _meta: Any

    def _aad(self, field: str) -> bytes:
        if field not in self.SECRET_FIELDS:
            raise KeyError(field)
        return associated_data(self._meta.table_name, str(self.id), field)

    def set_secret(self, field: str, value: str | None) -> None:
        stored = None if value is None else get_cipher().encrypt(value, self._aad(field))
        setattr(self, field, stored)

    def get_secret(self, field: str) -> str | None:
        stored = getattr(self, field)
        if stored is None:
            return None
        return get_cipher().decrypt(stored, self._aad(field))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id}>"


class Account(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=40)
    name = peewee.CharField(max_length=200)
    token_hash = peewee.CharField(max_length=64, unique=True)

    def __repr__(self) -> str:
        return f"<Account {self.id}>"


PROVIDER_CLOUD = "cloud"
PROVIDER_GATEWAY = "gateway"


class Instance(SecretFieldsMixin, BaseModel):
    """A WhatsApp number and how to reach it. Names are unique across the deployment
    because they appear in webhook URLs (``/webhooks/whatsapp/<provider>/<name>``)."""

    SECRET_FIELDS = frozenset(
        {"cloud_access_token", "cloud_app_secret", "cloud_verify_token", "gateway_token"}
    )

    id = peewee.CharField(primary_key=True, max_length=40)
    account = peewee.ForeignKeyField(Account, backref="instances", on_delete="CASCADE")
    name = peewee.CharField(max_length=64, unique=True)
    token_hash = peewee.CharField(max_length=64, unique=True)
    provider = peewee.CharField(max_length=16)
    cloud_phone_number_id = peewee.CharField(max_length=64, null=True)
    cloud_api_base_url = peewee.CharField(max_length=500, null=True)
    # the WhatsApp Business Account (WABA) id; enables the template sync (management/templates)
    cloud_business_account_id = peewee.CharField(max_length=64, null=True)
    cloud_access_token = peewee.TextField(null=True)
    cloud_app_secret = peewee.TextField(null=True)
    cloud_verify_token = peewee.TextField(null=True)
    # cloud: the number's send pace (messages per second, 1-1000); None: the default (80)
    cloud_messages_per_second = peewee.IntegerField(null=True)
    gateway_base_url = peewee.CharField(max_length=500, null=True)
    gateway_instance = peewee.CharField(max_length=200, null=True)
    gateway_token = peewee.TextField(null=True)


STATE_PROVISIONING = "provisioning"
STATE_ACTIVE = "active"
STATE_ERROR = "error"
STATUS_PAUSED = "paused"


class ChatwootIntegration(SecretFieldsMixin, BaseModel):
    """One instance's link to a Chatwoot inbox. ``id`` is the public ``bridge_integration_id``.

    ``state`` is what provisioning and relaying last found (provisioning/active/error);
    ``paused`` is the operator's switch. The status clients see is derived from both.
    ``provision_requested``/``provision_completed`` are generation counters that let a ``set``
    request wait for the job it enqueued, and let a stale job step aside for a newer one.
    """

    SECRET_FIELDS = frozenset({"chatwoot_api_token", "webhook_secret", "inbox_secret"})

    id = peewee.CharField(primary_key=True, max_length=40)
    instance = peewee.ForeignKeyField(
        Instance, backref="integrations", unique=True, on_delete="CASCADE"
    )
    chatwoot_base_url = peewee.CharField(max_length=500)
    chatwoot_account_id = peewee.IntegerField()
    chatwoot_api_token = peewee.TextField()
    chatwoot_inbox_id = peewee.IntegerField(null=True)
    chatwoot_inbox_name = peewee.CharField(max_length=255)
    webhook_secret = peewee.TextField()
    inbox_secret = peewee.TextField(null=True)
    state = peewee.CharField(max_length=16, default=STATE_PROVISIONING)
    paused = peewee.BooleanField(default=False)
    last_error = peewee.TextField(default="")
    last_error_http_status = peewee.IntegerField(null=True)
    sign_messages = peewee.BooleanField(default=False)
    ignore_groups = peewee.BooleanField(default=False)
    start_as_pending = peewee.BooleanField(default=False)
    reopen_resolved = peewee.BooleanField(default=False)
    # typing indicator and read receipts to WhatsApp (app/relay/read_receipts.py)
    mark_read = peewee.BooleanField(default=True)
    provision_requested = peewee.IntegerField(default=0)
    provision_completed = peewee.IntegerField(default=0)
    # the message templates last synced into the inbox (app/management/templates.py): when, the
    # usable ones as a JSON index (name, language, ...), and why the last sync failed ("" if not)
    templates_synced_at = peewee.DateTimeField(null=True)
    templates_index = peewee.TextField(null=True)
    templates_error = peewee.TextField(default="")

    @property
    def status(self) -> str:
        if self.state == STATE_PROVISIONING:
            return STATE_PROVISIONING
        return STATUS_PAUSED if self.paused else str(self.state)


EVENT_PENDING = "pending"
EVENT_DELIVERED = "delivered"
EVENT_FAILED = "failed"
EVENT_WAITING = "waiting"  # a status whose message is not known yet
RETRYING_PREFIX = "retrying: "  # last_error of a failed event sent back to pending by a retry

DIRECTION_INBOUND = "inbound"  # WhatsApp -> Chatwoot
DIRECTION_OUTBOUND = "outbound"  # Chatwoot -> WhatsApp


EVENT_NATURAL_KEY = ("integration", "direction", "natural_key")  # RelayEvent's unique index


class RelayEvent(BaseModel):
    """One event to relay, stored before its webhook is acknowledged.

    ``natural_key`` (e.g. WhatsApp message id + kind) is unique per integration and direction,
    which makes a redelivered webhook a no-op. ``chat_key`` groups the events whose order
    must be kept. Every write moves ``updated_at`` (update queries included, see
    :meth:`update`), so a failed event's ``updated_at`` is when its last attempt was recorded.
    """

    id = peewee.BigAutoField()
    integration = peewee.ForeignKeyField(
        ChatwootIntegration, backref="events", on_delete="CASCADE", index=False
    )  # no index of its own: the composite indexes below start with it
    direction = peewee.CharField(max_length=16)
    natural_key = peewee.CharField(max_length=255)
    chat_key = peewee.CharField(max_length=255)
    kind = peewee.CharField(max_length=32)
    payload = peewee.TextField()
    status = peewee.CharField(max_length=16, default=EVENT_PENDING, index=True)
    message_id = peewee.CharField(max_length=255, null=True)
    attempts = peewee.IntegerField(default=0)
    in_flight = peewee.BooleanField(default=False)
    progress = peewee.IntegerField(default=0)  # parts of a multi-part send already sent
    sending = peewee.BooleanField(default=False)  # a send call is (or was, if cut off) under way
    unconfirmed = peewee.BooleanField(default=False)  # a send whose outcome is unknown
    # the drain that owns the event (its lane lock token, naming the worker process) and
    # until when, unless it re-asserts the claim (app/relay/claims.py)
    claim_token = peewee.CharField(max_length=80, null=True)
    claimed_until = peewee.DateTimeField(null=True)
    last_error = peewee.TextField(default="")
    next_attempt_at = peewee.DateTimeField(null=True)
    delivered_at = peewee.DateTimeField(null=True)
    # when the retention purge replaced the payload by a stub (app/management/retention.py)
    content_erased_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = (
            (EVENT_NATURAL_KEY, True),
            (("integration", "status", "chat_key", "id"), False),
            (("integration", "status", "id"), False),  # failed events by page, oldest pending
        )

    @classmethod
    def update(cls, __data: Any = None, **update: Any) -> Any:
        """An update query that also sets ``updated_at`` (unless it sets it itself)."""
        given = {getattr(key, "name", key) for key in __data or {}} | set(update)
        if "updated_at" not in given:
            update["updated_at"] = utcnow()
        return super().update(__data, **update)


# The retention purge's index: only events whose content is still there, so an hourly purge
# reads the rows it erases, not the millions it erased before.
RelayEvent.add_index(
    RelayEvent.index(
        RelayEvent.status,
        RelayEvent.delivered_at,
        where=RelayEvent.content_erased_at.is_null(),
        name="relayevent_retention",
    )
)


# Statuses waiting for the message they tick, by that message's WhatsApp id
# (app/relay/message_map.py wakes them): partial, so the events stored every second, never
# waiting when stored, add no entry to it — a B-tree keyed by a random id written per insert.
RelayEvent.add_index(
    RelayEvent.index(
        RelayEvent.integration,
        RelayEvent.message_id,
        where=RelayEvent.status == EVENT_WAITING,
        name="relayevent_waiting_message",
    )
)


class ChatLink(BaseModel):
    """What Chatwoot calls a chat: contact, contact-inbox source id and conversation, kept
    locally so that a message in an ongoing chat costs one Chatwoot call.

    ``reply_address``: where agent replies go, the identifier (phone or BSUID) the customer
    last wrote from; ``None`` until an incoming message was delivered (replies then go to the
    contact inbox's source id). ``contact_phone``: the phone number the Chatwoot contact has,
    or was once given by us (a contact first known by its BSUID gets its number once).
    """

    integration = peewee.ForeignKeyField(
        ChatwootIntegration, backref="chat_links", on_delete="CASCADE", index=False
    )  # no index of its own: the unique index below starts with it
    chat_key = peewee.CharField(max_length=255)
    contact_id = peewee.IntegerField(null=True)
    source_id = peewee.CharField(max_length=255, null=True)
    conversation_id = peewee.IntegerField(null=True)
    conversation_status = peewee.CharField(max_length=16, null=True)
    reply_address = peewee.CharField(max_length=255, null=True)
    contact_phone = peewee.CharField(max_length=32, null=True)
    # profiles follow the customer (app/relay/inbound/profiles.py): the contact name we gave the
    # Chatwoot contact (None: not ours, or not known), and the WhatsApp profile name and
    # username the customer's messages last carried
    contact_name_set = peewee.CharField(max_length=255, null=True)
    profile_name = peewee.CharField(max_length=255, null=True)
    profile_username = peewee.CharField(max_length=255, null=True)

    class Meta:
        indexes = ((("integration", "chat_key"), True),)


class ChatReadState(BaseModel):
    """What WhatsApp knows the business has read in one chat (app/relay/read_receipts.py).

    ``last_inbound_id``: the newest customer message delivered into Chatwoot (its WhatsApp id),
    with its WhatsApp timestamp and, in a group, its author (``last_inbound_sender``).
    ``read_id``: the message last marked read on WhatsApp (or being marked right now). A table
    of its own, not :class:`ChatLink` columns: the inbound lane saves whole ``ChatLink`` rows,
    which would write back a stale ``read_id`` set meanwhile by a reply or a typing job.
    """

    integration = peewee.ForeignKeyField(
        ChatwootIntegration, backref="read_states", on_delete="CASCADE", index=False
    )  # no index of its own: the unique index below starts with it
    chat_key = peewee.CharField(max_length=255)
    last_inbound_id = peewee.CharField(max_length=255, null=True)
    last_inbound_at = peewee.BigIntegerField(null=True)
    last_inbound_sender = peewee.CharField(max_length=255, null=True)
    read_id = peewee.CharField(max_length=255, null=True)

    class Meta:
        indexes = ((("integration", "chat_key"), True),)


class ChatAlias(BaseModel):
    """Another identifier of a chat (a LID, a number without the Brazilian 9th digit)."""

    integration = peewee.ForeignKeyField(
        ChatwootIntegration, backref="chat_aliases", on_delete="CASCADE", index=False
    )  # no index of its own: the unique index below starts with it
    identifier = peewee.CharField(max_length=255)
    chat_key = peewee.CharField(max_length=255)

    class Meta:
        indexes = ((("integration", "identifier"), True),)


class MessageMap(BaseModel):
    """A WhatsApp message id and the Chatwoot message it became (or came from)."""

    integration = peewee.ForeignKeyField(
        ChatwootIntegration, backref="message_maps", on_delete="CASCADE", index=False
    )  # no index of its own: the unique index below starts with it
    whatsapp_message_id = peewee.CharField(max_length=255)
    chatwoot_message_id = peewee.IntegerField()
    chatwoot_conversation_id = peewee.IntegerField()
    direction = peewee.CharField(max_length=16)
    # the furthest tick claimed for Chatwoot (app.relay.message_map.apply_tick), and the
    # reason shown with a ``failed`` one
    status = peewee.CharField(max_length=16, null=True)
    status_error = peewee.TextField(null=True)

    class Meta:
        indexes = (
            (("integration", "whatsapp_message_id"), True),
            (("integration", "chatwoot_message_id"), False),
        )


class RelayCounter(peewee.Model):
    """How many events of an integration were received/relayed/failed/retried, per direction.

    Bumped by :func:`app.store.counters.bump_counters` inside the transaction that makes the
    change it counts, so ``/metrics`` and ``list`` never count over ``relay_event``.
    """

    # no index of its own: the unique index below starts with it
    integration = peewee.ForeignKeyField(
        ChatwootIntegration, backref="counters", on_delete="CASCADE", index=False
    )
    direction = peewee.CharField(max_length=16)
    outcome = peewee.CharField(max_length=16)
    value = peewee.BigIntegerField(default=0)
    updated_at = peewee.DateTimeField(default=utcnow)  # last bump: last delivery for "relayed"

    class Meta:
        database = database
        legacy_table_names = False
        indexes = ((("integration", "direction", "outcome"), True),)


ALL_MODELS: list[type[peewee.Model]] = [
    Account,
    Instance,
    ChatwootIntegration,
    RelayEvent,
    ChatLink,
    ChatAlias,
    MessageMap,
    RelayCounter,
    ChatReadState,
]
