"""Logging setup: one line per record, and a filter that masks anything looking like a secret.

The code never logs secrets on purpose; the filter is a second line of defence for text that
comes from elsewhere (exception messages of libraries, remote error bodies).
"""

from __future__ import annotations

import logging
import os
import re

_SECRET_PATTERNS = [
    re.compile(
        r"(?i)(api_access_token|authorization|token|secret|password)([\"']?\s*[:=]\s*[\"']?)([^\s\"',&]+)"
    ),
    re.compile(r"(?i)(bearer\s+)([A-Za-z0-9._~+/=-]{8,})"),
    # the Chatwoot webhook path ends with its secret: /webhooks/chatwoot/<integration>/<secret>
    re.compile(r"(/webhooks/chatwoot/[^/\s\"']+/)([^\s\"'?#{]+)"),
]


def mask_secrets(text: str) -> str:
    masked = _SECRET_PATTERNS[0].sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)
    masked = _SECRET_PATTERNS[1].sub(lambda m: f"{m.group(1)}***", masked)
    return _SECRET_PATTERNS[2].sub(lambda m: f"{m.group(1)}***", masked)


class SecretMaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure_logging(level: str | None = None) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s")
    )
    handler.addFilter(SecretMaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("LOG_LEVEL", "INFO"))
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
