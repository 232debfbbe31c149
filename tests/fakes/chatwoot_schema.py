"""Request-body parsing and contract validation for the fake Chatwoot.

Every request body the fake receives is checked against the project's description of Chatwoot's
API (``tests/fakes/contracts/chatwoot.json``: per endpoint, a JSON Schema of the body, derived from
Chatwoot's OpenAPI description), so a client bug shows up as a failing test rather than as a
surprise against a real server.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.fakes.contracts import load_contract, split_endpoint

CONTRACT_URI = "urn:wootbridge-chatwoot-contract"
JSON_KIND = "application/json"
FORM_KIND = "multipart/form-data"


@dataclass
class UploadedFile:
    """One file part of a multipart body."""

    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class ParsedBody:
    """What a request carried: ``kind`` is JSON_KIND, FORM_KIND or None (no usable body)."""

    kind: str | None = None
    json: Any = None
    form: dict[str, Any] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)
    error: str | None = None

    def params(self) -> dict[str, Any]:
        """The body as Rails ``params`` would see it (form values stay strings)."""
        if self.kind == JSON_KIND and isinstance(self.json, dict):
            return dict(self.json)
        if self.kind == FORM_KIND:
            return dict(self.form)
        return {}


def _header_param(header_value: str, name: str, param: str) -> str | None:
    msg = Message()
    msg[name] = header_value
    value = msg.get_param(param, header=name)
    return value if isinstance(value, str) else None


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, Any], list[UploadedFile]]:
    """Split a multipart/form-data body into text fields and files (repeated names -> list)."""
    boundary = _header_param(content_type, "content-type", "boundary")
    if not boundary:
        raise ValueError("multipart body without boundary")
    fields: dict[str, Any] = {}
    files: list[UploadedFile] = []
    for chunk in body.split(b"--" + boundary.encode("latin-1"))[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        data = data.removesuffix(b"\r\n")
        headers = BytesHeaderParser().parsebytes(head + b"\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        filename = headers.get_filename()
        if filename is not None:
            ctype = headers.get("content-type", "application/octet-stream")
            files.append(UploadedFile(name, filename, ctype, data))
        else:
            _add_field(fields, name, data.decode("utf-8", "replace"))
    return fields, files


def _add_field(fields: dict[str, Any], name: str, value: Any) -> None:
    if name not in fields:
        fields[name] = [value] if name.endswith("[]") else value
    elif isinstance(fields[name], list):
        fields[name].append(value)
    else:
        fields[name] = [fields[name], value]


def parse_body(content_type: str | None, body: bytes) -> ParsedBody:
    """Parse like Rails does: JSON only with a JSON content type, forms only as multipart."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if not body:
        return ParsedBody()
    if ctype == JSON_KIND or ctype.endswith("+json"):
        try:
            return ParsedBody(kind=JSON_KIND, json=json.loads(body))
        except ValueError as exc:
            return ParsedBody(error=f"malformed JSON body: {exc}")
    if ctype == FORM_KIND:
        try:
            fields, files = parse_multipart(body, content_type or "")
        except ValueError as exc:
            return ParsedBody(error=str(exc))
        return ParsedBody(kind=FORM_KIND, form=fields, files=files)
    return ParsedBody()


def _coerce(value: Any, schema: dict[str, Any]) -> Any:
    """Turn a form string into what the schema expects, when it plainly is one (lenient)."""
    if not isinstance(value, str):
        return value
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "boolean" in kinds and value in ("true", "false"):
        return value == "true"
    if ("integer" in kinds or "number" in kinds) and re.fullmatch(r"-?\d+", value):
        return int(value)
    if "number" in kinds and re.fullmatch(r"-?\d+\.\d+", value):
        return float(value)
    if ("object" in kinds or "array" in kinds) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def template_to_regex(template: str) -> re.Pattern[str]:
    """``/api/v1/accounts/{account_id}/x`` -> ``^/api/v1/accounts/[^/]+/x$``."""
    parts = re.split(r"(\{[^}]+\})", template)
    body = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{body}$")


@dataclass
class _Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    required: bool
    schemas: dict[str, dict[str, Any]]  # media kind -> schema


class SchemaBook:
    """The contract's request-body schemas, matched by method + concrete path."""

    def __init__(self, contract_path: Path) -> None:
        document = load_contract(contract_path)
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(CONTRACT_URI, resource)
        self._operations = self._collect(document)
        self._validators: dict[int, Draft202012Validator] = {}

    def _collect(self, document: dict[str, Any]) -> list[_Operation]:
        ops: list[_Operation] = []
        for key, endpoint in document["endpoints"].items():
            body = endpoint.get("body")
            if not body:
                continue
            method, template = split_endpoint(key)
            required = bool(endpoint.get("body_required"))
            ops.append(_Operation(method, template, template_to_regex(template), required, body))
        # Literal segments beat placeholders: /contacts/search before /contacts/{id}.
        ops.sort(key=lambda op: op.template.count("{"))
        return ops

    def find(self, method: str, path: str) -> _Operation | None:
        for op in self._operations:
            if op.method == method and op.pattern.match(path):
                return op
        return None

    def _validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        key = id(schema)
        if key not in self._validators:
            rebased = self._rebase(schema)
            self._validators[key] = Draft202012Validator(rebased, registry=self._registry)
        return self._validators[key]

    def _rebase(self, schema: Any) -> Any:
        """Point local ``#/...`` refs at the registered contract document."""
        if isinstance(schema, dict):
            return {
                k: (CONTRACT_URI + v if k == "$ref" and v.startswith("#") else self._rebase(v))
                for k, v in schema.items()
            }
        if isinstance(schema, list):
            return [self._rebase(v) for v in schema]
        return schema

    def validate(self, method: str, path: str, parsed: ParsedBody) -> list[str]:
        """Readable problems with this request's body; empty when it fits (or has no schema)."""
        where = f"{method} {path}"
        if parsed.error:
            return [f"{where}: {parsed.error}"]
        op = self.find(method, path)
        if op is None:
            return []
        if parsed.kind is None:
            return [f"{where}: request body is required"] if op.required else []
        schema = op.schemas.get(parsed.kind)
        instance: Any = parsed.json
        if parsed.kind == FORM_KIND:
            schema = schema or op.schemas.get(JSON_KIND)
            instance = self._form_instance(parsed, schema or {})
        if schema is None:
            return [f"{where}: content type {parsed.kind} is not accepted by {op.template}"]
        errors = sorted(self._validator(schema).iter_errors(instance), key=lambda e: list(e.path))
        return [f"{where}: {e.message} (at {e.json_path})" for e in errors]

    def _form_instance(self, parsed: ParsedBody, schema: dict[str, Any]) -> dict[str, Any]:
        props = schema.get("properties", {})
        instance = {k: _coerce(v, props.get(k, {})) for k, v in parsed.form.items()}
        for upload in parsed.files:  # binary parts validate as their file names
            _add_field(instance, upload.field, upload.filename)
        return instance


@lru_cache(maxsize=4)
def load_schema_book(path: str) -> SchemaBook:
    """One schema book per contract file and process."""
    return SchemaBook(Path(path))
