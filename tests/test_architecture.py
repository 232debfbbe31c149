"""The arrows between packages (README "Layout"), checked on the source's imports (AST, every
``import`` and ``from … import`` anywhere in a module, lazy ones included)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import workers
from app import jobs

ROOT = Path(__file__).resolve().parent.parent
HTTP_FRAMEWORKS = ("starlette", "uvicorn", "httpx_sse")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(*packages: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((ROOT / package.replace(".", "/")).rglob("*.py")):
            found[module_name(path)] = path
    return found


ALL = modules("app", "workers")


def imports_of(path: Path) -> Iterator[str]:
    return imports_in(path.read_text(), module_name(path), path.name == "__init__.py")


def imports_in(source: str, name: str, is_package: bool) -> Iterator[str]:
    """Every module the source of module ``name`` imports (for ``from a import b``: ``a.b``
    when that is a module of ours, else ``a``), relative imports resolved."""
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield candidate if candidate in ALL else base


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(sources: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{name} imports {target}"
        for name, path in ALL.items()
        if within(name, sources)
        for target in imports_of(path)
        if any(within(target, package) for package in forbidden)
    ]


ARROWS = [
    ("app.relay.inbound", ("app.relay.outbound",)),
    ("app.relay.outbound", ("app.relay.inbound",)),
    ("app.integrations", ("app.relay", "app.management", "app.api", "workers")),
    ("app.store", ("app.relay", "app.integrations", "app.management", "app.api", "workers")),
    ("app.relay", ("app.api", "app.management", "workers", "dramatiq", *HTTP_FRAMEWORKS)),
    ("app.management", ("app.api", "workers", *HTTP_FRAMEWORKS)),
    ("app.api", ("workers",)),
]


@pytest.mark.parametrize(("sources", "forbidden"), ARROWS, ids=[a[0] for a in ARROWS])
def test_package_never_imports_what_sits_above_or_beside_it(
    sources: str, forbidden: tuple[str, ...]
) -> None:
    assert any(within(name, sources) for name in ALL), f"no modules in {sources}"
    assert violations(sources, forbidden) == []


def endpoint_modules() -> set[str]:
    """Modules of ``app.api`` that declare routes (a top-level ``routes = [...]``)."""
    found = set()
    for name, path in modules("app.api").items():
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            if any(isinstance(t, ast.Name) and t.id == "routes" for t in targets):
                found.add(name)
    return found


def test_endpoint_modules_do_not_import_each_other() -> None:
    endpoints = endpoint_modules()
    assert {"app.api.webhooks", "app.api.chatwoot", "app.api.instances"} <= endpoints
    crossing = [
        f"{name} imports {target}"
        for name in sorted(endpoints)
        for target in imports_of(ALL[name])
        if target in endpoints and target != name
    ]
    assert crossing == []


def test_the_checker_sees_lazy_and_relative_imports() -> None:
    """A lazy import inside a function (how app/api/queue.py once reached ``workers``) and a
    relative one are both seen."""
    sample = (
        "def send() -> None:\n"
        "    from workers.relay import lane_actor\n"
        "from .deliver import InboundHandler\n"
        "from ..outbound import send\n"
    )
    found = set(imports_in(sample, "app.relay.inbound.sample", is_package=False))
    assert found == {"workers.relay", "app.relay.inbound.deliver", "app.relay.outbound.send"}
    assert "workers" not in {t.split(".")[0] for t in imports_of(ROOT / "app/api/queue.py")}


def test_web_process_enqueues_the_actors_the_workers_declare() -> None:
    """``app.jobs`` names every actor the web process sends to; each is declared by
    ``workers`` under that name, on that queue."""
    declared = {name: workers.broker.get_actor(name).queue_name for name in jobs.QUEUES}
    assert declared == jobs.QUEUES
