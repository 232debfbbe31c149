"""Read receipts, typing and presence clients (app/integrations/whatsapp/receipts.py) and
Chatwoot's public typing client, against the fakes over real HTTP: exact bodies, errors
classified, credentials never in an error text."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from app.integrations.chatwoot_public import ChatwootPublicClient
from app.integrations.errors import (
    RemoteError,
    RemoteNotFound,
    RemoteRateLimited,
    RemoteUnprocessable,
    is_transient,
)
from app.integrations.http import build_client
from app.integrations.whatsapp.pacing import Pacer, PacingBusy
from app.integrations.whatsapp.receipts import CloudReceipts, GatewayReceipts
from tests.fakes import gateway_samples as gs
from tests.fakes.chatwoot import FakeChatwoot
from tests.fakes.gateway import FakeGateway
from tests.fakes.graph import FakeGraph
from tests.reference import whatsapp_cloud_dir

PHONE_ID = "106540352242922"
TOKEN = "EAAG-receipts-secret-do-not-leak"
GW_TOKEN = "gw-receipts-secret-do-not-leak"
WAMID = "wamid.HBgLMTY1MDU1NTEyMzQVAgASGBQzQTcxVAgASGBQzRUIwQTc1RjVBNkM4QjQyQzE3NwA="


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    client = build_client(allow_private=True)
    yield client
    client.close()


@pytest.fixture(scope="module")
def graph_server() -> Iterator[FakeGraph]:
    with FakeGraph() as fake:
        yield fake


@pytest.fixture
def graph(graph_server: FakeGraph) -> Iterator[FakeGraph]:
    graph_server.reset()
    graph_server.add_phone_number(PHONE_ID, TOKEN)
    yield graph_server
    assert graph_server.schema_errors == []


@pytest.fixture(scope="module")
def gateway() -> Iterator[FakeGateway]:
    with FakeGateway() as fake:
        yield fake


def cloud(graph: FakeGraph, http: httpx.Client, pacer: Pacer | None = None) -> CloudReceipts:
    return CloudReceipts(
        graph.base_url, PHONE_ID, TOKEN, http=http, retry_max_wait=0.01, pacer=pacer
    )


def test_cloud_read_with_typing_is_metas_reference_body(
    graph: FakeGraph, http: httpx.Client
) -> None:
    reference = json.loads(
        (whatsapp_cloud_dir() / "2026" / "requests" / "mark_read_with_typing.json").read_text()
    )

    cloud(graph, http).typing("16505551234", True, WAMID)
    cloud(graph, http).typing("16505551234", False, WAMID)  # Meta has no "typing off"
    cloud(graph, http).mark_read("16505551234", WAMID)

    assert graph.read_receipts == [
        reference,
        {"messaging_product": "whatsapp", "status": "read", "message_id": WAMID},
    ]


def test_cloud_refusal_and_outage_keep_the_token_out(graph: FakeGraph, http: httpx.Client) -> None:
    graph.fail_next("POST", r"/messages$", 400, {"error": {"message": f"bad {TOKEN}", "code": 100}})
    with pytest.raises(RemoteUnprocessable) as refused:
        cloud(graph, http).mark_read("x", WAMID)
    graph.fail_next("POST", r"/messages$", 503, times=3)
    with pytest.raises(RemoteError) as down:
        cloud(graph, http).mark_read("x", WAMID)

    assert TOKEN not in str(refused.value) and not is_transient(refused.value)
    assert is_transient(down.value)
    assert graph.read_receipts == []


class BusyPacer:
    def acquire(self) -> float:
        raise PacingBusy("pacing 1 messages/s: next slot in 3.0s", retry_after=3.0)

    def hold(self, seconds: float) -> None:
        raise AssertionError("not used")


def test_no_pacing_slot_is_a_rate_limit_and_nothing_is_sent(
    graph: FakeGraph, http: httpx.Client
) -> None:
    with pytest.raises(RemoteRateLimited) as busy:
        cloud(graph, http, pacer=BusyPacer()).mark_read("x", WAMID)

    assert busy.value.unprocessed and busy.value.retry_after == 3.0
    assert graph.calls == []


def test_gateway_read_names_the_author_in_groups_and_presence_states(
    gateway: FakeGateway, http: httpx.Client
) -> None:
    gateway.reset()
    gateway.add_instance("suporte", GW_TOKEN)
    receipts = GatewayReceipts(gateway.base_url, "suporte", GW_TOKEN, http=http)

    receipts.mark_read(gs.CUSTOMER, "3EB0AA")
    receipts.mark_read(gs.GROUP, "3EB0BB", sender=gs.CUSTOMER)
    receipts.typing(gs.CUSTOMER, True)
    receipts.typing(gs.CUSTOMER, False)

    assert [r.body for r in gateway.reads] == [
        {"messageId": "3EB0AA", "number": gs.CUSTOMER},
        {"messageId": "3EB0BB", "number": gs.GROUP, "sender": f"{gs.CUSTOMER}@s.whatsapp.net"},
    ]
    assert [p.body for p in gateway.presences] == [
        {"number": gs.CUSTOMER, "state": "typing"},
        {"number": gs.CUSTOMER, "state": "pause"},
    ]
    gateway.set_connected("suporte", False)
    with pytest.raises(RemoteError) as disconnected:
        receipts.typing(gs.CUSTOMER, True)
    assert GW_TOKEN not in str(disconnected.value) and is_transient(disconnected.value)


def test_public_toggle_typing_never_shows_the_inbox_identifier(http: httpx.Client) -> None:
    with FakeChatwoot() as chatwoot:
        client = ChatwootPublicClient(chatwoot.base_url, http=http)
        with pytest.raises(RemoteNotFound) as missing:
            client.toggle_typing("secret-inbox-identifier", "4915112345678", 3, True)
    assert "secret-inbox-identifier" not in str(missing.value)
    assert "secret-inbox-identifier" not in repr(missing.value)
