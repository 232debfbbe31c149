"""Where the shared reference material (Chatwoot's and Meta's specs, webhook examples) lives.

CI runs in a fresh clone with ``shared/`` beside it; a developer's fresh clone made with
``git clone /work/main`` has it beside the clone's origin instead. ``WOOTBRIDGE_REFERENCE_DIR``
overrides both. The tests never skip for lack of it: they stop with this explanation.
"""

from __future__ import annotations

import os
import subprocess
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _origin_dir() -> Path | None:
    try:
        url = subprocess.run(
            ["git", "-C", str(REPO), "config", "--get", "remote.origin.url"],
            capture_output=True,
            text=True,
            check=False,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    path = Path(url.removeprefix("file://"))
    return path if url and path.is_dir() else None


@cache
def reference_dir() -> Path:
    candidates = []
    if os.environ.get("WOOTBRIDGE_REFERENCE_DIR"):
        candidates.append(Path(os.environ["WOOTBRIDGE_REFERENCE_DIR"]))
    candidates.append(REPO.parent / "shared" / "reference")
    origin = _origin_dir()
    if origin is not None:
        candidates.append(origin.resolve().parent / "shared" / "reference")
    for candidate in candidates:
        if (candidate / "chatwoot" / "swagger.json").is_file():
            return candidate
    searched = ", ".join(str(c) for c in candidates)
    raise RuntimeError(
        f"shared/reference not found (looked in {searched}); set WOOTBRIDGE_REFERENCE_DIR"
    )


def chatwoot_swagger() -> Path:
    return reference_dir() / "chatwoot" / "swagger.json"


def whatsapp_cloud_dir() -> Path:
    return reference_dir() / "whatsapp-cloud"
