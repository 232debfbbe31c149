"""Dramatiq workers: ``dramatiq workers`` imports this package, which sets up the broker
and declares every actor. Actors are thin: they load ids and call into ``app.relay``."""

from __future__ import annotations

from app.logs import adopt_handlers
from workers.broker import setup_broker

adopt_handlers()  # LOG_FORMAT and the secret masking apply to worker output too
broker = setup_broker()

from workers import presence, provisioning, relay, templates  # noqa: E402  (the broker first)

broker.add_middleware(relay.RecoverySweeper())
broker.add_middleware(templates.TemplateScheduler())

__all__ = ["broker", "presence", "provisioning", "relay", "templates"]
