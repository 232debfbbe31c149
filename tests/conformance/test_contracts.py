"""Our descriptions of Chatwoot's and Graph's APIs (``tests/fakes/contracts``) against upstream.

With ``WOOTBRIDGE_REFERENCE_DIR`` pointing at the upstream specs: every endpoint we describe
exists there with that method (bar the real routes the swagger lacks, marked ``x-undocumented``
with the reason), every body conforms (see ``schema_compare``), Meta's own request examples are
accepted by the fake Graph, and our test data equals the upstream bodies it was taken from.
Without it, these tests are skipped with :data:`upstream.SKIP_REASON`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conformance import upstream
from tests.conformance.schema_compare import Document, compare
from tests.fakes.contracts import contract_path, load_contract, split_endpoint
from tests.fakes.graph_contract import (
    MESSAGES_ENDPOINT,
    message_kind,
    message_problems,
    message_schemas,
)
from tests.reference import DATA

CHATWOOT = load_contract(contract_path("chatwoot"))
GRAPH = load_contract(contract_path("graph"))
UNDOCUMENTED_CHATWOOT_ROUTES = {
    "POST /api/v1/accounts/{account_id}/contact_inboxes/filter",
    "PATCH /api/v1/accounts/{account_id}/conversations/{conversation_id}/messages/{message_id}",
}
# Our test data file -> the name of Meta's example webhook body it was taken from, unchanged.
META_WEBHOOK_EXAMPLES = {
    "inbound_text.json": "Text Message",
    "inbound_text_context_product.json": "Text Message with Context (Product Inquiry)",
    "inbound_reaction.json": "Reaction Message",
    "inbound_image.json": "Image Message",
    "inbound_location.json": "Location Message",
    "inbound_contacts.json": "Contact Sharing Message",
    "inbound_unsupported.json": "Unsupported Message",
    "inbound_button_quick_reply.json": "Button Message",
    "inbound_interactive_list_reply.json": "Interactive List Reply Message",
    "inbound_interactive_button_reply.json": "Interactive Button Reply Message",
    "inbound_system_number_change.json": "System Message",
}
# Meta's send examples our description refuses, and why (the spec's own schemas refuse them too).
KNOWN_EXAMPLE_GAPS = {
    "Send Catalog Template Message": "sub_type 'CATALOG' and parameter type 'action': not in enums",
    "Send Flow Template Message": "sub_type 'flow' and parameter type 'action': not in enums",
    "Send Reply to List Message": "an interactive body without 'type', which means text",
    "Send Sample Issue Resolution Template": "button 'text' parameters are booleans, not strings",
}


def endpoint_ids(contract: dict[str, Any]) -> list[str]:
    return list(contract["endpoints"])


def upstream_body(operation: dict[str, Any], content_type: str) -> dict[str, Any] | None:
    content = (operation.get("requestBody") or {}).get("content", {})
    media = content.get(content_type)
    return None if media is None else media.get("schema", {})


# ---- endpoints ----


@pytest.mark.parametrize("key", endpoint_ids(CHATWOOT))
def test_chatwoot_endpoint_exists_upstream(key: str) -> None:
    method, template = split_endpoint(key)
    known = upstream.operations(upstream.swagger())
    undocumented = "x-undocumented" in CHATWOOT["endpoints"][key]
    assert ((method, upstream.shape(template)) in known) is not undocumented, key


def test_only_the_known_chatwoot_routes_are_undocumented() -> None:
    marked = {k for k, e in CHATWOOT["endpoints"].items() if "x-undocumented" in e}
    assert marked == UNDOCUMENTED_CHATWOOT_ROUTES


@pytest.mark.parametrize("key", endpoint_ids(GRAPH))
def test_graph_endpoint_exists_upstream(key: str) -> None:
    method, template = split_endpoint(key)
    known = upstream.operations(upstream.meta_spec(), upstream.GRAPH_PREFIX)
    assert (method, upstream.shape(template)) in known, key
    assert "x-undocumented" not in GRAPH["endpoints"][key]


# ---- request bodies ----


@pytest.mark.parametrize(
    "key",
    [k for k, e in CHATWOOT["endpoints"].items() if "body" in e and "x-undocumented" not in e],
)
def test_chatwoot_bodies_conform(key: str) -> None:
    swagger = upstream.swagger()
    method, template = split_endpoint(key)
    operation = upstream.operations(swagger)[(method, upstream.shape(template))]
    endpoint = CHATWOOT["endpoints"][key]
    if (operation.get("requestBody") or {}).get("required"):
        assert endpoint.get("body_required"), f"{key}: upstream requires a body"
    problems = []
    for content_type, schema in endpoint["body"].items():
        theirs = upstream_body(operation, content_type)
        assert theirs is not None, f"{key}: upstream takes no {content_type}"
        where = f"{key} {content_type}"
        problems += compare(schema, Document(CHATWOOT), theirs, Document(swagger), where)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("kind", [k for k in message_schemas(GRAPH) if k != "read"])
def test_graph_message_bodies_conform(kind: str) -> None:
    spec = upstream.meta_spec()
    mapping = spec["components"]["schemas"]["Message"]["discriminator"]["mapping"]
    ours = message_schemas(GRAPH)[kind]
    problems = compare(ours, Document(ours), {"$ref": mapping[kind]}, Document(spec), kind)
    assert not problems, "\n".join(problems)


def test_graph_upload_body_conforms() -> None:
    spec = upstream.meta_spec()
    operation = upstream.operations(spec, upstream.GRAPH_PREFIX)[("POST", "/{}/media")]
    ours = GRAPH["endpoints"]["POST /{phone-number-id}/media"]["body"]["multipart/form-data"]
    theirs = upstream_body(operation, "multipart/form-data")
    problems = compare(ours, Document(GRAPH), theirs, Document(spec), "upload")
    assert not problems, "\n".join(problems)


def test_metas_send_examples_are_accepted() -> None:
    """Every example Meta gives for a message kind we describe passes, bar the known gaps."""
    spec = upstream.meta_spec()
    operation = upstream.operations(spec, upstream.GRAPH_PREFIX)[("POST", "/{}/messages")]
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    ours = message_schemas(GRAPH)
    checked = {n: e["value"] for n, e in examples.items() if message_kind(e["value"]) in ours}
    refused = {name for name, body in checked.items() if message_problems(body)}
    assert refused == set(KNOWN_EXAMPLE_GAPS)
    assert "Send typing indicator and read receipt" in checked
    assert len(checked) - len(refused) >= 35


# ---- test data ----


def data_files() -> list[str]:
    return sorted(str(p.relative_to(DATA)) for p in DATA.rglob("*.json"))


def upstream_twin(root: Path, relative: str) -> Path:
    """Where a test data file's upstream original is (``whatsapp_cloud`` -> ``whatsapp-cloud``)."""
    folder, _, rest = relative.partition("/")
    return root / folder.replace("_", "-") / rest


