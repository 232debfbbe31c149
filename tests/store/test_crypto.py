"""AES-256-GCM for secrets at rest (DESIGN invariant 6): ``app.store.crypto.Cipher``.

Stored form ``v1.<key id>.<base64url(nonce || ciphertext+tag)>``, a random 96-bit nonce per
encryption, the row and field bound as associated data, old keys decrypting after a rotation.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re

import pytest

from app.store.crypto import Cipher, DecryptionError, associated_data, key_id

PLAINTEXT = "sk_live_abc123-chatwoot-token-s3cr3t"
AAD = associated_data("chatwoot_integration", "int_abc", "chatwoot_api_token")
NONCE_BYTES = 12
TAG_BYTES = 16


def _key() -> bytes:
    return os.urandom(32)


def _key_forms(key: bytes) -> list[str]:
    """Every way a key might leak as text."""
    return [
        base64.b64encode(key).decode(),
        base64.urlsafe_b64encode(key).decode(),
        base64.urlsafe_b64encode(key).decode().rstrip("="),
        key.hex(),
        repr(key),
    ]


def _raw(stored: str) -> bytes:
    body = stored.split(".", 2)[2]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def _with_raw(stored: str, raw: bytes) -> str:
    version, kid, _ = stored.split(".", 2)
    return f"{version}.{kid}.{base64.urlsafe_b64encode(raw).decode().rstrip('=')}"


def test_round_trip() -> None:
    cipher = Cipher(_key())

    stored = cipher.encrypt(PLAINTEXT, AAD)

    assert cipher.decrypt(stored, AAD) == PLAINTEXT


def test_round_trip_of_unicode_and_empty_values() -> None:
    cipher = Cipher(_key())

    for value in ["", "çãé — 🔑", "x" * 5000]:
        assert cipher.decrypt(cipher.encrypt(value, AAD), AAD) == value


def test_stored_form_is_version_key_id_and_base64url() -> None:
    key = _key()
    cipher = Cipher(key)

    stored = cipher.encrypt(PLAINTEXT, AAD)

    expected_kid = hashlib.sha256(key).hexdigest()[:8]
    assert key_id(key) == expected_kid
    assert cipher.current_key_id == expected_kid
    assert re.fullmatch(rf"v1\.{expected_kid}\.[A-Za-z0-9_-]+", stored), stored
    assert PLAINTEXT not in stored


def test_nonce_is_96_random_bits_and_ciphertext_differs_each_time() -> None:
    cipher = Cipher(_key())

    stored = [cipher.encrypt(PLAINTEXT, AAD) for _ in range(20)]

    assert len(set(stored)) == 20
    raws = [_raw(s) for s in stored]
    # layout: 12-byte nonce || ciphertext (same length as the plaintext) || 16-byte GCM tag
    assert {len(raw) for raw in raws} == {NONCE_BYTES + len(PLAINTEXT.encode()) + TAG_BYTES}
    nonces = {raw[:NONCE_BYTES] for raw in raws}
    assert len(nonces) == 20
    assert all(cipher.decrypt(s, AAD) == PLAINTEXT for s in stored)


@pytest.mark.parametrize(
    "other_aad",
    [
        associated_data("chatwoot_integration", "int_other", "chatwoot_api_token"),
        associated_data("chatwoot_integration", "int_abc", "webhook_secret"),
        associated_data("instance", "int_abc", "chatwoot_api_token"),
        b"",
    ],
    ids=["other-row", "other-field", "other-table", "no-aad"],
)
def test_wrong_associated_data_fails(other_aad: bytes) -> None:
    cipher = Cipher(_key())
    stored = cipher.encrypt(PLAINTEXT, AAD)

    with pytest.raises(DecryptionError) as caught:
        cipher.decrypt(stored, other_aad)

    assert PLAINTEXT not in str(caught.value)


@pytest.mark.parametrize("position", ["nonce", "ciphertext", "tag"])
def test_tampered_byte_fails(position: str) -> None:
    cipher = Cipher(_key())
    stored = cipher.encrypt(PLAINTEXT, AAD)
    raw = bytearray(_raw(stored))
    index = {"nonce": 0, "ciphertext": NONCE_BYTES + 3, "tag": len(raw) - 1}[position]
    raw[index] ^= 0x01

    with pytest.raises(DecryptionError):
        cipher.decrypt(_with_raw(stored, bytes(raw)), AAD)


def test_truncated_or_malformed_values_fail_with_decryption_error() -> None:
    cipher = Cipher(_key())
    stored = cipher.encrypt(PLAINTEXT, AAD)
    version, kid, body = stored.split(".", 2)

    broken = [
        stored[:-4],  # tag cut short
        f"{version}.{kid}.{body[:10]}",  # shorter than a nonce
        f"{version}.{kid}.",  # empty body
        f"{version}.{kid}.!!!not*base64!!!",
        "v2." + stored[3:],  # unknown format version
        "plaintext-that-was-never-encrypted",
        "",
    ]
    for value in broken:
        with pytest.raises(DecryptionError):
            cipher.decrypt(value, AAD)


def test_value_written_under_old_key_decrypts_after_rotation() -> None:
    old_key, new_key = _key(), _key()
    written_before = Cipher(old_key).encrypt(PLAINTEXT, AAD)

    rotated = Cipher(new_key, old=[old_key])

    assert rotated.decrypt(written_before, AAD) == PLAINTEXT
    written_after = rotated.encrypt(PLAINTEXT, AAD)
    assert written_after.split(".")[1] == key_id(new_key)
    assert Cipher(new_key).decrypt(written_after, AAD) == PLAINTEXT


def test_several_old_keys_each_decrypt_their_values() -> None:
    keys = [_key() for _ in range(3)]
    values = [Cipher(key).encrypt(f"secret-{i}", AAD) for i, key in enumerate(keys)]

    cipher = Cipher(_key(), old=keys)

    assert [cipher.decrypt(v, AAD) for v in values] == ["secret-0", "secret-1", "secret-2"]


def test_unknown_key_id_fails_without_revealing_key_material() -> None:
    old_key, new_key = _key(), _key()
    written_before = Cipher(old_key).encrypt(PLAINTEXT, AAD)

    with pytest.raises(DecryptionError) as caught:
        Cipher(new_key).decrypt(written_before, AAD)

    message = f"{caught.value} {caught.value!r}"
    for key in (old_key, new_key):
        for form in _key_forms(key):
            assert form not in message
    assert PLAINTEXT not in message


def test_needs_rotation() -> None:
    old_key, new_key = _key(), _key()
    written_before = Cipher(old_key).encrypt(PLAINTEXT, AAD)
    rotated = Cipher(new_key, old=[old_key])

    assert rotated.needs_rotation(written_before) is True
    assert rotated.needs_rotation(rotated.encrypt(PLAINTEXT, AAD)) is False


def test_repr_and_str_show_no_key() -> None:
    current, old = _key(), _key()
    cipher = Cipher(current, old=[old])

    shown = f"{cipher!r} {cipher}"

    for key in (current, old):
        for form in _key_forms(key):
            assert form not in shown


@pytest.mark.parametrize("size", [0, 16, 24, 31, 33, 64])
def test_current_key_must_be_32_bytes(size: int) -> None:
    with pytest.raises(ValueError):
        Cipher(os.urandom(size))


@pytest.mark.parametrize("size", [16, 24, 31, 33])
def test_old_keys_must_be_32_bytes_too(size: int) -> None:
    """AES-256 only: a shorter old key would silently decrypt with AES-128/192."""
    with pytest.raises(ValueError):
        Cipher(_key(), old=[os.urandom(size)])


def test_key_id_is_a_short_fingerprint_not_the_key() -> None:
    key = _key()

    kid = key_id(key)

    assert re.fullmatch(r"[0-9a-f]{8}", kid)
    assert kid not in key.hex()
    assert key_id(_key()) != kid
