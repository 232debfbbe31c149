"""Printing benchmark tables: each figure beside its same-run baseline and the ratio."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def header(title: str) -> None:
    print(f"\n{title} ({os.cpu_count()} CPUs)", flush=True)


def row(name: str, ours: str, baseline: str = "", ratio: float | None = None) -> None:
    shown = f"{ratio:6.2f}x" if ratio is not None else ""
    print(f"  {name:<34}{ours:<26}{baseline:<34}{shown}", flush=True)


FAILED_CHECKS: list[str] = []


def check(name: str, detail: str, ok: bool) -> bool:
    """Print a check's outcome; a failed one also makes the benchmark exit non-zero."""
    if not ok:
        FAILED_CHECKS.append(name)
    print(f"  {name:<34}{detail:<84}{'OK' if ok else 'FAILED'}", flush=True)
    return ok
