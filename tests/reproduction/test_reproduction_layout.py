"""The package stands alone: no module loads a file outside refnet/, and the imports form no cycle.

Both checks read the source with :mod:`ast` (nothing is imported), so they see every
module-level import, including ones that a lazy import inside a function would hide at run time.
"""
import ast
from pathlib import Path

import pytest

import refnet

ROOT = Path(refnet.__file__).resolve().parent
#: Calls that load code from a file path instead of from the package.
FILE_LOADERS = {"spec_from_file_location", "module_from_spec", "run_path", "SourceFileLoader",
                "load_source", "exec_module"}


def _modules():
    """``{dotted name: (path, ast tree)}`` of every refnet/**/*.py."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = (path, ast.parse(path.read_text(), str(path)))
    return out


MODULES = _modules()


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module name of a ``from ... import`` (relative levels resolved)."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[:len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, path: Path, tree, top_level_only: bool):
    """Names imported by ``module``: every import, or only those run at import time."""
    nodes = (tree.body if top_level_only else ast.walk(tree))
    if top_level_only:  # module level, including inside if/try blocks at module level
        nodes = [n for stmt in tree.body
                 if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                 for n in ast.walk(stmt)]
    for n in nodes:
        if isinstance(n, ast.Import):
            for a in n.names:
                yield a.name
        elif isinstance(n, ast.ImportFrom):
            base = _absolute(module, path, n)
            yield base
            for a in n.names:  # ``from . import protocol`` imports a submodule
                if f"{base}.{a.name}" in MODULES:
                    yield f"{base}.{a.name}"


def test_the_fixture_sees_the_package():
    assert {"refnet", "refnet.reproduction", "refnet.reproduction.registry"} <= set(MODULES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_loads_code_from_outside_the_package(module):
    path, tree = MODULES[module]
    for name in _imports(module, path, tree, top_level_only=False):
        assert name.split(".")[0] != "validation", f"{path}: imports {name}"
    for n in ast.walk(tree):
        if isinstance(n, ast.Call):
            f = n.func
            called = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            assert called not in FILE_LOADERS, f"{path}:{n.lineno}: loads code by file path ({called})"


def _graph():
    """Module-level import edges between refnet modules."""
    graph = {}
    for module, (path, tree) in MODULES.items():
        deps = set()
        for name in _imports(module, path, tree, top_level_only=True):
            # ``import refnet.a.b`` runs refnet, refnet.a and refnet.a.b
            parts = name.split(".")
            deps |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & set(MODULES)
        # the importer's own parent packages are already in sys.modules when it runs: no edge
        own = module.split(".")
        graph[module] = deps - {".".join(own[:i]) for i in range(1, len(own) + 1)}
    return graph


def _cycle(graph):
    """One import cycle as a list of modules, or None."""
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                return stack[stack.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        state[m] = "done"
        stack.pop()
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _reaches(graph, start):
    seen, todo = set(), [start]
    while todo:
        for d in graph[todo.pop()] - seen:
            seen.add(d)
            todo.append(d)
    return seen


def test_the_reproduction_is_not_imported_by_the_math_montecarlo_or_propagation():
    graph = _graph()
    # refnet.sweep sits on top too: it fine-tunes with the reproduction's Duque protocol
    top = ("refnet.reproduction", "refnet.cli", "refnet.sweep")
    lower = [m for m in graph if not m.startswith(top)]
    for m in lower:
        bad = sorted(d for d in _reaches(graph, m) if d.startswith("refnet.reproduction"))
        assert not bad, f"{m} imports (at module level, maybe indirectly) {bad}"


def test_refnet_has_no_import_cycle():
    cycle = _cycle(_graph())
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"
