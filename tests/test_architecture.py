"""The package tree is the layer list, and the rules between layers hold.

- import-linter's ``layers`` contract (pyproject.toml ``[tool.importlinter]``): a package imports
  only from the packages below it, function-level imports included (grimp reads every import
  statement; only ``TYPE_CHECKING`` blocks are excepted);
- no import cycle between any two modules of the tree;
- no model module imports a view (render, widgets, IPython, ipywidgets, matplotlib), even lazily:
  models reach views only through ``core.display``;
- only ``hardware/`` asks which IOMMU family something is;
- no module grows past about 800 lines.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "iommu_lab"
LAYERS = ("core", "hardware", "pagetable", "nesting", "iommufd", "dma", "review", "io", "render", "widgets")
VIEW_MODULES = ("iommu_lab.render", "iommu_lab.widgets", "IPython", "ipywidgets", "matplotlib")
TOP = ("cli", "gallery", "__main__")
MAX_LINES = 800


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out.append((".".join(parts), path))
    return out


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every absolute module name ``path`` imports, at any depth, with its line."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((node.lineno, f"<relative import level {node.level}>"))
            elif node.module:
                found += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def test_the_package_tree_is_the_layer_list():
    packages = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert packages == sorted(LAYERS)
    assert modules == sorted(TOP)


def test_layers_contract_holds():
    lint = Path(sys.executable).parent / "lint-imports"
    r = subprocess.run([str(lint), str(ROOT / "pyproject.toml"), "--no-cache"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 kept, 0 broken" in r.stdout, r.stdout


def _cycles(adjacency: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(adjacency):
        if root in index:
            continue
        work = [(root, iter(sorted(adjacency[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(adjacency[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    component = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        component.append(w)
                        if w == v:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_cycle_and_only_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    graph = grimp.build_graph("iommu_lab", exclude_type_checking_imports=True)
    adjacency = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert _cycles(adjacency) == []


def test_imports_are_absolute():
    relative = [f"{path.relative_to(ROOT)}:{line}" for _, path in _modules()
                for line, name in _imports(path) if name.startswith("<relative")]
    assert relative == []


@pytest.mark.parametrize("layer", LAYERS[:8])
def test_no_model_module_imports_a_view(layer):
    leaks = []
    for name, path in _modules():
        if name == f"iommu_lab.{layer}" or name.startswith(f"iommu_lab.{layer}."):
            leaks += [f"{path.relative_to(ROOT)}:{line} imports {mod}" for line, mod in _imports(path)
                      if any(mod == v or mod.startswith(v + ".") for v in VIEW_MODULES)]
    assert leaks == []


def _family_tests(path: Path) -> list[str]:
    """Comparisons whose one side is a ``family`` name or attribute (``fmt.family == "arm"``)."""
    def is_family(node: ast.AST) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "family") or (
            isinstance(node, ast.Name) and node.id == "family")

    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare) and any(is_family(n) for n in [node.left, *node.comparators]):
            out.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return out


def test_only_hardware_asks_which_family():
    branches = [hit for name, path in _modules() if not name.startswith("iommu_lab.hardware")
                for hit in _family_tests(path)]
    assert branches == []


def test_no_module_is_a_god_module():
    big = {str(path.relative_to(ROOT)): n for _, path in _modules()
           if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert big == {}


def test_every_package_is_in_the_wheel():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in PACKAGE.rglob("__init__.py")}
    assert on_disk - listed == set()
