"""The comparison of our schemas with upstream ones finds what it promises (no upstream needed)."""

from __future__ import annotations

from typing import Any

from tests.conformance.schema_compare import Document, compare

UPSTREAM: dict[str, Any] = {
    "components": {
        "schemas": {
            "Base": {
                "type": "object",
                "required": ["kind", "to"],
                "properties": {"kind": {"type": "string"}, "to": {"type": "string"}},
            },
            "Note": {
                "allOf": [
                    {"$ref": "#/components/schemas/Base"},
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "kind": {"enum": ["note"]},
                            "size": {"type": "number"},
                            "media": {
                                "oneOf": [
                                    {"required": ["id"], "properties": {"id": {"type": "string"}}},
                                    {
                                        "required": ["link"],
                                        "properties": {"link": {"type": "string"}},
                                    },
                                ]
                            },
                        },
                    },
                ]
            },
        }
    }
}
NOTE = {"$ref": "#/components/schemas/Note"}


def ours(**changes: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "required": ["kind", "to"],
        "additionalProperties": False,
        "properties": {
            "kind": {"const": "note"},
            "to": {"type": "string"},
            "size": {"type": "integer"},
            "media": {"oneOf": [{"required": ["id"], "properties": {"id": {"type": "string"}}}]},
        },
    }
    schema.update(changes)
    return schema


def problems(schema: dict[str, Any]) -> list[str]:
    return compare(schema, Document(schema), NOTE, Document(UPSTREAM), "note")


def test_a_faithful_schema_conforms() -> None:
    assert problems(ours()) == []


def test_types_values_and_unknown_properties_are_found() -> None:
    props = ours()["properties"]
    wrong = ours(properties={**props, "size": {"type": "string"}, "kind": {"const": "memo"}})
    found = problems(wrong)
    assert any("note.size: type ['string']" in p for p in found), found
    assert any("note.kind: values {'memo'}" in p for p in found), found
    extra = problems(ours(properties={**props, "colour": {"type": "string"}}))
    assert extra == ["note.colour: not an upstream property"]


def test_required_keys_and_closed_objects_are_found() -> None:
    assert problems(ours(required=["kind"])) == ["note: upstream requires 'to', ours does not"]
    assert problems(ours(required=["kind"], **{"x-optional": {"to": "a reason"}})) == []
    assert problems(ours(**{"x-optional": {"size": "a reason"}})) == [
        "note: x-optional 'size' is not required upstream"
    ]
    assert problems(ours(additionalProperties=True)) == [
        "note: upstream allows no other properties, ours does"
    ]


def test_annotations_must_be_true() -> None:
    props = ours()["properties"]
    marked = {**props, "size": {"type": "integer", "x-undocumented": "a reason"}}
    assert problems(ours(properties=marked)) == [
        "note.size: marked x-undocumented, but upstream has it"
    ]
    new = {**props, "colour": {"type": "string", "x-undocumented": "a reason"}}
    assert problems(ours(properties=new)) == []
    deviating = {**props, "size": {"type": "string", "x-deviation": "a reason"}}
    assert problems(ours(properties=deviating)) == []


def test_each_of_our_variants_needs_a_matching_upstream_variant() -> None:
    props = ours()["properties"]
    media = {"oneOf": [{"required": ["url"], "properties": {"url": {"type": "string"}}}]}
    found = problems(ours(properties={**props, "media": media}))
    assert found and all(p.startswith("note.media") for p in found), found
