"""The package map holds: every module is in docs/architecture.md, imports follow the layers, no cycles.

Imports are read from the source with ``ast``, function-level imports included: a cycle hidden behind
an import inside a function is still a cycle (it only moves the failure to run time), and so is one
under ``if TYPE_CHECKING:`` (the modules still depend on each other).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"core": "ftp", "plugins": "ftp.plugins", "backends": "ftp.backends"}
DOC = ROOT / "docs" / "architecture.md"
BACKENDS = ("local", "azure")  # the built-in backends' names, which only DEFAULT_BACKEND may spell in the core


def modules() -> dict[str, Path]:
    """Dotted module name -> source file, as the package installs (pyproject's package-dir)."""
    out: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if folder == "core" and parts and parts[0] in ("plugins", "backends"):
                continue
            out[".".join([package, *parts])] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The ftp modules ``name`` imports anywhere in its source (``from pkg import mod`` counts as ``pkg.mod``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in out if m in known and m != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_every_module_is_on_the_map() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name in modules() if f"`{name}`" not in text]
    assert not missing, f"add these modules to {DOC.name} (as `ftp.x.y`, with what they own): {missing}"


def test_no_import_cycles(graph: dict[str, set[str]]) -> None:
    """Tarjan's strongly connected components: any component of two or more modules is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def layer(name: str) -> str:
    return "plugins" if name.startswith("ftp.plugins") else "backends" if name.startswith("ftp.backends") else "core"


@pytest.mark.parametrize("source, forbidden", [("core", "plugins"), ("core", "backends"), ("backends", "plugins"),
                                               ("plugins", "backends")])
def test_layers(graph: dict[str, set[str]], source: str, forbidden: str) -> None:
    """The core reaches plugins and backends only through hooks (the plugin manager imports just the
    lists of built-in modules, ``ftp.plugins`` and ``ftp.backends``); backends and plugins meet only
    in the core's types."""
    allowed = {"ftp.plugins", "ftp.backends"} if source == "core" else set()
    bad = sorted(f"{a} -> {b}" for a, targets in graph.items() if layer(a) == source
                 for b in targets if layer(b) == forbidden and b not in allowed)
    assert not bad, f"{source} imports {forbidden}: {bad}"


def test_the_core_names_no_backend() -> None:
    """String constants in the core's code (docstrings aside) never name a built-in backend, except
    ``DEFAULT_BACKEND``: backend rules come from each backend's BackendSpec and hooks."""
    found = []
    for name, path in modules().items():
        if layer(name) != "core":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        default = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Assign)
                   and any(isinstance(t, ast.Name) and t.id == "DEFAULT_BACKEND" for t in n.targets)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                    and id(node) not in default and node.value.lower() in BACKENDS):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not found, f"the core names a backend: {found}"
