"""Compare one of our request-body schemas with the upstream OpenAPI schema it was derived from.

Both sides are JSON Schema (OpenAPI 3.x flavoured upstream). A schema is first spread into its
*variants*: ``$ref`` followed, ``allOf`` merged, each ``oneOf``/``anyOf`` branch (or OpenAPI
``discriminator`` mapping) one variant. Each of our variants must fit some upstream variant:

- its type is one upstream allows (an integer fits a number), its values (``const``/``enum``) are
  upstream's values, unless marked ``x-deviation``;
- every key upstream requires is required here, unless listed in ``x-optional`` (which may only
  list keys upstream does require);
- ``additionalProperties: false`` upstream is ``false`` here too;
- every property declared here exists upstream (recursively compared), unless marked
  ``x-undocumented`` (which may only mark properties upstream does not have).

Problems are returned as readable strings, empty when the schema conforms.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
COMPOSITION = ("allOf", "oneOf", "anyOf", "discriminator")
PYTHON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null"}


class Document:
    """A JSON document whose local ``$ref`` pointers (``#/a/b``) can be followed."""

    def __init__(self, root: Schema) -> None:
        self.root = root

    def deref(self, node: Any) -> Schema:
        """``node`` with its ``$ref`` chain followed; sibling keys of a ``$ref`` win."""
        seen = 0
        while isinstance(node, dict) and "$ref" in node:
            target: Any = self.root
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            seen += 1
            if seen > 50:
                raise ValueError(f"$ref loop at {node.get('$ref')}")
        return node if isinstance(node, dict) else {}


def merge(a: Schema, b: Schema) -> Schema:
    """Both constraints as one object schema (an approximation of ``allOf`` good enough here)."""
    merged = {**a, **b}
    if "properties" in a or "properties" in b:
        merged["properties"] = {**a.get("properties", {})}
        for name, sub in b.get("properties", {}).items():
            before = merged["properties"].get(name)
            merged["properties"][name] = {**before, **sub} if isinstance(before, dict) else sub
    if "required" in a or "required" in b:
        merged["required"] = list(dict.fromkeys([*a.get("required", []), *b.get("required", [])]))
    if a.get("additionalProperties") is False or b.get("additionalProperties") is False:
        merged["additionalProperties"] = False
    return merged


def variants(node: Any, doc: Document, *, expand_discriminator: bool = True) -> list[Schema]:
    """The alternatives a schema allows, each as one merged object schema."""
    schema = doc.deref(node)
    mapping = (schema.get("discriminator") or {}).get("mapping")
    if expand_discriminator and mapping:
        # every mapped schema includes this one through its allOf
        return [v for ref in mapping.values() for v in variants({"$ref": ref}, doc)]
    results = [{k: v for k, v in schema.items() if k not in COMPOSITION}]
    for part in schema.get("allOf", []):
        part_variants = variants(part, doc, expand_discriminator=False)
        results = [merge(r, p) for r in results for p in part_variants]
    branches = schema.get("oneOf") or schema.get("anyOf")
    if branches:
        branch_variants = [v for b in branches for v in variants(b, doc)]
        results = [merge(r, b) for r in results for b in branch_variants]
    return results


def types_of(schema: Schema) -> set[str]:
    """The JSON types a schema allows (from ``type``, else its ``const``/``enum`` values)."""
    declared = schema.get("type")
    if declared is not None:
        found = set(declared) if isinstance(declared, list) else {declared}
    else:
        found = {PYTHON_TYPES[type(v)] for v in values_of(schema) or ()}
    if schema.get("nullable") is True:
        found.add("null")
    return found


def values_of(schema: Schema) -> set[Any] | None:
    """The values a schema allows (``const`` before ``enum``), None when unrestricted."""
    if "const" in schema:
        return {schema["const"]}
    if "enum" in schema:
        return set(schema["enum"])
    return None


def compare(
    ours: Any, ours_doc: Document, theirs: Any, their_doc: Document, path: str
) -> list[str]:
    """Why ``ours`` does not conform to ``theirs`` (see the module docstring)."""
    problems: list[str] = []
    upstream = variants(theirs, their_doc)
    for variant in variants(ours, ours_doc):
        attempts: list[list[str]] = [
            compare_one(variant, ours_doc, t, their_doc, path) for t in upstream
        ]
        best: list[str] = min(attempts, key=len)
        problems += best
    return problems


def compare_one(
    ours: Schema, ours_doc: Document, theirs: Schema, their_doc: Document, path: str
) -> list[str]:
    """One of our variants against one upstream variant."""
    problems = [] if ours.get("x-deviation") else _scalar_problems(ours, theirs, path)
    problems += _required_problems(ours, theirs, path)
    if (
        theirs.get("additionalProperties") is False
        and ours.get("additionalProperties") is not False
    ):
        problems.append(f"{path}: upstream allows no other properties, ours does")
    their_props = theirs.get("properties", {})
    for name, sub in ours.get("properties", {}).items():
        where = f"{path}.{name}"
        if ours_doc.deref(sub).get("x-undocumented"):
            if name in their_props:
                problems.append(f"{where}: marked x-undocumented, but upstream has it")
        elif name not in their_props:
            problems.append(f"{where}: not an upstream property")
        else:
            problems += compare(sub, ours_doc, their_props[name], their_doc, where)
    if "items" in ours and "items" in theirs:
        problems += compare(ours["items"], ours_doc, theirs["items"], their_doc, f"{path}[]")
    return problems


def _scalar_problems(ours: Schema, theirs: Schema, path: str) -> list[str]:
    ours_types, their_types = types_of(ours), types_of(theirs)
    if "number" in their_types:
        their_types = their_types | {"integer"}
    problems = []
    if their_types and not ours_types:
        problems.append(f"{path}: no type here, upstream says {sorted(their_types)}")
    elif their_types and not ours_types <= their_types:
        problems.append(f"{path}: type {sorted(ours_types)}, upstream {sorted(their_types)}")
    ours_values, their_values = values_of(ours), values_of(theirs)
    if their_values is not None and (ours_values is None or not ours_values <= their_values):
        problems.append(f"{path}: values {ours_values}, upstream only {sorted(their_values)}")
    return problems


def _required_problems(ours: Schema, theirs: Schema, path: str) -> list[str]:
    optional = ours.get("x-optional", {})
    required, their_required = set(ours.get("required", [])), set(theirs.get("required", []))
    problems = [
        f"{path}: upstream requires {key!r}, ours does not"
        for key in sorted(their_required - required - set(optional))
    ]
    problems += [
        f"{path}: x-optional {key!r} is not required upstream"
        for key in sorted(set(optional) - their_required)
    ]
    return problems
