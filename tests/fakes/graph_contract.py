"""What the fake Graph accepts on ``POST /{phone-number-id}/messages``, from our own description.

``tests/fakes/contracts/graph.json`` describes each message ``type`` (merged with the common
envelope) and the read receipt; :func:`message_validators` turns it into one JSON Schema
validator per type, :func:`message_problems` says why a body is refused. The rules that differ
from Meta's v23.0 OpenAPI file are marked there (``x-optional``, ``x-deviation``,
``x-undocumented``) with their reasons; ``tests/conformance`` checks the rest against it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from tests.fakes.contracts import contract_path, load_contract

DEFAULT_SPEC = contract_path("graph")
MESSAGES_ENDPOINT = "POST /{phone-number-id}/messages"
READ = "read"
# A business-scoped user id: country code, ".", optionally "ENT.", up to 128 alphanumerics.
BSUID = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")


def message_schemas(contract: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``type`` -> the full JSON Schema of that message body (``"read"``: the read receipt)."""
    endpoint = contract["endpoints"][MESSAGES_ENDPOINT]
    envelope = endpoint["envelope"]
    schemas = {kind: _merged(envelope, part) for kind, part in endpoint["messages"].items()}
    schemas[READ] = endpoint["read_receipt"]
    return {kind: {"$defs": contract["$defs"], **schema} for kind, schema in schemas.items()}


def _merged(envelope: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """One object schema: properties and required keys of both, the envelope's ``allOf`` and
    annotations (``x-optional``)."""
    notes = {key: value for key, value in envelope.items() if key.startswith("x-")}
    merged: dict[str, Any] = {"type": "object", **notes, **part}
    merged["properties"] = {**envelope["properties"], **part.get("properties", {})}
    required = [*envelope.get("required", []), *part.get("required", [])]
    merged["required"] = list(dict.fromkeys(required))
    merged["allOf"] = [*envelope.get("allOf", []), *part.get("allOf", [])]
    return merged


@lru_cache(maxsize=2)
def message_validators(spec_path: str) -> dict[str, Draft202012Validator]:
    """One validator per message ``type``, plus ``"read"`` for read receipts."""
    schemas = message_schemas(load_contract(spec_path))
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)
    return {kind: Draft202012Validator(schema) for kind, schema in schemas.items()}


def message_kind(body: dict[str, Any]) -> str:
    """Which schema a body is checked against: a read receipt, else its ``type`` (default text)."""
    return READ if "status" in body else str(body.get("type", "text"))


def message_problems(body: Any, spec_path: str | Path = DEFAULT_SPEC) -> list[str]:
    """Why ``body`` is not a valid send-message request (empty when it is)."""
    if not isinstance(body, dict):
        return ["<body>: not a JSON object"]
    validators = message_validators(str(spec_path))
    kind = message_kind(body)
    if kind not in validators:
        return [f"type: unsupported message type {kind!r}"]
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<body>'}: {_message(e)[:200]}"
        for e in validators[kind].iter_errors(body)
    ]


def _message(error: Any) -> str:
    """jsonschema's message, or the rule's own wording (``$comment``) for a failed ``anyOf``."""
    comment = error.schema.get("$comment") if isinstance(error.schema, dict) else None
    if error.validator == "anyOf" and isinstance(comment, str):
        return comment
    return str(error.message)
