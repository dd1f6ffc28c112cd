"""The sandbox is a development tool written from the providers' contracts:
it must not import the app it imitates providers for."""

import ast
from pathlib import Path

import playground.sandbox

SANDBOX = Path(playground.sandbox.__file__).parent


def imported_modules(path: Path):
    """(line, module) of every import in a file, relative ones resolved."""
    package = "playground.sandbox" + "".join("." + p for p in path.relative_to(SANDBOX).parent.parts)
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # "from playground import core"
                yield node.lineno, f"{module}.{alias.name}"


def app_imports(path: Path):
    return [f"{path.name}:{line} imports {module}" for line, module in imported_modules(path)
            if (module == "playground" or module.startswith("playground."))
            and not (module == "playground.sandbox" or module.startswith("playground.sandbox."))]


def test_no_sandbox_module_imports_the_app():
    files = sorted(SANDBOX.rglob("*.py"))
    assert files
    found = [hit for path in files for hit in app_imports(path)]
    assert found == []


def test_the_check_sees_an_import_of_the_app(tmp_path, monkeypatch):
    """The check itself: each spelling of an app import is caught."""
    fake = SANDBOX / "_probe_for_test.py"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: (
        "import playground.generations.pipeline.steps\nfrom playground.accounts import models\n"
        "from playground import lib\nfrom .. import providers\nfrom . import kie\nfrom .app import Sandbox\n"))
    assert app_imports(fake) == [
        "_probe_for_test.py:1 imports playground.generations.pipeline.steps",
        "_probe_for_test.py:2 imports playground.accounts",
        "_probe_for_test.py:2 imports playground.accounts.models",
        "_probe_for_test.py:3 imports playground",
        "_probe_for_test.py:3 imports playground.lib",
        "_probe_for_test.py:4 imports playground",
        "_probe_for_test.py:4 imports playground.providers",
    ]
