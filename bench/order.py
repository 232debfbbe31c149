"""The delivery check every benchmark prints: each stored message arrived once, and each place
it landed (a Chatwoot conversation, a WhatsApp recipient) got one chat's messages in the order
they were stored."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class OrderFaults:
    arrived: int  # distinct expected messages that arrived
    expected: int
    lost: int
    twice: int  # messages that arrived more than once
    disorder: int  # consecutive arrivals at one place against the stored order
    mixed: int  # places that got the messages of more than one chat

    @property
    def ok(self) -> bool:
        return not (self.lost or self.twice or self.disorder or self.mixed)


def order_faults(
    record: Iterable[tuple[Hashable, str]], expected: Mapping[str, tuple[int, str]]
) -> OrderFaults:
    """``record``: (place, text) of what arrived, in the order it arrived (other texts are
    ignored); ``expected``: text → (event id, chat key) of each stored message."""
    arrivals = [(place, text) for place, text in record if text in expected]
    seen = Counter(text for _, text in arrivals)
    by_place: dict[Hashable, list[tuple[int, str]]] = defaultdict(list)
    for place, text in arrivals:
        by_place[place].append(expected[text])
    disorder = mixed = 0
    for landed in by_place.values():
        ids = [event_id for event_id, _ in landed]
        disorder += sum(1 for a, b in itertools.pairwise(ids) if b <= a)
        mixed += len({chat for _, chat in landed}) > 1
    return OrderFaults(
        arrived=len(seen),
        expected=len(expected),
        lost=len(set(expected) - set(seen)),
        twice=sum(1 for n in seen.values() if n > 1),
        disorder=disorder,
        mixed=mixed,
    )
