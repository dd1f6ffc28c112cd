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
    """core keeps the migrations of the tables from before the split, and the
    old import path of the tasks (rows queued before an upgrade name it)."""
    files = {str(p.relative_to(ROOT / "core")) for p in (ROOT / "core").rglob("*.py")}
    assert {f for f in files if not f.startswith("migrations/")} == {"__init__.py", "apps.py", "tasks.py"}
