"""Phone canonicalization: every spelling of one number gives the same chat key."""

from __future__ import annotations

import pytest

from app.relay.phones import canonical_phone, e164, is_group_jid, is_lid, phone_aliases


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("16505551234", "16505551234"),
        ("+1 650-555-1234", "16505551234"),
        ("+1 (650) 555-1234", "16505551234"),
        (" 16505551234 ", "16505551234"),
        ("16505551234@s.whatsapp.net", "16505551234"),
        ("16505551234@c.us", "16505551234"),
        ("16505551234:12@s.whatsapp.net", "16505551234"),
        ("16505551234@S.WHATSAPP.NET", "16505551234"),
        ("447911123456", "447911123456"),
    ],
)
def test_canonical_phone_strips_formatting_and_jid_parts(raw: str, expected: str) -> None:
    assert canonical_phone(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # 12-digit mobile (first local digit 6-9) gains the 9th digit
        ("551199998888", "5511999998888"),
        ("552181234567", "5521981234567"),
        ("556176543210", "5561976543210"),
        ("+55 11 9999-8888", "5511999998888"),
        ("551199998888@s.whatsapp.net", "5511999998888"),
        ("551199998888:3@s.whatsapp.net", "5511999998888"),
        # already 13 digits: unchanged
        ("5511999998888", "5511999998888"),
        ("+55 (11) 99999-8888", "5511999998888"),
        # landlines (first local digit 2-5) keep 12 digits
        ("551133334444", "551133334444"),
        ("555132221111", "555132221111"),
        # not Brazil, or not a Brazilian area code: untouched
        ("541199998888", "541199998888"),
        ("550199998888", "550199998888"),
        ("55119999888", "55119999888"),
    ],
)
def test_brazilian_mobiles_get_their_ninth_digit(raw: str, expected: str) -> None:
    assert canonical_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "+",
        "abc",
        "1650555123x",
        "120363041234567890@g.us",
        "123456789@lid",
        "1234567890123456",  # 16 digits: longer than E.164 allows
        "١٢٣٤٥٦٧٨",  # non-ASCII digits
    ],
)
def test_canonical_phone_rejects_what_is_not_a_phone(raw: str) -> None:
    with pytest.raises(ValueError, match="not a phone number"):
        canonical_phone(raw)


def test_e164_prefixes_plus_once() -> None:
    assert e164("5511999998888") == "+5511999998888"
    assert e164("+16505551234") == "+16505551234"
    with pytest.raises(ValueError):
        e164("12ab")
    with pytest.raises(ValueError):
        e164("")


def test_aliases_of_a_brazilian_number_include_the_other_ninth_digit_form() -> None:
    assert phone_aliases("5511999998888") == ("551199998888",)
    assert phone_aliases("551199998888") == ("551199998888",)
    assert phone_aliases("551199998888@s.whatsapp.net") == (
        "551199998888@s.whatsapp.net",
        "551199998888",
    )


def test_aliases_exclude_the_canonical_form_itself() -> None:
    assert phone_aliases("16505551234") == ()
    assert phone_aliases("+1 650-555-1234") == ("+1 650-555-1234",)
    for raw in ("5511999998888", "+55 11 9999-8888", "16505551234@c.us"):
        assert canonical_phone(raw) not in phone_aliases(raw)


def test_aliases_of_a_landline_have_no_ninth_digit_variant() -> None:
    assert phone_aliases("551133334444") == ()
    assert phone_aliases("5511933334444") == ()  # 9 + landline-looking digits: not a mobile pair


def test_aliases_reject_non_phones() -> None:
    with pytest.raises(ValueError):
        phone_aliases("123@lid")


def test_group_and_lid_detection() -> None:
    assert is_group_jid("120363041234567890@g.us")
    assert is_group_jid(" 120363041234567890@G.US ")
    assert not is_group_jid("16505551234@s.whatsapp.net")
    assert not is_group_jid("16505551234")
    assert is_lid("123456789012345@lid")
    assert not is_lid("16505551234@s.whatsapp.net")
    assert not is_lid("120363041234567890@g.us")
