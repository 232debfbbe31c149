"""What kind of identifier WhatsApp gave for a customer, needed by the senders as much as by
the relay (a reply to a BSUID goes in ``recipient``, not ``to``)."""

from __future__ import annotations

import re

_BSUID = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")


def is_bsuid(identifier: str) -> bool:
    """A WhatsApp business-scoped user id (``US.13491208655302741918``) or a parent one
    (``US.ENT.11815799212886844830``): a customer known without a phone number."""
    return _BSUID.fullmatch(identifier.strip()) is not None
