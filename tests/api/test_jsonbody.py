"""The webhook JSON decoder skips its storable walk and depth walk only when the raw bytes
prove them needless: whatever the encoding or escaping, what it returns is storable and no
deeper than allowed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.api.errors import ApiError
from app.api.jsonbody import MAX_DEPTH, decode_webhook_json, has_unstorable

ENCODINGS = ["utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in (*_strings(key), *_strings(item))]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _encode(value: Any, encoding: str, ensure_ascii: bool) -> bytes:
    # surrogatepass: lone surrogates written raw, as a careless sender's encoder would
    return json.dumps(value, ensure_ascii=ensure_ascii).encode(encoding, "surrogatepass")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(json_values, st.sampled_from(ENCODINGS), st.booleans())
def test_every_decoded_string_is_storable(value: Any, encoding: str, ensure_ascii: bool) -> None:
    decoded = decode_webhook_json(_encode({"v": value}, encoding, ensure_ascii))
    assert not any(has_unstorable(s) for s in _strings(decoded))


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize(
    "text", ["nul \x00 here", "lone \ud800 high", "lone \udfff low", "\udc80\x00"]
)
def test_nul_and_surrogates_become_replacement_characters(encoding: str, text: str) -> None:
    for ensure_ascii in (True, False):
        decoded = decode_webhook_json(_encode({text: [text]}, encoding, ensure_ascii))
        (key,) = decoded
        assert not has_unstorable(key) and not has_unstorable(decoded[key][0])
        assert "\ufffd" in key


def test_an_ordinary_body_comes_back_unchanged() -> None:
    body = {"entry": [{"changes": [{"value": {"messages": [{"text": {"body": "olá 😀"}}]}}]}]}
    assert decode_webhook_json(json.dumps(body, ensure_ascii=False).encode()) == body


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
def test_nesting_beyond_the_limit_is_refused_in_any_encoding(encoding: str) -> None:
    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    with pytest.raises(ApiError) as refused:
        decode_webhook_json(deep.encode(encoding))
    assert refused.value.status == 400
    at_limit = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert decode_webhook_json(at_limit.encode(encoding)) is not None
