"""The architecture holds: no import circle anywhere in the product, not even through a
function-local import, and a function-local import says why it is one (a comment).

The layers themselves (monitoring → sync → q2c_portal, and the layers inside sync) are
import-linter contracts in pyproject.toml, checked by `lint-imports` in bin/test; this test adds
what import-linter does not see: circles *within* a layer and through function-local imports.
Read from the source (ast), so nothing is imported to check it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["q2c_portal", "sync", "monitoring", "sandboxes"]
# where every function-local import must carry a comment saying why it is not at the top
# (management commands and migrations import late by Django's convention)
EXEMPT = ("migrations", "management")


def _modules() -> dict[str, Path]:
    found = {}
    for path in (p for package in PACKAGES for p in (ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if "migrations" in parts:
            continue
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()
# importing a.b.c runs a/b/__init__.py: an edge to the package, unless that file does nothing
_BARE_PACKAGES = {
    m
    for m, path in MODULES.items()
    if path.name == "__init__.py" and all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in ast.parse(path.read_text()).body)
}


def _in(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """Full dotted names the import statement refers to (modules, or module.attribute)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if MODULES.get(module, Path()).name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join(package + ([base] if base else []))
    return [f"{base}.{a.name}" for a in node.names]


def _resolve(name: str) -> str | None:
    """The product module an imported name lives in (None outside the product)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports() -> list[tuple[str, str, int, bool, bool]]:
    """(importer, imported name, line, at module level, explained by a comment) for every import
    statement in the product, except those under `if TYPE_CHECKING:`."""
    found = []
    for module, path in MODULES.items():
        source = path.read_text()
        lines = source.splitlines()
        tree = ast.parse(source)
        type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) for n in ast.walk(node)}
        top: set[int] = set()

        def collect_top(body, top=top):
            for node in body:
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    top.add(id(node))
                elif isinstance(node, (ast.If, ast.Try)):
                    collect_top(node.body)
                    collect_top(node.orelse)
                    for handler in getattr(node, "handlers", []):
                        collect_top(handler.body)
                    collect_top(getattr(node, "finalbody", []))

        collect_top(tree.body)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in type_only:
                continue
            line = node.lineno
            explained = "#" in lines[line - 1] or (line > 1 and lines[line - 2].strip().startswith("#"))
            for name in _targets(module, node):
                found.append((module, name, line, id(node) in top, explained))
    return found


IMPORTS = _imports()


def _edges() -> dict[str, set[str]]:
    """importer → imported product modules, for every import (module-level or not), with the
    packages whose __init__ an import runs (see _BARE_PACKAGES)."""
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, name, *_ in IMPORTS:
        target = _resolve(name)
        if target is None or target == module:
            continue
        edges[module].add(target)
        parts = target.split(".")
        for i in range(1, len(parts)):
            package = ".".join(parts[:i])
            if package in MODULES and package not in _BARE_PACKAGES and not _in(module, [package]):
                edges[module].add(package)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_there_is_no_import_circle_in_the_product_not_even_through_function_local_imports():
    assert _cycles(_edges()) == []


def test_sync_imports_nothing_from_monitoring_not_even_inside_a_function():
    reaching_up = [f"{m}:{line} imports {name}" for m, name, line, *_ in IMPORTS if _in(m, ["sync"]) and _in(name, ["monitoring"])]
    assert reaching_up == []


def test_a_function_local_import_says_why_it_is_one():
    unexplained = [
        f"{MODULES[m].relative_to(ROOT)}:{line} {name}"
        for m, name, line, top, explained in IMPORTS
        if not top and not explained and not any(part in EXEMPT for part in m.split("."))
    ]
    assert unexplained == []
