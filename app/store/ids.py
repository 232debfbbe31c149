"""Identifiers and tokens: random, unguessable, and stored as hashes where they authenticate."""

from __future__ import annotations

import hashlib
import secrets

_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def new_id(prefix: str, length: int = 16) -> str:
    """``<prefix>_<random>``, e.g. ``int_k3j9x0q2...`` (public, not a secret)."""
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_token() -> str:
    """A bearer token with 256 bits of entropy."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256 of a token. Tokens are random and long, so a plain digest is enough to store."""
    return hashlib.sha256(token.encode()).hexdigest()
