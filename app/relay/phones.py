"""Phone numbers and WhatsApp identifiers in the one form the relay keys chats by.

A customer's number arrives in many spellings: ``+55 11 99999-8888``, ``5511999998888``,
``551199998888`` (a Brazilian mobile without its 9th digit, as WhatsApp often reports it),
``5511999998888@s.whatsapp.net``, ``5511999998888:12@s.whatsapp.net`` (a linked device).
:func:`canonical_phone` turns all of them into digits only, E.164 without ``+``, so the same
person always lands in the same Chatwoot contact and conversation.
"""

from __future__ import annotations

import re
from functools import lru_cache

from app.integrations.whatsapp.identifiers import is_bsuid as is_bsuid

_USER_SUFFIXES = ("@s.whatsapp.net", "@c.us")
_GROUP_SUFFIX = "@g.us"
_LID_SUFFIX = "@lid"
_SEPARATORS = re.compile(r"[\s\-().+]")
_DEVICE = re.compile(r":\d+$")
_DIGITS = re.compile(r"[0-9]+")
_MAX_E164_DIGITS = 15
_CACHED_SPELLINGS = 16_384
"""Spellings remembered by the pure functions below: a webhook asks about the same number
several times (sender, contact, aliases), and a busy chat sends many webhooks."""

BRAZIL = "55"
_BR_WITHOUT_NINE = 12  # 55 + DD + 8 local digits
_BR_WITH_NINE = 13  # 55 + DD + 9 + 8 local digits


@lru_cache(maxsize=_CACHED_SPELLINGS)
def _strip(raw: str) -> str:
    """Drop the JID domain, the device suffix and the separators people type."""
    text = raw.strip()
    lowered = text.lower()
    for suffix in _USER_SUFFIXES:
        if lowered.endswith(suffix):
            text = text[: -len(suffix)]
            break
    text = _DEVICE.sub("", text)
    return _SEPARATORS.sub("", text)


def _is_brazilian_area(digits: str) -> bool:
    """Brazilian area codes (DDD) are two digits, neither of them 0."""
    return digits.startswith(BRAZIL) and "0" not in digits[2:4]


def _brazil_add_nine(digits: str) -> str:
    """``55DD`` + 8 digits of a mobile (first local digit 6-9) gains its 9th digit."""
    if len(digits) == _BR_WITHOUT_NINE and _is_brazilian_area(digits) and digits[4] in "6789":
        return digits[:4] + "9" + digits[4:]
    return digits


def _brazil_drop_nine(digits: str) -> str | None:
    """The 12-digit spelling of a 13-digit Brazilian mobile, if ``digits`` is one."""
    if (
        len(digits) == _BR_WITH_NINE
        and _is_brazilian_area(digits)
        and digits[4] == "9"
        and digits[5] in "6789"
    ):
        return digits[:4] + digits[5:]
    return None


@lru_cache(maxsize=_CACHED_SPELLINGS)
def canonical_phone(raw: str) -> str:
    """Digits only, E.164 without ``+``; Brazilian mobiles in their 13-digit form.

    Raises :class:`ValueError` when ``raw`` is not a phone number (letters, a group or LID JID,
    nothing at all, more than 15 digits).
    """
    digits = _strip(raw)
    if not _DIGITS.fullmatch(digits) or len(digits) > _MAX_E164_DIGITS:
        raise ValueError("not a phone number")
    return _brazil_add_nine(digits)


def e164(digits: str) -> str:
    """``"+" + digits``, for Chatwoot's ``phone_number``."""
    bare = digits.removeprefix("+")
    if not _DIGITS.fullmatch(bare):
        raise ValueError("not a phone number")
    return "+" + bare


@lru_cache(maxsize=_CACHED_SPELLINGS)
def phone_aliases(raw: str) -> tuple[str, ...]:
    """Other spellings of the same number that may identify the chat, canonical form excluded.

    The raw text as received (when it differs) and, for a Brazilian mobile, the form without
    the 9th digit.
    """
    canonical = canonical_phone(raw)
    candidates = [raw.strip(), _strip(raw), _brazil_drop_nine(canonical)]
    aliases: list[str] = []
    for alias in candidates:
        if alias and alias != canonical and alias not in aliases:
            aliases.append(alias)
    return tuple(aliases)


def is_group_jid(jid: str) -> bool:
    """A WhatsApp group, e.g. ``120363041234567890@g.us``."""
    return jid.strip().lower().endswith(_GROUP_SUFFIX)


def is_lid(jid: str) -> bool:
    """A WhatsApp LID (privacy-preserving linked id, e.g. ``123456789@lid``), not a phone."""
    return jid.strip().lower().endswith(_LID_SUFFIX)
