"""Settings.from_environ: API.md's configuration table, key validation, no key in output."""

from __future__ import annotations

import base64
import os
import traceback

import pytest

from app.config import ConfigError, Settings


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _key_forms(text: str) -> list[str]:
    forms = [text]
    try:
        raw = base64.b64decode(text)
    except ValueError:
        return forms
    if raw:
        forms += [raw.hex(), repr(raw)]
    return forms


def _everything_shown(exc: BaseException) -> str:
    """The message, the repr, and the whole traceback a crashing process would print."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


def test_defaults_follow_the_configuration_table() -> None:
    settings = Settings.from_environ({})

    assert settings.port == 8000
    assert settings.database_url == "sqlite:///wootbridge.db"
    assert settings.public_url == "http://localhost:8000"
    assert settings.chatwoot_enabled is True
    assert settings.allow_private_urls is False
    assert settings.set_wait_seconds == 55
    assert settings.live_check_seconds == 3
    assert settings.encryption_key is None
    assert settings.encryption_keys_old == ()
    assert settings.current_key() is None
    assert settings.old_keys() == []


def test_explicit_environ_is_used_instead_of_the_process_environment() -> None:
    # conftest puts ENCRYPTION_KEY, PUBLIC_URL, ALLOW_PRIVATE_URLS... into os.environ
    assert os.environ.get("ENCRYPTION_KEY")

    settings = Settings.from_environ({})

    assert settings.encryption_key is None
    assert settings.public_url == "http://localhost:8000"
    assert settings.allow_private_urls is False


def test_public_url_default_follows_port() -> None:
    settings = Settings.from_environ({"PORT": "9123"})

    assert settings.port == 9123
    assert settings.public_url == "http://localhost:9123"


def test_values_from_the_environment() -> None:
    key = _b64(os.urandom(32))
    settings = Settings.from_environ(
        {
            "PORT": "8080",
            "DATABASE_URL": "postgresql://wb@db.internal:5432/wootbridge",
            "PUBLIC_URL": "https://bridge.example.com/",
            "CHATWOOT_ENABLED": "false",
            "ALLOW_PRIVATE_URLS": "true",
            "SET_WAIT_SECONDS": "12.5",
            "LIVE_CHECK_SECONDS": "1",
            "ENCRYPTION_KEY": key,
        }
    )

    assert settings.port == 8080
    assert settings.database_url == "postgresql://wb@db.internal:5432/wootbridge"
    assert settings.public_url == "https://bridge.example.com"
    assert settings.chatwoot_enabled is False
    assert settings.allow_private_urls is True
    assert settings.set_wait_seconds == 12.5
    assert settings.live_check_seconds == 1
    assert settings.current_key() == base64.b64decode(key)


@pytest.mark.parametrize(
    "bad_value",
    [
        _b64(b"sixteen-byte-key"),  # 16 bytes
        _b64(os.urandom(31)),
        _b64(os.urandom(33)),
        _b64(os.urandom(64)),
        "not*base64!!hunter2-secret-value",
        "c2VjcmV0LXRleHQ",  # base64 without padding
        os.urandom(32).hex(),  # hex, not base64 (decodes to 48 bytes)
    ],
    ids=["16-bytes", "31-bytes", "33-bytes", "64-bytes", "not-base64", "unpadded", "hex"],
)
def test_unusable_encryption_key_is_a_config_error_without_the_value(bad_value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_environ({"ENCRYPTION_KEY": bad_value})

    assert "ENCRYPTION_KEY" in str(caught.value)
    shown = _everything_shown(caught.value)
    for form in _key_forms(bad_value):
        assert form not in shown


def test_unusable_old_key_is_a_config_error_without_the_value() -> None:
    good = _b64(os.urandom(32))
    bad = _b64(b"too-short-old-key-material")

    with pytest.raises(ConfigError) as caught:
        Settings.from_environ({"ENCRYPTION_KEY": good, "ENCRYPTION_KEYS_OLD": f"{good},{bad}"})

    assert "ENCRYPTION_KEYS_OLD" in str(caught.value)
    shown = _everything_shown(caught.value)
    for form in [*_key_forms(bad), *_key_forms(good)]:
        assert form not in shown


def test_encryption_key_surrounding_whitespace_is_ignored() -> None:
    raw = os.urandom(32)

    settings = Settings.from_environ({"ENCRYPTION_KEY": f"  {_b64(raw)}\n"})

    assert settings.current_key() == raw


def test_old_keys_are_a_comma_list() -> None:
    current, first, second = os.urandom(32), os.urandom(32), os.urandom(32)

    settings = Settings.from_environ(
        {
            "ENCRYPTION_KEY": _b64(current),
            "ENCRYPTION_KEYS_OLD": f" {_b64(first)} ,{_b64(second)},, ",
        }
    )

    assert settings.current_key() == current
    assert settings.old_keys() == [first, second]


def test_chatwoot_module_needs_both_the_switch_and_a_key() -> None:
    key = _b64(os.urandom(32))

    assert Settings.from_environ({}).chatwoot_module_enabled is False
    assert Settings.from_environ({"CHATWOOT_ENABLED": "true"}).chatwoot_module_enabled is False
    assert Settings.from_environ({"ENCRYPTION_KEY": key}).chatwoot_module_enabled is True
    switched_off = Settings.from_environ({"ENCRYPTION_KEY": key, "CHATWOOT_ENABLED": "false"})
    assert switched_off.chatwoot_module_enabled is False


def test_repr_of_settings_contains_no_key_material() -> None:
    current, old = os.urandom(32), os.urandom(32)
    settings = Settings.from_environ(
        {"ENCRYPTION_KEY": _b64(current), "ENCRYPTION_KEYS_OLD": _b64(old)}
    )

    shown = f"{settings!r} {settings} {settings.encryption_key!r} {settings.encryption_keys_old!r}"

    for raw in (current, old):
        for form in [*_key_forms(_b64(raw)), base64.urlsafe_b64encode(raw).decode()]:
            assert form not in shown
