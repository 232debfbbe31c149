"""The upstream specs the fakes' descriptions were derived from, when they are available.

``WOOTBRIDGE_REFERENCE_DIR`` names a folder with ``chatwoot/swagger.json`` (Chatwoot v4.15.1)
and ``whatsapp-cloud/meta-business-messaging-api-v23.0.yaml`` (Meta's v23.0 OpenAPI file), plus
the webhook bodies our test data started from. Only ``tests/conformance`` reads it.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.reference import upstream_reference_dir

SKIP_REASON = "WOOTBRIDGE_REFERENCE_DIR not set: conformance with upstream specs not checked"
SWAGGER = Path("chatwoot") / "swagger.json"
META_SPEC = Path("whatsapp-cloud") / "meta-business-messaging-api-v23.0.yaml"
GRAPH_PREFIX = "/{Version}"


def reference_root() -> Path:
    """The upstream folder; skips the calling test when it is not configured."""
    root = upstream_reference_dir()
    if root is None:
        pytest.skip(SKIP_REASON)
    missing = [str(root / p) for p in (SWAGGER, META_SPEC) if not (root / p).is_file()]
    assert not missing, f"WOOTBRIDGE_REFERENCE_DIR lacks {missing}"
    return root


@cache
def _read(path: Path) -> dict[str, Any]:
    if path.suffix == ".json":
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return loaded
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open(encoding="utf-8") as handle:
        parsed: dict[str, Any] = yaml.load(handle, Loader=loader)  # noqa: S506 - a safe loader
    return parsed


def swagger() -> dict[str, Any]:
    return _read(reference_root() / SWAGGER)


def meta_spec() -> dict[str, Any]:
    return _read(reference_root() / META_SPEC)


def shape(template: str) -> str:
    """A path template with its placeholders blanked: ``/a/{id}`` -> ``/a/{}``."""
    return re.sub(r"\{[^}]+\}", "{}", template)


def operations(spec: dict[str, Any], prefix: str = "") -> dict[tuple[str, str], dict[str, Any]]:
    """``(METHOD, shape)`` -> operation, for every operation of an OpenAPI document.

    ``prefix`` is what upstream paths carry before ours (Graph's ``/{Version}``).
    """
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for template, item in spec["paths"].items():
        if not template.startswith(prefix):
            continue
        for method, operation in item.items():
            if isinstance(operation, dict) and method != "parameters":
                found[(method.upper(), shape(template[len(prefix) :]))] = operation
    return found
