"""Import graph of src/fitclass counting imports inside functions too (TYPE_CHECKING excepted).

Prints the strongly connected components (import cycles) and the number of imports made
inside functions. Usage: python bench/import_graph.py [src/fitclass]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(tree: ast.Module, name: str, is_package: bool,
               modules: set[str]) -> list[tuple[str, bool, int]]:
    """(imported fitclass module, inside a function, statement line) for every import
    outside `if TYPE_CHECKING:`."""
    found: list[tuple[str, bool, int]] = []

    def resolve(target: str) -> str | None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child, in_function)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = resolve(alias.name)
                if target:
                    found.append((target, in_function, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            for alias in node.names:
                target = resolve(f"{base}.{alias.name}") or resolve(base)
                if target:
                    found.append((target, in_function, node.lineno))
        inner = in_function or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return found


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative enough for a few hundred modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in graph:
        if node not in index:
            connect(node)
    return components


def main(root: Path) -> int:
    files = sorted(root.rglob("*.py"))
    names = {module_name(path, root): path for path in files}
    modules = set(names)
    graph: dict[str, set[str]] = {name: set() for name in names}
    in_function: set[tuple[str, int]] = set()  # (module, line) of fitclass imports in functions
    for name, path in names.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for target, inside, line in imports_of(tree, name, path.name == "__init__.py", modules):
            if target == name:
                continue
            graph[name].add(target)
            if inside:
                in_function.add((name, line))
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    print(f"modules: {len(modules)}  fitclass imports inside functions: {len(in_function)}")
    print(f"cycles: {len(cycles)}  largest: {max((len(c) for c in cycles), default=0)}")
    for cycle in sorted(cycles, key=len, reverse=True):
        print(f"  {len(cycle)}: {', '.join(cycle)}")
    return 1 if cycles else 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "src/fitclass")))
