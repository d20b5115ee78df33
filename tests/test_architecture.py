"""The package's shape, checked from its source: no import cycles, no module reaching into
another's private names, no module over 600 lines, and nothing below the front ends
importing them. Function-level (lazy) imports count like top-level ones: a cycle hidden
inside a function is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "codesearch"
MAX_LINES = 600
FRONT_ENDS = ("codesearch.cli", "codesearch.mcp_server", "codesearch.serve", "codesearch.__main__")


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def is_package(name: str, mods: dict[str, Path]) -> bool:
    return mods[name].name == "__init__.py"


def imports(name: str, path: Path, mods: dict[str, Path]):
    """(imported module, names taken from it, line) for every import of a codesearch module,
    and (module alias -> module) for attribute checks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    base = name if is_package(name, mods) else name.rsplit(".", 1)[0]
    found = []
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("codesearch"):
                    found.append((a.name, [], node.lineno))
                    if a.asname:
                        aliases[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("codesearch"):
                continue
            plain = []
            for a in node.names:
                sub = f"{target}.{a.name}"
                if sub in mods:  # `from . import hooks`: the submodule itself
                    found.append((sub, [], node.lineno))
                    aliases[a.asname or a.name] = sub
                else:
                    plain.append(a.name)
            if plain or not node.names:
                found.append((target, plain, node.lineno))
    return found, aliases, tree


def test_no_module_over_600_lines():
    long = {n: len(p.read_text(encoding="utf-8").splitlines()) for n, p in modules().items()}
    assert {n: c for n, c in long.items() if c > MAX_LINES} == {}


def test_no_import_of_another_modules_private_names():
    mods = modules()
    bad = []
    for name, path in mods.items():
        found, aliases, tree = imports(name, path, mods)
        for target, names, line in found:
            bad += [f"{name}:{line} imports {target}.{n}" for n in names if n.startswith("_") and n != "__version__"]
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in aliases and node.attr.startswith("_"):
                bad.append(f"{name}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert bad == []


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {n: set() for n in mods}
    for name, path in mods.items():
        found, _aliases, _tree = imports(name, path, mods)
        for target, _names, _line in found:
            if target in mods and target != name:
                edges[name].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    edges = graph()
    # a package's __init__ re-exporting its own submodules is not a cycle of jobs: leave the
    # package -> submodule edges out, keep everything else
    for name in list(edges):
        edges[name] = {t for t in edges[name] if not t.startswith(name + ".")}
    assert cycles(edges) == []


def test_front_ends_are_not_imported_below_them():
    edges = graph()
    bad = [f"{src} imports {dst}" for src, dsts in edges.items() for dst in dsts
           if dst.startswith(FRONT_ENDS) and not src.startswith(FRONT_ENDS)]
    assert bad == []


def test_the_checks_see_what_they_check():
    """The graph has the layers we expect, so the tests above cannot pass by seeing nothing."""
    edges = graph()
    assert "codesearch.app" in edges["codesearch.cli.query_cmd"]
    assert "codesearch.embedders.factory" in edges["codesearch.app"]
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
