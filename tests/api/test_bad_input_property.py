"""Property test: odd JSON (huge, deep, odd unicode, wrong types) at every JSON-reading endpoint
never answers 5xx, and a 4xx leaves the instance, integration and event tables unchanged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.config import Settings
from tests.api.bad_input_stack import GATEWAY_TOKEN, Stack, chatwoot_fields, cloud_fields
from tests.conftest import make_client

ODD_TEXT = st.text(
    alphabet=st.one_of(
        st.characters(codec=None, exclude_categories=()),  # surrogates and controls included
        st.sampled_from(["\u0000", "\ud800", "\udfff", "\u202e", "\ufeff", "\U0001f600"]),
    ),
    max_size=40,
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**31, 2**63, -(2**63) - 1, 0, -1]),
    st.floats(allow_nan=False, allow_infinity=False),
    ODD_TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(ODD_TEXT, inner, max_size=4)
    ),
    max_leaves=20,
)
NUMBER_LITERALS = st.sampled_from(
    ["1e400", "-1e400", "9" * 5000, "-" + "9" * 4400, "NaN", "Infinity", "1" + "0" * 400 + ".5"]
)


def _encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def _mutated(base: dict[str, Any]) -> st.SearchStrategy[bytes]:
    """``base`` with one field (known or new) replaced by an odd value or raw number literal."""
    keys = st.sampled_from([*base, "extra"])
    replaced = st.tuples(keys, JSON_VALUES).map(lambda kv: _encode({**base, kv[0]: kv[1]}))
    literal = st.tuples(keys, NUMBER_LITERALS).map(
        lambda kv: _encode({**base, kv[0]: "@@"}).replace(b'"@@"', kv[1].encode())
    )
    return st.one_of(replaced, literal)


def _deep(depth: int, arrays: bool) -> bytes:
    if arrays:
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


DEEP = st.builds(_deep, st.integers(min_value=1, max_value=3000), st.booleans())


def bodies(base: dict[str, Any]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        _mutated(base),
        JSON_VALUES.map(_encode),
        st.binary(max_size=200),
        DEEP,
        st.builds(lambda n: b'{"x": "' + b"\xff" * n + b'"}', st.integers(1, 5)),
    )


NEW_BASE = {**cloud_fields("fuzz"), **chatwoot_fields()}
SET_BASE = {
    "chatwootBaseUrl": "https://cw.example.com",
    "chatwootAccountId": 3,
    "chatwootApiToken": "fuzz-token",
    "inboxName": "Fuzz",
    "signMessages": True,
}
CLOUD_BASE = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "1",
            "changes": [
                {
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {"phone_number_id": "106540352242922"},
                        "contacts": [{"profile": {"name": "C"}, "wa_id": "16505551234"}],
                        "messages": [
                            {
                                "from": "16505551234",
                                "id": "wamid.F",
                                "timestamp": "1749416383",
                                "type": "text",
                                "text": {"body": "hi"},
                            }
                        ],
                    },
                }
            ],
        }
    ],
}
GATEWAY_BASE = {
    "event": "message.exchange",
    "data": {"id": "3EB0F", "fromMe": False, "chat": "5511999998888@s.whatsapp.net"},
    "instanceData": {"baseUrl": "https://gw", "instance": "vendas", "token": GATEWAY_TOKEN},
}
CHATWOOT_BASE = {
    "event": "message_created",
    "id": 77,
    "message_type": "outgoing",
    "content": "hello",
    "conversation": {"id": 5, "contact_inbox": {"source_id": "5511999998888"}},
}

ENDPOINTS = {
    "new": NEW_BASE,
    "set": SET_BASE,
    "cloud": CLOUD_BASE,
    "gateway": GATEWAY_BASE,
    "chatwoot": CHATWOOT_BASE,
}


@pytest.fixture
def stack(settings: Settings, account_token: str) -> Iterator[Stack]:
    with make_client(replace(settings, set_wait_seconds=0.01)) as client:
        ready = Stack(client, account_token)
        ready.create_instances()
        yield ready


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_odd_bodies_never_answer_5xx(stack: Stack, endpoint: str) -> None:
    send = getattr(stack, endpoint)
    statuses: list[int] = []

    @hypothesis_settings(
        max_examples=100,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(raw=bodies(ENDPOINTS[endpoint]))
    def check(raw: bytes) -> None:
        before = stack.snapshot()
        response = send(raw)
        statuses.append(response.status_code)
        assert response.status_code < 500, (response.status_code, response.text, raw[:300])
        if 400 <= response.status_code < 500:
            assert stack.snapshot() == before, (response.text, raw[:300])

    check()
    assert len(statuses) >= 50, "the property ran on too few bodies"
