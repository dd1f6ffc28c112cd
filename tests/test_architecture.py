"""The apps depend on each other one way (docs/architecture.md):

    lib <- providers <- accounts <- ledger <- generations <- library <- compare <- api

A module may import from its own app and the apps to its left, never from an
app to its right (nor from the sandbox, a separate development tool)."""

import ast
from pathlib import Path

import playground

ROOT = Path(playground.__file__).parent
LAYERS = ["lib", "providers", "accounts", "ledger", "generations", "library", "compare", "api"]


def imports_of(path: Path):
    package = ".".join(("playground",) + path.relative_to(ROOT).parent.parts)
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            module = (f"{base}.{node.module}" if node.module else base) if node.level else node.module or ""
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def app_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "playground" else None


def test_imports_point_one_way():
    wrong = []
    for app in LAYERS:
        allowed = set(LAYERS[: LAYERS.index(app) + 1])
        for path in sorted((ROOT / app).rglob("*.py")):
            for line, module in imports_of(path):
                target = app_of(module)
                if target in LAYERS + ["sandbox", "core"] and target not in allowed:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert wrong == []


def test_core_is_only_the_old_history():
    """core keeps only the migrations of the tables from before the split
    (the task rows queued under its old import path are dropped by
    generations' migration 0010)."""
    files = {str(p.relative_to(ROOT / "core")) for p in (ROOT / "core").rglob("*.py")}
    assert {f for f in files if not f.startswith("migrations/")} == {"__init__.py", "apps.py"}


def module_graph() -> dict[str, set[str]]:
    """Every module of playground/ (migrations aside) -> the modules of
    playground/ it imports, at the top or inside a function alike."""
    modules = {}
    for path in ROOT.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        name = ".".join(("playground",) + path.relative_to(ROOT).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph = {}
    for name, path in modules.items():
        targets = set()
        for _, module in imports_of(path):
            if module in modules and module != name:
                targets.add(module)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other in a circle (Tarjan's
    strongly connected components of more than one module)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_in_a_circle():
    """Not even through an import inside a function (issue 25): the job
    pipeline's modules, the tasks and the warm-up each import only what
    comes before them."""
    graph = module_graph()
    assert "playground.generations.pipeline.worker" in graph  # the walk sees the package
    assert cycles(graph) == []


def test_no_module_is_over_500_lines():
    """A module says what it holds and stays small (migrations and the
    sandbox, a development tool apart, aside)."""
    long = []
    for path in ROOT.rglob("*.py"):
        if "migrations" in path.parts or "sandbox" in path.parts:
            continue
        lines = len(path.read_text().splitlines())
        if lines > 500:
            long.append(f"{path.relative_to(ROOT)}: {lines}")
    assert long == []
