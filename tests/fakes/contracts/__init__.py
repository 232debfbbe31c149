"""The fakes' own description of the remote APIs they imitate (``chatwoot.json``, ``graph.json``).

Each file lists the endpoints Wootbridge calls and, per endpoint, a JSON Schema of the request
body: the fields, types and required keys Wootbridge sends, taken from the upstream specs
(Chatwoot's swagger, Meta's OpenAPI description) and from what the services accept. The fakes
validate every request against them; ``tests/conformance`` compares them with the upstream specs
when those are available.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

CONTRACTS = Path(__file__).resolve().parent


def contract_path(name: str) -> Path:
    """``chatwoot`` or ``graph`` -> the path of its description."""
    return CONTRACTS / f"{name}.json"


@cache
def _load(path: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return loaded


def load_contract(path: str | Path) -> dict[str, Any]:
    """The parsed description at ``path`` (parsed once per process; do not mutate it)."""
    return _load(str(Path(path).resolve()))


def split_endpoint(key: str) -> tuple[str, str]:
    """``"POST /a/{id}"`` -> ``("POST", "/a/{id}")``."""
    method, _, template = key.partition(" ")
    return method.upper(), template
