"""The rules of docs/architecture.md, checked on the source: what may import what, and where.

These read the code (its AST), not its behaviour; each rule names the modules allowed to break
it and why, so a new exception is a visible decision in this file.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("eventsite", "events", "automations")
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            found[_module_name(path)] = path
    return found


@cache
def tree(name: str) -> ast.Module:
    return ast.parse(modules()[name].read_text(), filename=str(modules()[name]))


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = importer if modules()[importer].name == "__init__.py" else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imports(name: str) -> list[tuple[str, str | None, ast.AST]]:
    """(module imported, name taken from it or None, node) for every import in `name`."""
    out = []
    for node in ast.walk(tree(name)):
        if isinstance(node, ast.Import):
            out += [(alias.name, None, node) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(name, node)
            out += [(source, alias.name, node) for alias in node.names]
    return out


def project_edges(name: str) -> set[str]:
    """The project modules `name` imports (a submodule taken by `from pkg import sub` counts)."""
    edges = set()
    for source, taken, _ in imports(name):
        if taken and f"{source}.{taken}" in modules():
            edges.add(f"{source}.{taken}")
        elif source in modules():
            edges.add(source)
    edges.discard(name)
    return edges


def test_no_module_is_over_600_lines():
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_there_is_no_import_cycle_between_modules():
    graph = {name: project_edges(name) for name in modules()}
    cycles = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    assert cycles == []


def test_no_private_name_is_imported_from_another_module():
    private = [
        f"{name}: from {source} import {taken}"
        for name in modules()
        for source, taken, _ in imports(name)
        if taken and taken.startswith("_") and not taken.startswith("__") and source != name
    ]
    assert private == []


# Function-level imports hide the dependency graph; these are the ones with a reason.
NESTED_IMPORTS_ALLOWED = {
    # Django's documented place to connect signal handlers: models exist only after ready().
    ("events.apps", "events.audit"),
}


def _function_level_imports(name: str) -> list[str]:
    found = []
    for func in ast.walk(tree(name)):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Import | ast.ImportFrom):
                source = (
                    _resolve(name, node) if isinstance(node, ast.ImportFrom) else node.names[0].name
                )
                found.append(source)
    return found


def test_function_level_imports_are_only_the_documented_ones():
    nested = {
        (name, source)
        for name in modules()
        for source in _function_level_imports(name)
        if (name, source) not in NESTED_IMPORTS_ALLOWED
    }
    assert nested == set()


def test_exactly_one_module_builds_a_jinja_environment():
    builders = {
        name
        for name in modules()
        for source, taken, _ in imports(name)
        if source.startswith("jinja2")
        and (taken or "").endswith(("Environment", "SandboxedEnvironment"))
    }
    assert builders == {"events.templating"}


def _names_bound_to(name: str, module: str, attribute: str) -> tuple[set[str], set[str]]:
    """Local names for `module.attribute`, and local names for `module` itself, in `name`."""
    direct, via_module = set(), set()
    parent, _, leaf = module.rpartition(".")
    for node in ast.walk(tree(name)):
        if isinstance(node, ast.ImportFrom):
            source = _resolve(name, node)
            for alias in node.names:
                if source == module and alias.name == attribute:
                    direct.add(alias.asname or alias.name)
                if source == parent and alias.name == leaf:
                    via_module.add(alias.asname or alias.name)
    return direct, via_module


def _calls_to(name: str, module: str, attribute: str) -> int:
    direct, via_module = _names_bound_to(name, module, attribute)
    count = 0
    for node in ast.walk(tree(name)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (isinstance(func, ast.Name) and func.id in direct) or (
            isinstance(func, ast.Attribute)
            and func.attr == attribute
            and isinstance(func.value, ast.Name)
            and func.value.id in via_module
        ):
            count += 1
    if name == module:  # the defining module's own calls
        count += sum(
            1
            for node in ast.walk(tree(name))
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == attribute
        )
    return count


# Where a `schema.Event` may be constructed directly, instead of through
# `events.ingest.internal_event` (internal events) or `schema.parse_event` (anyone's input).
EVENT_CONSTRUCTORS = {
    "events.schema",  # the contract: parse_event, from_wire
    "events.queries",  # decoding stored rows
    "events.models",  # a stored row as the contract's value
}


def test_internal_events_are_built_only_by_the_one_builder():
    constructing = {
        name for name in modules() if _calls_to(name, "events.schema", "Event") and name
    }
    assert constructing <= EVENT_CONSTRUCTORS, constructing - EVENT_CONSTRUCTORS


# Modules that may query the event tables directly; everything else reads through
# `events.queries`.
LOG_READERS = {
    "events.queries",  # the read path
    "events.page_queries",  # the read path's second half (resources, stories, export)
    "events.totals",  # the read path's totals (exact when cheap, else estimated)
    "events.resource_counts",  # the read path's count-by/resource (streamed, or sampled)
    "events.page_plans",  # the read path's plan for a page (walk, or the criteria's index)
    "events.row_pages",  # the read path's pages from the resource rows (split from page_plans)
    "events.filters",  # the filter model's SQL evaluator, used by the read path
    "events.rollups",  # counts for the read path, kept by the write path
    "events.ingest",  # the write path
    "events.retention",  # deletes what has expired
    "events.admin",  # Django's admin, on the models
}


def test_every_reader_of_the_log_goes_through_queries():
    readers = set()
    for name in modules():
        direct: set[str] = set()
        for model in ("Event", "EventResource"):
            found, _ = _names_bound_to(name, "events.models", model)
            direct |= found
        for node in ast.walk(tree(name)):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "objects"
                and isinstance(node.value, ast.Name)
                and node.value.id in direct
            ):
                readers.add(name)
    assert readers <= LOG_READERS, readers - LOG_READERS


def test_no_page_imports_an_api_module_and_no_api_imports_a_page():
    crossing = []
    for name in modules():
        leaf = name.rpartition(".")[2]
        for edge in project_edges(name):
            edge_leaf = edge.rpartition(".")[2]
            is_api = edge_leaf == "api" or edge.startswith("events.api.views")
            if leaf == "views" and is_api:
                crossing.append((name, edge))
            if (leaf == "api" or name == "events.api.views") and edge_leaf == "views":
                crossing.append((name, edge))
    assert crossing == []


def test_the_sdk_imports_nothing_of_django_or_the_project():
    taken = {source.partition(".")[0] for source, _, _ in imports("events.client")}
    assert not taken & {"django", "rest_framework", "channels", *PACKAGES}


@pytest.mark.parametrize(
    "name", sorted(n for n in modules() if n.startswith("automations.triggers"))
)
def test_trigger_semantics_import_no_store_engine_or_action(name):
    allowed = {"events.schema", "events.labels"}
    project = {e for e in project_edges(name) if not e.startswith("automations.triggers")}
    assert project <= allowed
    assert not {s for s, _, _ in imports(name) if s.startswith("django")}


# The one module that makes outbound HTTP calls: it refuses private addresses (after DNS, on
# every redirect) and bounds redirects, answer size and time. Nothing else opens a connection.
HTTP_CLIENTS = ("httpx", "httpcore", "requests", "urllib3", "urllib.request", "http.client")


def test_only_the_guarded_client_makes_outbound_http_calls():
    callers = {
        name
        for name in modules()
        for source, _, _ in imports(name)
        if source.startswith(HTTP_CLIENTS) and name != "events.client"  # the SDK, not the app
    }
    assert callers <= {"automations.actions.outbound"}, callers