@pytest.mark.parametrize("relative", data_files())
def test_test_data_equals_its_upstream_original(relative: str) -> None:
    twin = upstream_twin(upstream.reference_root(), relative)
    ours = json.loads((DATA / relative).read_text(encoding="utf-8"))
    assert twin.is_file(), f"{relative}: no upstream original at {twin}"
    assert ours == json.loads(twin.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(META_WEBHOOK_EXAMPLES))
def test_test_data_equals_metas_webhook_example(name: str) -> None:
    operation = upstream.meta_spec()["paths"]["/whatsapp/webhooks"]["post"]
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    ours = json.loads((DATA / "whatsapp_cloud" / name).read_text(encoding="utf-8"))
    assert ours == examples[META_WEBHOOK_EXAMPLES[name]]["value"]


# ---- our descriptions themselves (need no upstream) ----


def x_annotations(node: Any, path: str = "") -> list[tuple[str, str, Any]]:
    """Every ``x-*`` annotation in a description: (where, keyword, value)."""
    found: list[tuple[str, str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("x-"):
                found.append((path, key, value))
            found += x_annotations(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += x_annotations(value, f"{path}/{index}")
    return found


@pytest.mark.parametrize("contract", [CHATWOOT, GRAPH], ids=["chatwoot", "graph"])
def test_every_difference_from_upstream_gives_its_reason(contract: dict[str, Any]) -> None:
    marks = x_annotations(contract)
    assert marks
    for where, keyword, value in marks:
        assert keyword in ("x-undocumented", "x-optional", "x-deviation"), (where, keyword)
        reasons = value.values() if isinstance(value, dict) else [value]
        assert all(isinstance(r, str) and len(r) > 20 for r in reasons), (where, keyword)


def test_messages_endpoint_is_described() -> None:
    assert set(message_schemas(GRAPH)) >= {"text", "image", "audio", "video", "document", "read"}
    assert MESSAGES_ENDPOINT in GRAPH["endpoints"]
