"""Shapes of the identifiers that appear in paths.

Path segments are checked against these before any query, so client text (NUL, odd unicode,
4 KB of anything) never reaches the database: it simply names nothing (404).
"""

from __future__ import annotations

import re

INSTANCE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""What ``POST /api/instance/new`` accepts as a name."""
ROW_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")
"""The shape of our generated ids (``int_...``)."""


def is_instance_name(text: str) -> bool:
    return INSTANCE_NAME.fullmatch(text) is not None
