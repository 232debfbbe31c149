"""The job queue both processes share: Dramatiq on Redis (``REDIS_URL``), namespaced by
``QUEUE_NAMESPACE``, and the names of the actors the web process enqueues.

The web process enqueues a job by its actor's name (:func:`enqueue`) and never imports
``workers``; ``workers`` declares its actors under the same names and queues.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any
from uuid import uuid4

from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis

from app.config import Settings, get_settings

RELAY_QUEUE = "relay"
PROVISIONING_QUEUE = "provisioning"

DELIVER_INBOUND = "deliver_inbound"
DELIVER_OUTBOUND = "deliver_outbound"
REPLAY_INTEGRATION = "replay_integration"
PROVISION = "provision"
PROVISION_GAVE_UP = "provision_gave_up"  # Dramatiq's on_retry_exhausted target of PROVISION
TYPING_QUEUE = "typing"  # ephemeral and short: never behind a backlog of relay work
AGENT_TYPING = "agent_typing"  # an agent typing in Chatwoot ▸ the customer sees it
CUSTOMER_TYPING = "customer_typing"  # a customer typing on a gateway ▸ the agents see it
TEMPLATES_QUEUE = "templates"
SYNC_TEMPLATES = "sync_templates"  # one integration's message templates into its inbox
TEMPLATES_CHANGED = "templates_changed"  # a business account's templates changed (webhook)

# actor name -> the queue it consumes
QUEUES = {
    DELIVER_INBOUND: RELAY_QUEUE,
    DELIVER_OUTBOUND: RELAY_QUEUE,
    REPLAY_INTEGRATION: RELAY_QUEUE,
    PROVISION: PROVISIONING_QUEUE,
    PROVISION_GAVE_UP: PROVISIONING_QUEUE,
    AGENT_TYPING: TYPING_QUEUE,
    CUSTOMER_TYPING: TYPING_QUEUE,
    SYNC_TEMPLATES: TEMPLATES_QUEUE,
    TEMPLATES_CHANGED: TEMPLATES_QUEUE,
}

_brokers: dict[tuple[str, str], RedisBroker] = {}
_lock = threading.Lock()


def build_broker(settings: Settings) -> RedisBroker:
    """A broker on the configured Redis and namespace (Dramatiq's default middleware)."""
    return RedisBroker(  # type: ignore[no-untyped-call]
        url=settings.effective_redis_url(), namespace=settings.queue_namespace
    )


def _sending_broker() -> RedisBroker:
    settings = get_settings()
    key = (settings.effective_redis_url(), settings.queue_namespace)
    with _lock:
        broker = _brokers.get(key)
        if broker is None:
            broker = _brokers[key] = build_broker(settings)
    return broker


def enqueue(actor_name: str, *args: Any) -> None:
    """Send a job to ``actor_name`` (one of the names above). Raises ``RedisError``/``OSError``
    when Redis is unreachable."""
    message: Message[Any] = Message(
        queue_name=QUEUES[actor_name], actor_name=actor_name, args=args, kwargs={}, options={}
    )
    _sending_broker().enqueue(message)


def enqueue_many(jobs: Iterable[tuple[str, tuple[Any, ...]]]) -> None:
    """Send several ``(actor name, args)`` jobs in one Redis round trip: Dramatiq's own enqueue
    script (what ``RedisBroker.enqueue`` runs per message), pipelined. Raises like
    :func:`enqueue`."""
    broker = _sending_broker()
    dispatch = broker.scripts["dispatch"]
    pipe = broker.client.pipeline(transaction=False)
    sent: list[Message[Any]] = []
    for actor_name, args in jobs:
        message: Message[Any] = Message(
            queue_name=QUEUES[actor_name],
            actor_name=actor_name,
            args=args,
            kwargs={},
            options={"redis_message_id": str(uuid4())},
        )
        broker.emit_before("enqueue", message, None)
        dispatch_args = [
            "enqueue", current_millis(), message.queue_name, broker.broker_id,
            broker.heartbeat_timeout, broker.dead_message_ttl, 0, broker._max_unpack_size(),  # type: ignore[no-untyped-call]
            message.options["redis_message_id"], message.encode(),
        ]  # fmt: skip
        dispatch(keys=[broker.namespace], args=dispatch_args, client=pipe)
        sent.append(message)
    if not sent:
        return
    pipe.execute()
    for message in sent:
        broker.emit_after("enqueue", message, None)


def enqueue_later(actor_name: str, delay_seconds: float, *args: Any) -> None:
    """Like :func:`enqueue`, run no sooner than ``delay_seconds`` from now (Dramatiq's delay:
    the message waits in the queue's delay set)."""
    message: Message[Any] = Message(
        queue_name=QUEUES[actor_name], actor_name=actor_name, args=args, kwargs={}, options={}
    )
    _sending_broker().enqueue(message, delay=max(0, int(delay_seconds * 1000)))
