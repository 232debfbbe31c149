"""docs/api.md stays true: its routes are the app's routes, its error messages the app's messages.

Routes are read from the route table of the page and from the Starlette app. Error messages are
read from the page's ``| status | `message` | ... |`` rows and, on the code side, from every
string the code under ``app/`` can build (literals, module constants and f-strings, whose
placeholders match anything). A message the page names must be one the code can produce, and
every message an endpoint raises itself (``ApiError(status, ...)`` under ``app/api``) must be on
the page with its status.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from starlette.routing import Route

from app.config import Settings
from app.main import create_app

ROOT = Path(__file__).resolve().parents[1]
API_DOC = ROOT / "docs" / "api.md"
ROUTE_ROW = re.compile(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)` \|", re.MULTILINE)
MESSAGE_ROW = re.compile(r"^\| ([1-5]\d\d) \| `([^`]+)` \|", re.MULTILINE)
PLACEHOLDER = re.compile(r"<[^<>]+>")
MIN_LITERAL = 6  # f"{a}: {b}" matches any text; a message needs some words of its own


def _doc_routes() -> set[tuple[str, str]]:
    text = API_DOC.read_text(encoding="utf-8")
    return {(method, re.sub(r":(\w+)", r"{\1}", path)) for method, path in ROUTE_ROW.findall(text)}


def _app_routes(settings: Settings) -> set[tuple[str, str]]:
    app = create_app(settings)
    found = set()
    for route in app.routes:
        assert isinstance(route, Route)
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, route.path))
    return found


def _normalise_params(path: str) -> str:
    """Path parameter names differ between the page and the code; their places must not."""
    return re.sub(r"\{\w+\}", "{}", path)


def test_every_route_is_documented_and_every_documented_route_exists(settings: Settings) -> None:
    documented = {(m, _normalise_params(p)) for m, p in _doc_routes()}
    served = {(m, _normalise_params(p)) for m, p in _app_routes(settings)}
    assert documented, "the route table of docs/api.md was not found"
    assert served - documented == set(), "routes missing from docs/api.md"
    assert documented - served == set(), "docs/api.md lists routes the app does not serve"


# ---- messages ----


Template = tuple[str | None, ...]  # literal parts, None where a placeholder goes


def _template_of(node: ast.expr, constants: dict[str, str]) -> Template | None:
    """The strings ``node`` can evaluate to: literal parts and placeholders."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return (node.value,)
    if isinstance(node, ast.Name) and node.id in constants:
        return (constants[node.id],)
    if isinstance(node, ast.JoinedStr):
        return tuple(
            v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else None
            for v in node.values
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _template_of(node.left, constants)
        right = _template_of(node.right, constants)
        return None if left is None or right is None else left + right
    return None


def _regex(template: Template) -> re.Pattern[str]:
    return re.compile("".join(".+" if p is None else re.escape(p) for p in template), re.DOTALL)


def _example(template: Template) -> str:
    return "".join("x" if p is None else p for p in template)


def _doc_template(message: str) -> Template:
    parts: list[str | None] = []
    for i, piece in enumerate(PLACEHOLDER.split(message)):
        if i:
            parts.append(None)
        parts.append(piece)
    return tuple(parts)


def _modules() -> list[ast.Module]:
    """The code that produces messages. The OpenAPI document quotes every message itself, so
    its modules would make any documented message look producible: they are left out."""
    return [
        ast.parse(p.read_text(encoding="utf-8"))
        for p in sorted((ROOT / "app").rglob("*.py"))
        if not p.name.startswith("openapi")
    ]


def _string_constants(modules: list[ast.Module]) -> dict[str, str]:
    constants: dict[str, str] = {}
    for module in modules:
        for node in module.body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                constants[node.targets[0].id] = node.value.value
    return constants


def _code_templates() -> list[Template]:
    """Every string the code can build."""
    modules = _modules()
    constants = _string_constants(modules)
    templates: list[Template] = [(v,) for v in constants.values()]
    for module in modules:
        for node in ast.walk(module):
            if isinstance(node, ast.JoinedStr | ast.BinOp | ast.Constant):
                template = _template_of(node, constants)
                if template and _literal_length(template) >= MIN_LITERAL:
                    templates.append(template)
    return templates


def _literal_length(template: Template) -> int:
    return sum(len(p) for p in template if p is not None)


def _raised_by_endpoints() -> set[tuple[int, Template]]:
    """``(status, message)`` of every ``ApiError(<int>, <message>)`` under ``app/api``."""
    raised = set()
    api_modules = [
        ast.parse(p.read_text(encoding="utf-8")) for p in sorted((ROOT / "app/api").glob("*.py"))
    ]
    constants = _string_constants(_modules())
    for module in api_modules:
        for node in ast.walk(module):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "ApiError"
                and len(node.args) >= 2
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, int)
            ):
                template = _template_of(node.args[1], constants)
                if template is not None:
                    raised.add((node.args[0].value, template))
    return raised


def _doc_messages() -> list[tuple[int, str]]:
    text = API_DOC.read_text(encoding="utf-8")
    return [(int(status), message) for status, message in MESSAGE_ROW.findall(text)]


def test_every_documented_message_is_one_the_code_can_produce() -> None:
    patterns = [_regex(t) for t in _code_templates()]
    messages = _doc_messages()
    assert len(messages) > 20, "the error tables of docs/api.md were not found"
    unknown = [
        m for _, m in messages if not any(p.fullmatch(_example(_doc_template(m))) for p in patterns)
    ]
    assert unknown == [], "docs/api.md names messages the code never produces"


def test_every_message_an_endpoint_raises_is_documented_with_its_status() -> None:
    documented = [(status, _regex(_doc_template(m))) for status, m in _doc_messages()]
    missing = []
    for status, template in _raised_by_endpoints():
        example = _example(template)
        if not any(s == status and regex.fullmatch(example) for s, regex in documented):
            missing.append((status, example))
    assert missing == [], "docs/api.md lacks messages that endpoints raise"
