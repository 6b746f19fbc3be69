"""No import cycles among our packages (shared/*/src, services/*/src).

Every import statement counts: at module level, inside a function, and under `if TYPE_CHECKING:` (a type-only
cycle is still two modules that cannot be read, tested or split apart one without the other)."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("proxmox_mcp_contracts", "proxmox_mcp_runtime", "proxmox_mcp_gateway", "proxmox_mcp_ssh_worker",
            "proxmox_mcp_api_worker", "proxmox_mcp_pve_sim", "proxmox_mcp_cli")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int


def modules_under(source_roots: Iterable[Path]) -> dict[str, Path]:
    """{dotted module name: file} for every .py file below the given `src` folders."""
    found: dict[str, Path] = {}
    for src in source_roots:
        for path in sorted(src.rglob("*.py")):
            parts = list(path.relative_to(src).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def import_edges(modules: dict[str, Path]) -> list[Edge]:
    """One edge per import statement and module of ours it imports, wherever the statement stands."""
    edges: set[Edge] = set()
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for target in _targets(node, package, modules):
                if target != name:
                    edges.add(Edge(name, target, node.lineno if isinstance(node, ast.stmt) else 0))
    return sorted(edges, key=lambda e: (e.source, e.target, e.line))


def _targets(node: ast.AST, package: str, modules: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in modules]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = package.split(".")[: len(package.split(".")) - node.level + 1]
        module = ".".join([*base, node.module] if node.module else base)
    else:
        module = node.module or ""
    targets: list[str] = []
    for alias in node.names:
        submodule = f"{module}.{alias.name}"
        target = submodule if submodule in modules else module
        if target in modules:
            targets.append(target)
    return targets


def cycles(edges: list[Edge]) -> list[list[Edge]]:
    """The edges inside each strongly connected component of more than one module (Tarjan)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                components.append(component)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return [[e for e in edges if e.source in c and e.target in c] for c in components]


def _describe(cycle: list[Edge], modules: dict[str, Path]) -> str:
    return "\n".join(f"  {e.source} -> {e.target}  ({modules[e.source].relative_to(ROOT)}:{e.line})" for e in cycle)


def _our_modules() -> dict[str, Path]:
    return modules_under([*ROOT.glob("shared/*/src"), *ROOT.glob("services/*/src")])


def test_the_graph_covers_every_package_of_the_workspace() -> None:
    modules = _our_modules()
    assert set(PACKAGES) <= set(modules), sorted(set(PACKAGES) - set(modules))
    assert len(modules) > 100


def test_no_import_cycle_among_our_modules() -> None:
    modules = _our_modules()
    found = cycles(import_edges(modules))
    assert not found, "import cycles:\n" + "\n\n".join(_describe(cycle, modules) for cycle in found)


def test_an_import_inside_a_function_or_under_type_checking_closes_a_cycle(tmp_path: Path) -> None:
    package = tmp_path / "src" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("def f() -> None:\n    from . import c\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import X\n")
    (package / "d.py").write_text("import pkg.a\n")
    found = cycles(import_edges(modules_under([tmp_path / "src"])))
    assert [[(e.source, e.target, e.line) for e in cycle] for cycle in found] == [
        [("pkg.a", "pkg.b", 1), ("pkg.b", "pkg.c", 2), ("pkg.c", "pkg.a", 3)]
    ]
