"""Small, total readers for RyzeAPI gateway payloads (see ``tests/fakes/RYZEAPI_NOTES.md``).

Every function here accepts any JSON value and never raises: a field of the wrong type reads
as absent. The identity helpers turn the gateway's JIDs into the relay's identifiers: a
canonical phone (digits only), ``<user>@lid`` for a LID, or the group JID.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import datetime
from typing import Any

from app.relay.phones import canonical_phone, is_lid

_MAX_ID_CHARS = 200  # ids end up in 255-character key columns
_LID_USER = re.compile(r"[0-9]{1,32}")
_GROUP_USER = re.compile(r"[0-9]{1,40}(?:-[0-9]{1,20})?")  # old groups: <creator>-<epoch>
MAX_ALIAS_CHARS = 100
_MAX_INT = 2**53  # larger numbers are not ids, codes or timestamps anyone sends


def text(value: Any) -> str:
    """``value`` stripped when it is a string, else ``""``."""
    return value.strip() if isinstance(value, str) else ""


def obj(parent: Any, key: str) -> dict[str, Any]:
    """``parent[key]`` when both are objects, else ``{}``."""
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else {}


def first(parent: Any, *keys: str) -> str:
    """The first non-empty string among ``parent``'s ``keys``."""
    if not isinstance(parent, dict):
        return ""
    return next((s for s in (text(parent.get(k)) for k in keys) if s), "")


def as_id(value: Any) -> str:
    """An id: a non-empty string (bounded), or an integer written out; else ``""``."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < _MAX_INT:
        return str(value)
    return text(value)[:_MAX_ID_CHARS]


def ident(parent: Any, *keys: str) -> str:
    """The first usable id (:func:`as_id`) among ``parent``'s ``keys``."""
    if not isinstance(parent, dict):
        return ""
    return next((s for s in (as_id(parent.get(k)) for k in keys) if s), "")


def integer(value: Any) -> int | None:
    """An integer from a JSON number or a string of ASCII digits (optionally signed)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        raw = value.strip()
        digits = raw[1:] if raw[:1] in "+-" else raw
        if not (digits.isascii() and digits.isdigit() and len(digits) < 16):
            return None
        value = int(raw)
    if isinstance(value, int) and abs(value) < _MAX_INT:
        return value
    return None


def timestamp(value: Any) -> int | None:
    """RFC 3339 text or epoch seconds/milliseconds -> epoch seconds (None when unreadable)."""
    number = integer(value)
    if number is None and isinstance(value, float) and math.isfinite(value):
        number = int(value) if abs(value) < _MAX_INT else None
    if number is not None:
        return number // 1000 if number > 10**12 else number
    raw = text(value)
    if not raw or len(raw) > 64:
        return None
    try:
        return int(datetime.fromisoformat(raw).timestamp())
    except (ValueError, OverflowError, OSError):
        return None


def stable_id(data: Any) -> str:
    """``noid-<16 hex of sha256(canonical JSON)>``: the same body always gets the same id."""
    try:
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        canonical = repr(type(data))
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return f"noid-{digest[:16]}"


def describe(value: Any, limit: int = 40) -> str:
    """A short, printable account of a value that arrived, for notes and placeholders."""
    if isinstance(value, str):
        return repr(value[:limit])
    if isinstance(value, dict):
        return "{" + ", ".join(str(k)[:limit] for k in list(value)[:6]) + "}"
    return type(value).__name__


# ---- identities ----
def user(jid: str) -> str:
    """The user part of a JID, without domain or device: ``123:4@lid`` -> ``123``."""
    return jid.split("@", 1)[0].split(":", 1)[0]


def lid_form(value: str) -> str | None:
    """``<user>@lid`` for a LID field (the docs' example wrongly shows an ``s.whatsapp.net``)."""
    name = user(value.strip())
    return f"{name}@lid" if _LID_USER.fullmatch(name) else None


def group_form(jid: str) -> str | None:
    """``<id>@g.us`` for a group JID (with or without its domain), None when unreadable."""
    name = user(jid.strip())
    return f"{name}@g.us" if _GROUP_USER.fullmatch(name) else None


def phone_of(jid: str, lid: str = "") -> str | None:
    """Canonical phone digits of ``jid``, or None when it is not a phone (group, LID, ...)."""
    if not jid or is_lid(jid) or (lid and user(jid) == user(lid)):
        return None
    try:
        return canonical_phone(jid)
    except ValueError:
        return None


# A person object may carry its phone and LID under several names (whatsmeow's ``SenderAlt``,
# Baileys' ``senderPn`` / ``senderLid``); each is read when present.
PHONE_KEYS = ("phone", "phoneNumber", "pn", "senderPn", "participantPn")
LID_KEYS = ("lid", "senderLid", "participantLid")
ALT_KEYS = ("jidAlt", "senderAlt", "alt")  # the other identifier, phone JID or LID


def identities(person: dict[str, Any]) -> tuple[str, list[str]]:
    """The raw phone (``""`` when none) and the ``<user>@lid`` forms a person object names."""
    jid, lid = text(person.get("jid")), text(person.get("lid"))
    alts = [text(person.get(k)) for k in ALT_KEYS]
    phones = [jid, *(text(person.get(k)) for k in PHONE_KEYS), *alts]
    phone = next((p for p in phones if phone_of(p, lid)), "")
    lid_fields = [text(person.get(k)) for k in LID_KEYS]
    raw_lids = [*lid_fields, *(x for x in (jid, *alts) if is_lid(x))]
    lids = [form for form in (lid_form(x) for x in raw_lids if x) if form]
    return phone, list(dict.fromkeys(lids))


def person_id(person: dict[str, Any]) -> str:
    """Who a person object names: canonical phone, else ``<lid>@lid``, else ``""``."""
    phone, lids = identities(person)
    if phone:
        return canonical_phone(phone)
    return lids[0] if lids else ""
