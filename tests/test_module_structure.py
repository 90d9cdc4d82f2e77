"""One-way dependencies: core modules never import the CLI, click or matplotlib (not even inside
functions); the two workload families (mcr, images) do not import each other and the shared layer
(gpu_manager, io, errors) imports neither; module-level imports between mcrgpu's modules form no
cycle, so each module imports alone. Checked on the source, since TensorFlow itself imports matplotlib."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mcrgpu"
FRONT_ENDS = {"mcrgpu.cli", "mcrgpu.mcr.plotting"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Modules imported in the file: anywhere, or only by statements that run at import time."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in (tree.body if top_level_only else ast.walk(tree)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


MODULES = {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")}
TOP_LEVEL = {module_name(path): imports_of(path, top_level_only=True) for path in PACKAGE.rglob("*.py")}


def is_front_end(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FRONT_ENDS)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not is_front_end(n) and n != "mcrgpu"))
def test_core_modules_do_not_import_front_ends(name):
    forbidden = {i for i in MODULES[name] if i.split(".")[0] in ("click", "matplotlib") or is_front_end(i)}
    assert not forbidden, f"{name} imports {sorted(forbidden)}"


@pytest.mark.parametrize("family, other", [("mcrgpu.mcr", "mcrgpu.images"), ("mcrgpu.images", "mcrgpu.mcr")])
def test_workload_families_do_not_import_each_other(family, other):
    offending = {name: sorted(i for i in imports if i == other or i.startswith(other + "."))
                 for name, imports in MODULES.items() if name == family or name.startswith(family + ".")}
    offending = {name: found for name, found in offending.items()
                 if found and not name.startswith("mcrgpu.images.models")}
    assert not offending, f"{family} imports {other}: {offending}"


def test_shared_modules_import_no_workload_family():
    shared = ("mcrgpu.gpu_manager", "mcrgpu.io", "mcrgpu.errors", "mcrgpu.progress")
    offending = {name: sorted(i for i in MODULES[name] if i.startswith(("mcrgpu.mcr", "mcrgpu.images")))
                 for name in shared}
    assert not any(offending.values()), offending


def test_no_import_cycles_between_modules():
    graph = {name: {i for i in imports if i in MODULES and i != name and i != "mcrgpu"}
             for name, imports in TOP_LEVEL.items()}
    state = {}

    def visit(node, trail):
        if state.get(node) == "done":
            return
        assert state.get(node) != "active", "import cycle: " + " -> ".join(trail + [node])
        state[node] = "active"
        for target in graph[node]:
            visit(target, trail + [node])
        state[node] = "done"

    for name in graph:
        visit(name, [])
