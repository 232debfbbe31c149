"""Where the project's own test data lives, and where the optional upstream specs are.

``tests/data`` holds the webhook and request bodies the tests feed (see its README). The
upstream specs (Chatwoot's swagger, Meta's OpenAPI file) are not part of the repository: only the
conformance suite (``tests/conformance``) reads them, from ``WOOTBRIDGE_REFERENCE_DIR`` when set.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"


def reference_dir() -> Path:
    """The test data root: ``chatwoot/`` and ``whatsapp_cloud/`` live here."""
    return DATA


def whatsapp_cloud_dir() -> Path:
    """WhatsApp Cloud API webhook bodies (with ``2026/`` and ``2026/requests/``)."""
    return DATA / "whatsapp_cloud"


def chatwoot_dir() -> Path:
    """Chatwoot webhook bodies."""
    return DATA / "chatwoot"


def upstream_reference_dir() -> Path | None:
    """The upstream specs (``chatwoot/swagger.json``, ``whatsapp-cloud/*.yaml``), or None.

    Set only where they are available (CI points it at them); nothing but the conformance suite
    may depend on it.
    """
    value = os.environ.get("WOOTBRIDGE_REFERENCE_DIR")
    return Path(value) if value else None
