"""AES-256-GCM for secrets at rest.

Stored form: ``v1.<key id>.<base64url(nonce || ciphertext+tag)>``

* the nonce is 96 random bits, fresh for every encryption;
* the key id (first 8 hex digits of SHA-256 of the key) tells which key decrypts, so that
  ``ENCRYPTION_KEYS_OLD`` keeps decrypting values written before a rotation;
* the associated data binds a value to its row and field (``"<table>/<row id>/<field>"``), so a
  ciphertext copied into another row or column fails to decrypt instead of leaking there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_VERSION = "v1"
_NONCE_BYTES = 12


class DecryptionError(Exception):
    """A stored secret cannot be decrypted (unknown key id, tampering, or wrong row/field)."""


def key_id(key: bytes) -> str:
    """A short public fingerprint of a key; it reveals nothing usable about the key."""
    return hashlib.sha256(key).hexdigest()[:8]


def associated_data(table: str, row_id: str, field: str) -> bytes:
    return f"{table}/{row_id}/{field}".encode()


class Cipher:
    """Encrypts with the current key; decrypts with the current or any old key."""

    def __init__(self, current: bytes, old: Iterable[bytes] = ()) -> None:
        old = list(old)
        if any(len(key) != 32 for key in [current, *old]):
            raise ValueError("AES-256 needs a 32-byte key")
        self._current_id = key_id(current)
        self._keys: dict[str, AESGCM] = {self._current_id: AESGCM(current)}
        for key in old:
            self._keys.setdefault(key_id(key), AESGCM(key))

    def __repr__(self) -> str:
        return f"Cipher(current={self._current_id}, keys={len(self._keys)})"

    @property
    def current_key_id(self) -> str:
        return self._current_id

    def encrypt(self, plaintext: str, aad: bytes) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._keys[self._current_id].encrypt(nonce, plaintext.encode(), aad)
        body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{_VERSION}.{self._current_id}.{body}"

    def decrypt(self, stored: str, aad: bytes) -> str:
        version, kid, body = _split(stored)
        if version != _VERSION:
            raise DecryptionError(f"unknown secret format {version!r}")
        aead = self._keys.get(kid)
        if aead is None:
            raise DecryptionError(f"no key with id {kid} (set it in ENCRYPTION_KEYS_OLD)")
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plaintext = aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], aad)
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise DecryptionError("secret failed authentication") from exc
        return plaintext.decode()

    def needs_rotation(self, stored: str) -> bool:
        """True when ``stored`` was written with a key other than the current one."""
        return stored_key_id(stored) != self._current_id

    def reencrypt(self, stored: str, aad: bytes) -> str:
        """``stored`` decrypted (with whichever configured key wrote it) and sealed again under
        the current key, bound to the same ``aad``. Raises :class:`DecryptionError`."""
        return self.encrypt(self.decrypt(stored, aad), aad)


def stored_key_id(stored: str) -> str:
    """The key id a stored secret names (public; raises :class:`DecryptionError` if malformed)."""
    return _split(stored)[1]


def _split(stored: str) -> tuple[str, str, str]:
    parts = stored.split(".", 2)
    if len(parts) != 3:
        raise DecryptionError("malformed secret")
    return parts[0], parts[1], parts[2]
