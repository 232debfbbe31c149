"""The benchmarks' delivery check (bench/order.py) finds each kind of fault it reports."""

from __future__ import annotations

from bench.order import order_faults

STORED = {"a1": (1, "chat-a"), "a2": (3, "chat-a"), "b1": (2, "chat-b")}


def test_everything_once_in_order_is_ok() -> None:
    faults = order_faults([("A", "a1"), ("B", "b1"), ("A", "a2"), ("A", "other")], STORED)
    assert faults.ok and (faults.arrived, faults.expected) == (3, 3)


def test_each_fault_is_counted() -> None:
    assert order_faults([("A", "a1"), ("B", "b1")], STORED).lost == 1
    assert order_faults([("A", "a1"), ("A", "a1"), ("A", "a2"), ("B", "b1")], STORED).twice == 1
    assert order_faults([("A", "a2"), ("A", "a1"), ("B", "b1")], STORED).disorder == 1
    mixed = order_faults([("A", "a1"), ("A", "b1"), ("A", "a2")], STORED)
    assert mixed.mixed == 1 and not mixed.ok
