"""The lane actors' ``retry_when``: a lane's own Retry is always honoured (the lane bounds
attempts per event); an unexpected failure is retried a bounded number of times."""

from __future__ import annotations

import dramatiq

from workers.relay import UNEXPECTED_FAILURE_RETRIES, _lane_retry_when, deliver_inbound


def test_a_lanes_own_retry_is_always_honoured() -> None:
    assert _lane_retry_when(50_000, dramatiq.Retry(delay=1000))


def test_unexpected_failures_are_retried_a_bounded_number_of_times() -> None:
    assert _lane_retry_when(UNEXPECTED_FAILURE_RETRIES - 1, RuntimeError("bug"))
    assert not _lane_retry_when(UNEXPECTED_FAILURE_RETRIES, RuntimeError("bug"))


def test_the_lane_actors_use_it() -> None:
    assert deliver_inbound.options["retry_when"] is _lane_retry_when
    assert "max_retries" not in deliver_inbound.options
