"""A Chatwoot message ends at the furthest tick claimed for it, whichever call lands last.

Two lanes tick one Chatwoot message: the outbound lane its own ``sent``, the inbound lane
WhatsApp's ``delivered``/``read``/``failed``. ``send`` stands for the PATCH to Chatwoot (a real
one in tests/relay/outbound/test_tick_race.py); here it records what Chatwoot would show, the
last tick to land, and can let the other lane act while a call is under way.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from app.config import Settings
from app.relay.message_map import Tick, apply_tick, claim_tick, furthest_tick, remember_message
from app.store.models import ChatwootIntegration
from tests.store.rows import integration_named

CHATWOOT_ID = 5
PARTS = ("wamid.TEXT", "wamid.IMAGE")  # one Chatwoot reply sent as two WhatsApp messages
SENT, DELIVERED, READ = Tick("sent"), Tick("delivered"), Tick("read")


@pytest.fixture
def integration(store_settings: Settings) -> ChatwootIntegration:
    found = integration_named("ticks")
    for part in PARTS:
        remember_message(found, part, CHATWOOT_ID, 2, "outgoing")
    return found


class Chatwoot:
    """What the Chatwoot message shows: the last tick whose call landed."""

    def __init__(self) -> None:
        self.landed: list[Tick] = []
        self.during_next_call: Callable[[], object] | None = None

    def send(self, tick: Tick) -> None:
        meanwhile, self.during_next_call = self.during_next_call, None
        if meanwhile is not None:
            meanwhile()  # the other lane's call lands while ours is on its way
        self.landed.append(tick)

    @property
    def shown(self) -> Tick | None:
        return self.landed[-1] if self.landed else None


def inbound_status(
    integration: ChatwootIntegration, chatwoot: Chatwoot, part: str, tick: Tick, *, retry: bool
) -> Tick | None:
    """What the inbound lane does with a status of WhatsApp's: claim, then apply."""
    claim_tick(integration, part, tick)
    return apply_tick(integration, CHATWOOT_ID, tick, chatwoot.send, claimed=True, retrying=retry)


def our_sent(integration: ChatwootIntegration, chatwoot: Chatwoot, *, retry: bool) -> Tick | None:
    """What the outbound lane does after the send: its own ``sent``, never claimed."""
    return apply_tick(integration, CHATWOOT_ID, SENT, chatwoot.send, claimed=False, retrying=retry)


def test_our_sent_landing_after_a_delivered_sends_delivered_again(
    integration: ChatwootIntegration,
) -> None:
    chatwoot = Chatwoot()
    other_lane = Chatwoot()
    chatwoot.during_next_call = lambda: inbound_status(
        integration, other_lane, PARTS[0], DELIVERED, retry=False
    )

    last = our_sent(integration, chatwoot, retry=False)

    assert other_lane.landed == [DELIVERED]
    assert chatwoot.landed == [SENT, DELIVERED]  # ours landed last, so it is sent again
    assert last == DELIVERED


def test_a_status_claimed_before_our_sent_is_left_to_its_lane(
    integration: ChatwootIntegration,
) -> None:
    inbound_status(integration, Chatwoot(), PARTS[1], READ, retry=False)
    chatwoot = Chatwoot()

    assert our_sent(integration, chatwoot, retry=False) is None
    assert chatwoot.landed == []


def test_a_status_behind_a_claimed_one_is_not_sent_and_does_not_lower_it(
    integration: ChatwootIntegration,
) -> None:
    inbound_status(integration, Chatwoot(), PARTS[0], READ, retry=False)
    chatwoot = Chatwoot()

    assert inbound_status(integration, chatwoot, PARTS[0], DELIVERED, retry=False) is None
    assert inbound_status(integration, chatwoot, PARTS[1], DELIVERED, retry=False) is None

    assert chatwoot.landed == []
    assert furthest_tick(integration, CHATWOOT_ID) == READ


def test_a_retry_sends_the_furthest_tick_even_behind_a_claim(
    integration: ChatwootIntegration,
) -> None:
    """The earlier attempt's call may have timed out and still landed after the claimant's."""
    inbound_status(integration, Chatwoot(), PARTS[0], READ, retry=False)
    chatwoot = Chatwoot()

    assert our_sent(integration, chatwoot, retry=True) == READ
    assert inbound_status(integration, chatwoot, PARTS[1], DELIVERED, retry=True) == READ
    assert chatwoot.landed == [READ, READ]


def test_a_repeated_status_is_sent_again(integration: ChatwootIntegration) -> None:
    """The same status twice (WhatsApp retries its webhooks): the claim is already there and
    the tick is sent again, as the lane cannot know whether the first call took effect."""
    chatwoot = Chatwoot()
    inbound_status(integration, chatwoot, PARTS[0], DELIVERED, retry=False)
    inbound_status(integration, chatwoot, PARTS[0], DELIVERED, retry=False)
    assert chatwoot.landed == [DELIVERED, DELIVERED]


def test_a_failed_tick_is_sent_again_with_its_reason(integration: ChatwootIntegration) -> None:
    failed = Tick("failed", "131026: Message undeliverable")
    chatwoot = Chatwoot()
    chatwoot.during_next_call = lambda: inbound_status(
        integration, Chatwoot(), PARTS[1], failed, retry=False
    )

    inbound_status(integration, chatwoot, PARTS[0], DELIVERED, retry=False)

    assert chatwoot.landed == [DELIVERED, failed]
    assert furthest_tick(integration, CHATWOOT_ID) == failed


def test_claims_on_several_parts_converge_on_the_furthest(
    integration: ChatwootIntegration,
) -> None:
    """A claim made during each re-send: the loop follows until nothing moved during a call."""
    chatwoot = Chatwoot()

    def read_on_the_second_part() -> None:
        inbound_status(integration, Chatwoot(), PARTS[1], READ, retry=False)

    def delivered_then_read() -> None:
        inbound_status(integration, Chatwoot(), PARTS[0], DELIVERED, retry=False)
        chatwoot.during_next_call = read_on_the_second_part

    chatwoot.during_next_call = delivered_then_read

    assert our_sent(integration, chatwoot, retry=False) == READ
    assert chatwoot.landed == [SENT, DELIVERED, READ]
