"""The package layout's promises, read from the source with `ast`: the module import graph of
providers/, runtime/, blackboard/ and agents/ has no circle, and imports only point down.

Every import counts, wherever it stands: at the top, inside a function, or under
`if TYPE_CHECKING:` (a late import that dodges a circle is still a circle)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("providers", "runtime", "blackboard", "agents")
#: the top of runtime/: the modules that start the actors and mount every router
ASSEMBLY = frozenset({"runtime.app", "runtime.serve_app", "runtime.deployment", "runtime.agent_routes"})
#: runtime/'s layers, lowest first; a module may import its own layer and the ones below
RUNTIME_LAYERS = (
    ("runtime.config", "runtime.settings", "runtime.logs", "runtime.metrics", "runtime.request_log",
     "runtime.simulator_process"),
    ("runtime.finops", "runtime.cache"),
    ("runtime.core",),
    ("runtime.http",),
    ("runtime.provider_pool", "runtime.wiring"),
    ("runtime.cli", *sorted(ASSEMBLY)),
)
MAX_LINES = 500


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports (`from a import b` counts as `a.b` when b is a module)."""

    def known_prefix(dotted: str) -> str | None:
        while dotted and dotted not in known:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        found.update(t for t in map(known_prefix, targets) if t and t != name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    known = set(modules)
    return {name: imported_modules(name, path, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def runtime_layer(module: str) -> int:
    for rank, members in enumerate(RUNTIME_LAYERS):
        if any(in_package(module, m) for m in members):
            return rank
    raise AssertionError(f"{module} is in no layer of RUNTIME_LAYERS: place it")


GRAPH = import_graph()


def edges_where(source_pred, target_pred) -> list[str]:
    return sorted(f"{a} -> {b}" for a, targets in GRAPH.items() if source_pred(a)
                  for b in targets if target_pred(b))


def test_the_graph_sees_the_imports_it_should():
    """The reader itself works: known edges of each kind are found."""
    assert "runtime.core.routing" in GRAPH["runtime.core.router"]
    assert "providers.types" in GRAPH["providers.actor"]
    assert "agents.coordinator" in GRAPH["runtime.app"]
    assert "runtime.wiring" in GRAPH["agents.coordinator"]  # a function-local import counts


def test_find_cycle_reports_a_circle_and_none_on_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circle():
    assert find_cycle(GRAPH) is None


@pytest.mark.parametrize("lower", ["providers", "blackboard"])
def test_providers_and_blackboard_never_import_runtime_or_agents(lower):
    upward = edges_where(lambda a: in_package(a, lower),
                         lambda b: in_package(b, "runtime") or in_package(b, "agents"))
    assert upward == []


def test_runtime_imports_agents_only_from_the_assembly():
    assert edges_where(lambda a: in_package(a, "runtime") and a not in ASSEMBLY,
                       lambda b: in_package(b, "agents")) == []


def test_agents_never_import_the_http_edge_the_cli_or_the_assembly():
    above_core = lambda b: (in_package(b, "runtime.http") or in_package(b, "runtime.cli")  # noqa: E731
                            or b in ASSEMBLY)
    assert edges_where(lambda a: in_package(a, "agents"), above_core) == []


def test_runtime_imports_point_down_its_layers():
    upward = sorted(
        f"{a} -> {b}" for a, targets in GRAPH.items() if in_package(a, "runtime") and a != "runtime"
        for b in targets if in_package(b, "runtime") and b != "runtime" and runtime_layer(b) > runtime_layer(a)
    )
    assert upward == []


def test_no_module_over_500_lines():
    long = {name: n for name, path in all_modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
