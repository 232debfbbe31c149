"""Reading a business account's templates from the fake Graph (paging, failures), choosing the
usable ones, and building a template message's ``template`` object in Meta's shape."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator

import httpx
import pytest

from app.integrations.http import build_client
from app.integrations.whatsapp.cloud_send import CloudSender
from app.integrations.whatsapp.cloud_template import (
    HeaderMedia,
    OutgoingTemplate,
    TemplateButton,
    TemplateSpec,
    template_object,
)
from app.integrations.whatsapp.send import SendFailure
from app.integrations.whatsapp.templates import (
    TemplateClient,
    TemplateFetchError,
    usable_templates,
    why_unusable,
)
from tests.fakes.graph import FakeGraph
from tests.reference import DATA
from tests.template_catalog import (
    COUPON,
    HELLO,
    LEFT_OUT,
    ORDER_READY,
    USABLE,
    WABA_ID,
    all_templates,
    as_chatwoot_stores,
)

PHONE_ID = "106540352242922"
TOKEN = "EAAG-templates-secret-do-not-leak"
TEMPLATES = r"/message_templates$"


@pytest.fixture(scope="module")
def http_client() -> Iterator[httpx.Client]:
    client = build_client(allow_private=True)
    client.timeout = httpx.Timeout(2.0)
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
    graph_server.add_business_account(WABA_ID, TOKEN, all_templates(), (PHONE_ID,))
    yield graph_server
    assert graph_server.schema_errors == []
    assert TOKEN not in repr(graph_server.calls)


def client_for(graph: FakeGraph, http: httpx.Client, token: str = TOKEN) -> TemplateClient:
    return TemplateClient(graph.base_url, token, http=http, retry_attempts=3, retry_max_wait=0.01)


def template_calls(graph: FakeGraph) -> list[dict[str, str]]:
    return [c.query for c in graph.calls if c.method == "GET" and c.path.endswith("_templates")]


def test_every_page_is_read_by_following_paging_next(
    graph: FakeGraph, http_client: httpx.Client
) -> None:
    graph.max_template_page_size = 3

    listed = client_for(graph, http_client).fetch(WABA_ID)

    assert listed.complete
    assert list(listed.templates) == all_templates()
    queries = template_calls(graph)
    assert len(queries) == 4  # 10 templates, 3 a page
    assert queries[0] == {"limit": "100"}
    assert all(set(q) == {"limit", "after"} for q in queries[1:])  # Graph's own next URLs
    assert all(
        c.headers.get("authorization") == "<redacted>"
        for c in graph.calls
        if c.path.endswith("_templates")
    )


def test_the_walk_stops_at_the_page_cap(graph: FakeGraph, http_client: httpx.Client) -> None:
    graph.max_template_page_size = 1
    client = TemplateClient(graph.base_url, TOKEN, http=http_client, max_pages=4)

    listed = client.fetch(WABA_ID)

    assert not listed.complete
    assert list(listed.templates) == all_templates()[:4]


def test_a_next_url_on_another_host_is_not_followed(
    graph: FakeGraph, http_client: httpx.Client
) -> None:
    elsewhere = "http://127.0.0.2:9/v23.0/102290129340398/message_templates?after=x"
    page = {"data": [ORDER_READY], "paging": {"next": elsewhere}}
    graph.fail_next("GET", TEMPLATES, 200, body=page)

    with pytest.raises(TemplateFetchError) as caught:
        client_for(graph, http_client).fetch(WABA_ID)

    assert "origin" in caught.value.reason
    assert not caught.value.transient
    assert len(template_calls(graph)) == 1


def test_a_refused_token_is_an_auth_failure_without_the_token(
    graph: FakeGraph, http_client: httpx.Client
) -> None:
    with pytest.raises(TemplateFetchError) as caught:
        client_for(graph, http_client, token="EAAG-wrong-token").fetch(WABA_ID)

    assert caught.value.auth and not caught.value.transient
    assert "EAAG-wrong-token" not in repr(caught.value) + str(caught.value)


def test_missing_permission_is_an_auth_failure(graph: FakeGraph, http_client: httpx.Client) -> None:
    graph.fail_next("GET", TEMPLATES, 403, body=10)  # (#10) no permission for this action

    with pytest.raises(TemplateFetchError) as caught:
        client_for(graph, http_client).fetch(WABA_ID)

    assert caught.value.auth


def test_a_business_account_the_token_cannot_see_is_an_access_failure(
    graph: FakeGraph, http_client: httpx.Client
) -> None:
    """Graph answers 100/33 for an id that does not exist or that the token may not read."""
    with pytest.raises(TemplateFetchError) as caught:
        client_for(graph, http_client).fetch("999999999")

    assert caught.value.auth and not caught.value.transient
    assert "999999999" in caught.value.reason


def test_a_passing_outage_is_retried(graph: FakeGraph, http_client: httpx.Client) -> None:
    graph.fail_next("GET", TEMPLATES, 503, times=2)

    listed = client_for(graph, http_client).fetch(WABA_ID)

    assert len(listed.templates) == 10
    assert len(template_calls(graph)) == 3


def test_a_lasting_outage_is_transient(graph: FakeGraph, http_client: httpx.Client) -> None:
    graph.fail_next("GET", TEMPLATES, 500, times=3)

    with pytest.raises(TemplateFetchError) as caught:
        client_for(graph, http_client).fetch(WABA_ID)

    assert caught.value.transient


# ---- choosing ----


def test_only_approved_sendable_templates_are_kept_in_metas_shape() -> None:
    chosen = usable_templates(all_templates())

    assert chosen == [as_chatwoot_stores(t) for t in USABLE]
    assert chosen[2]["components"][1]["example"] == {"body_text": []}  # what Rails keeps
    assert [why_unusable(t) for t in LEFT_OUT] == [
        "an authentication template",
        "status REJECTED",
        "status PENDING",
        "a CATALOG button",
        "a LOCATION header",
        "a LIST component",
    ]


def test_a_template_with_a_product_component_is_not_kept() -> None:
    """Chatwoot's picker hides PRODUCT components; a product needs an ``action`` parameter the
    picker cannot fill, so it is left out, and the usable template beside it is kept."""
    product = {
        "id": "2007",
        "name": "featured_product",
        "language": "en_US",
        "status": "APPROVED",
        "category": "MARKETING",
        "components": [{"type": "BODY", "text": "Have a look at this one"}, {"type": "PRODUCT"}],
    }

    assert usable_templates([product, copy.deepcopy(HELLO)]) == [as_chatwoot_stores(HELLO)]
    assert why_unusable(product) == "a PRODUCT component"


def test_a_template_listed_twice_is_kept_once() -> None:
    assert usable_templates([ORDER_READY, ORDER_READY]) == [as_chatwoot_stores(ORDER_READY)]


def test_the_spec_remembers_format_and_buttons() -> None:
    assert TemplateSpec.of(ORDER_READY) == TemplateSpec(
        "order_ready_pickup", "en_US", "POSITIONAL", "IMAGE", ("URL",)
    )
    coupon = TemplateSpec.of(COUPON)
    assert coupon.named and coupon.button_types == ("QUICK_REPLY", "COPY_CODE")
    assert TemplateSpec.from_dict(coupon.to_dict()) == coupon
    assert coupon.matches("coupon_offer", "EN_us") and not coupon.matches("coupon_offer", "en")


# ---- building ----


def order_ready() -> OutgoingTemplate:
    link = "https://cdn.example.com/wootbridge/pickup-banner.jpg"
    return OutgoingTemplate(
        name="order_ready_pickup",
        language="en_US",
        body=(("1", "Sheena"), ("2", "A-10427")),
        header_media=HeaderMedia("image", link),
        buttons=(TemplateButton(0, "url", "A-10427"),),
    )


def test_the_template_object_is_metas_example() -> None:
    example = json.loads((DATA / "whatsapp_cloud/2026/requests/send_template.json").read_text())

    assert template_object(order_ready()) == example["template"]


def test_named_parameters_quick_replies_and_coupon_codes() -> None:
    template = OutgoingTemplate(
        name="coupon_offer",
        language="en_US",
        body=(("customer_name", "Sheena"), ("discount", "20%")),
        buttons=(TemplateButton(1, "copy_code", "SAVE20"), TemplateButton(0, "quick_reply", "NO")),
        named=True,
    )

    assert template_object(template)["components"] == [
        {
            "type": "body",
            "parameters": [
                {"type": "text", "text": "Sheena", "parameter_name": "customer_name"},
                {"type": "text", "text": "20%", "parameter_name": "discount"},
            ],
        },
        {
            "type": "button",
            "sub_type": "quick_reply",
            "index": "0",
            "parameters": [{"type": "payload", "payload": "NO"}],
        },
        {
            "type": "button",
            "sub_type": "copy_code",
            "index": "1",
            "parameters": [{"type": "coupon_code", "coupon_code": "SAVE20"}],
        },
    ]


def test_a_document_header_carries_its_file_name_and_no_parameters_no_components() -> None:
    document = OutgoingTemplate(
        "invoice", "en", header_media=HeaderMedia("document", "https://x.example/a.pdf", "a.pdf")
    )
    assert template_object(document)["components"] == [
        {
            "type": "header",
            "parameters": [
                {
                    "type": "document",
                    "document": {"link": "https://x.example/a.pdf", "filename": "a.pdf"},
                }
            ],
        }
    ]
    assert template_object(OutgoingTemplate("hello_world", "en_US")) == {
        "name": "hello_world",
        "language": {"policy": "deterministic", "code": "en_US"},
    }


def test_the_cloud_sender_sends_exactly_metas_example(
    graph: FakeGraph, http_client: httpx.Client
) -> None:
    example = json.loads((DATA / "whatsapp_cloud/2026/requests/send_template.json").read_text())
    sender = CloudSender(graph.base_url, PHONE_ID, TOKEN, http=http_client, retry_max_wait=0.01)

    result = sender.send_template("16505551234", order_ready())

    [sent] = graph.sent
    assert sent.body == example
    assert result.message_id == sent.message_id


def test_a_template_meta_does_not_know_fails_with_132001(
    graph: FakeGraph, http_client: httpx.Client
) -> None:
    sender = CloudSender(graph.base_url, PHONE_ID, TOKEN, http=http_client, retry_max_wait=0.01)

    with pytest.raises(SendFailure) as caught:
        sender.send_template("16505551234", OutgoingTemplate("spring_sale", "en_US"))

    assert caught.value.code == 132001
    assert caught.value.external_error == (
        "132001: Template name does not exist in the translation"
    )
    assert graph.sent == []
