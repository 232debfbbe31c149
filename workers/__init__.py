"""Dramatiq workers: ``dramatiq workers`` imports this package, which sets up the broker
and declares every actor. Actors are thin: they load ids and call into ``app.relay``."""

from __future__ import annotations

from workers.broker import setup_broker

broker = setup_broker()

from workers import provisioning, relay  # noqa: E402  (actors need the broker first)

broker.add_middleware(relay.RecoverySweeper())

__all__ = ["broker", "provisioning", "relay"]
